"""The shapes receiver drivers produce: IQ with its time base, or audio with spectra.

A driver turns (station, frequency, duration) into a capture. Receivers that
give complex baseband with GPS time (KiwiSDR) produce an :class:`IQCapture`;
receivers that give only demodulated audio, spectrum frames and an S-meter
(OpenWebRX) produce an :class:`AudioCapture`. DSP, storage and localization
only ever see these types, never a protocol or its frame sizes.
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

    @property
    def samples_per_block(self) -> int:
        """The capture's own block length: the commonest gap between block starts.

        Consumers (the TDOA windows) cut on block boundaries with this, so they never
        assume a receiver protocol's frame size.

        >>> import numpy as np
        >>> from heimdall.dsp.signals import make_capture
        >>> make_capture(np.zeros(5_120, np.complex64), 12_000.0).samples_per_block
        512
        """
        if len(self.block_start_index) < 2:
            return max(1, len(self.samples))
        gaps = np.diff(self.block_start_index)
        values, counts = np.unique(gaps[gaps > 0], return_counts=True)
        return int(values[np.argmax(counts)]) if len(values) else max(1, len(self.samples))

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


@dataclass(frozen=True, slots=True)
class AudioCapture:
    """Demodulated audio, spectrum frames and S-meter readings of one receiver.

    No IQ and no receiver timestamps: every series carries the host's arrival
    time of the message it came in (integer ns since the Unix epoch), which is
    good to a few tens of milliseconds, not for TDOA.

    Attributes:
        station_id: registry id of the receiver.
        center_frequency_hz: the frequency measured (the one asked for).
        dial_frequency_hz: the RF frequency at 0 Hz of the audio (the demodulator's
            tuning); with ``demodulator == "usb"`` an RF line at ``f`` is an audio
            tone at ``f - dial_frequency_hz``.
        demodulator: OpenWebRX mode name (``"usb"``, ``"nfm"`` ...).
        passband_hz: the demodulator's (low, high) cut, relative to the dial.
        sample_rate_hz: audio sample rate.
        samples: audio, float32, full scale 1.0 (after the receiver's AGC: its
            level says nothing about the signal's power).
        chunk_start_index: index into ``samples`` of each audio message's first sample.
        chunk_arrival_ns: arrival time of each audio message (int64).
        fft_db: spectrum frames in the receiver's own dB scale, float32
            (frames x bins), bins in increasing frequency.
        fft_arrival_ns: arrival time of each spectrum frame (int64).
        fft_center_frequency_hz: RF frequency of the spectrum's centre bin.
        fft_sample_rate_hz: span of the spectrum (bin width = span / bins).
        smeter_power: the S-meter readings as sent: linear power in the
            receiver's own, uncalibrated unit (float64).
        smeter_arrival_ns: arrival time of each reading (int64).
        start_time: UTC wall-clock time the first audio message arrived.
        driver: name of the driver that made the capture (e.g. ``"openwebrx"``).
        driver_version: the driver's version, and the server's where known.
    """

    station_id: str
    center_frequency_hz: float
    dial_frequency_hz: float
    demodulator: str
    passband_hz: tuple[float, float]
    sample_rate_hz: float
    samples: npt.NDArray[np.float32]
    chunk_start_index: npt.NDArray[np.int64]
    chunk_arrival_ns: npt.NDArray[np.int64]
    fft_db: npt.NDArray[np.float32]
    fft_arrival_ns: npt.NDArray[np.int64]
    fft_center_frequency_hz: float
    fft_sample_rate_hz: float
    smeter_power: npt.NDArray[np.float64]
    smeter_arrival_ns: npt.NDArray[np.int64]
    start_time: datetime
    driver: str
    driver_version: str
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = {
            "samples": np.float32,
            "fft_db": np.float32,
            "smeter_power": np.float64,
            "chunk_start_index": np.int64,
            "chunk_arrival_ns": np.int64,
            "fft_arrival_ns": np.int64,
            "smeter_arrival_ns": np.int64,
        }
        for name, dtype in expected.items():
            if getattr(self, name).dtype != dtype:
                raise ValueError(
                    f"{name} must be {np.dtype(dtype)}, got {getattr(self, name).dtype}"
                )
        if self.fft_db.ndim != 2:
            raise ValueError(f"fft_db must be frames x bins, got shape {self.fft_db.shape}")
        pairs = (
            ("chunk_start_index", "chunk_arrival_ns"),
            ("fft_db", "fft_arrival_ns"),
            ("smeter_power", "smeter_arrival_ns"),
        )
        for values, times in pairs:
            if len(getattr(self, values)) != len(getattr(self, times)):
                raise ValueError(f"{values} and {times} differ in length")
        if self.sample_rate_hz <= 0 or self.fft_sample_rate_hz <= 0:
            raise ValueError("sample rates must be positive")

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    @property
    def has_gps_time(self) -> bool:
        """Always False: the receiver stamps nothing, arrival times are the host's."""
        return False

    @property
    def fft_bin_width_hz(self) -> float:
        return self.fft_sample_rate_hz / self.fft_db.shape[1]

    @property
    def mean_smeter_db(self) -> float | None:
        """10 log10 of the mean S-meter power (a power average, not a dB average)."""
        if len(self.smeter_power) == 0:
            return None
        return float(10 * np.log10(max(float(np.mean(self.smeter_power)), 1e-300)))


#: Anything a driver produces.
Capture = IQCapture | AudioCapture
