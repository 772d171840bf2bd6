"""The one shape every receiver driver produces: an IQ capture with its time base.

A driver turns (station, frequency, duration) into an :class:`IQCapture`. DSP,
storage and localization only ever see this type, never a protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

#: KiwiSDR ``last_gps_solution`` value meaning "this receiver has no GPS clock".
GPS_STATUS_NO_GPS = 255

SAMPLES_PER_BLOCK = 512


@dataclass(frozen=True, slots=True)
class IQCapture:
    """Complex baseband recorded by one receiver.

    Attributes:
        station_id: registry id of the receiver.
        center_frequency_hz: the frequency the receiver was tuned to.
        sample_rate_hz: the true (GPS-corrected) sample rate reported by the receiver.
        samples: complex64 IQ, full scale = 1.0.
        block_start_index: index into ``samples`` of the first sample of each block.
        block_time_ns: absolute UTC time of the first sample of each block, in
            integer nanoseconds since the Unix epoch (int64).
        block_gps_status: per block, seconds since the last GPS fix (0..252), or
            255 when the receiver has no GPS clock (uint8).
        rssi_dbm: the receiver's own RSSI readings (S-meter), one per block (float32).
        start_time: UTC wall-clock time the first sample was recorded.
        driver: name of the driver that made the capture (e.g. ``"kiwisdr"``).
        driver_version: the driver's version, and the server's where known.
    """

    station_id: str
    center_frequency_hz: float
    sample_rate_hz: float
    samples: npt.NDArray[np.complex64]
    block_start_index: npt.NDArray[np.int64]
    block_time_ns: npt.NDArray[np.int64]
    block_gps_status: npt.NDArray[np.uint8]
    rssi_dbm: npt.NDArray[np.float32]
    start_time: datetime
    driver: str
    driver_version: str
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.samples.dtype != np.complex64:
            raise ValueError(f"samples must be complex64, got {self.samples.dtype}")
        n_blocks = len(self.block_start_index)
        for name in ("block_time_ns", "block_gps_status", "rssi_dbm"):
            if len(getattr(self, name)) != n_blocks:
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} entries, expected {n_blocks}"
                )
        if self.sample_rate_hz <= 0:
            raise ValueError("sample_rate_hz must be positive")

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    @property
    def has_gps_time(self) -> bool:
        """True when every block carries a GPS-disciplined timestamp."""
        return bool(len(self.block_gps_status)) and bool(
            np.all(self.block_gps_status != GPS_STATUS_NO_GPS)
        )

    @property
    def mean_rssi_dbm(self) -> float | None:
        if len(self.rssi_dbm) == 0:
            return None
        # Average power, not average dB: the S-meter is a power reading.
        return float(10 * np.log10(np.mean(10 ** (self.rssi_dbm.astype(np.float64) / 10))))

    def sample_time_ns(self) -> npt.NDArray[np.int64]:
        """Absolute UTC time of every sample (ns), from the block timestamps."""
        times = np.empty(len(self.samples), dtype=np.int64)
        starts = np.append(self.block_start_index, len(self.samples))
        for i in range(len(self.block_start_index)):
            n = np.arange(starts[i + 1] - starts[i], dtype=np.float64)
            times[starts[i] : starts[i + 1]] = self.block_time_ns[i] + np.round(
                n * 1e9 / self.sample_rate_hz
            ).astype(np.int64)
        return times
