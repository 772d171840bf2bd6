"""IQ captures as SigMF recordings (``ci16_le`` data + JSON metadata) and back.

The GPS block timestamps that make TDOA possible have no place in the SigMF
core namespace; they go under the ``heimdall:`` extension, declared in
``core:extensions`` so that SigMF tools know they may ignore it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import sigmf
from sigmf import SigMFFile

from heimdall import __version__
from heimdall.receivers.capture import AudioCapture, IQCapture

DATATYPE = "ci16_le"
EXTENSION = {"name": "heimdall", "version": "1.0.0", "optional": True}
_INT16_SCALE = 32767.0


def encode_ci16_le(samples: npt.NDArray[np.complex64]) -> bytes:
    """Complex64 (full scale 1.0) -> interleaved little-endian int16, clipped.

    >>> encode_ci16_le(np.array([1 - 1j, 0.5j], dtype=np.complex64)).hex()
    'ff7f018000000040'
    """
    interleaved = np.empty(2 * len(samples), dtype=np.float32)
    interleaved[0::2] = samples.real
    interleaved[1::2] = samples.imag
    scaled = np.clip(np.rint(interleaved * _INT16_SCALE), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def decode_ci16_le(data: bytes) -> npt.NDArray[np.complex64]:
    """Interleaved little-endian int16 -> complex64 with full scale 1.0."""
    if len(data) % 4:
        raise ValueError(f"ci16_le data must be a multiple of 4 bytes, got {len(data)}")
    values = np.frombuffer(data, dtype="<i2").astype(np.float32)
    values /= np.float32(_INT16_SCALE)
    # Interleaved float32 (I, Q) pairs are complex64's own layout: a view, not a copy
    # through complex128 (a quarter of a localization's read-back time went there).
    return values.view(np.complex64)


def jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
    if isinstance(value, np.generic):
        return value.item()
    return value


def global_info(
    capture: IQCapture | AudioCapture,
    *,
    datatype: str,
    latitude: float,
    longitude: float,
    altitude_m: float,
    measurement: object | None,
    description: str | None,
) -> dict[str, Any]:
    """The ``global`` object every Heimdall recording starts from (IQ or audio)."""
    info: dict[str, Any] = {
        sigmf.DATATYPE_KEY: datatype,
        sigmf.SAMPLE_RATE_KEY: float(capture.sample_rate_hz),
        sigmf.VERSION_KEY: "1.2.0",
        sigmf.RECORDER_KEY: f"heimdall {__version__} / {capture.driver} {capture.driver_version}",
        sigmf.NUM_CHANNELS_KEY: 1,
        sigmf.GEOLOCATION_KEY: {
            "type": "Point",
            "coordinates": [float(longitude), float(latitude), float(altitude_m)],
        },
        sigmf.EXTENSIONS_KEY: [EXTENSION],
        "heimdall:station_id": capture.station_id,
    }
    if description:
        info[sigmf.DESCRIPTION_KEY] = description
    if measurement is not None:
        info["heimdall:measurement"] = jsonable(measurement)
    return info


def sigmf_datetime(moment: datetime) -> str:
    """``core:datetime``: UTC, ISO 8601 with microseconds and a ``Z``.

    >>> sigmf_datetime(datetime(2024, 6, 1, 12, 0, tzinfo=UTC))
    '2024-06-01T12:00:00.000000Z'
    """
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def sigmf_metadata(
    capture: IQCapture,
    *,
    latitude: float,
    longitude: float,
    altitude_m: float,
    measurement: object | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The ``.sigmf-meta`` document of a capture, validated against the SigMF schema."""
    info = global_info(
        capture,
        datatype=DATATYPE,
        latitude=latitude,
        longitude=longitude,
        altitude_m=altitude_m,
        measurement=measurement,
        description=description,
    )
    sigmf_file = SigMFFile(global_info=info, skip_checksum=True)
    sigmf_file.add_capture(
        0,
        metadata={
            sigmf.FREQUENCY_KEY: float(capture.center_frequency_hz),
            sigmf.DATETIME_KEY: sigmf_datetime(capture.start_time),
            "heimdall:block_size": 512,
            "heimdall:block_start_index": capture.block_start_index.tolist(),
            "heimdall:block_time_ns": capture.block_time_ns.tolist(),
            "heimdall:block_gps_status": capture.block_gps_status.tolist(),
            # null where the receiver gave no reading (NaN is not JSON).
            "heimdall:rssi_dbm": [
                round(float(v), 2) if np.isfinite(v) else None for v in capture.rssi_dbm
            ],
        },
    )
    # No sigmf_file.validate() here: the JSON-schema walk cost ~25 ms per recording (7 per
    # acquisition, holding the GIL), and the shape never varies; a unit test validates it.
    metadata: dict[str, Any] = json.loads(sigmf_file.dumps())
    return metadata


def capture_from_sigmf(metadata: dict[str, Any], data: bytes) -> IQCapture:
    """Rebuild an :class:`IQCapture` from a recording written by :func:`sigmf_metadata`."""
    global_info = metadata["global"]
    if global_info[sigmf.DATATYPE_KEY] != DATATYPE:
        raise ValueError(f"unsupported SigMF datatype {global_info[sigmf.DATATYPE_KEY]!r}")
    capture = metadata["captures"][0]
    recorder = str(global_info.get(sigmf.RECORDER_KEY, ""))
    driver = recorder.split(" / ", 1)[-1].split(" ", 1)
    return IQCapture(
        station_id=global_info["heimdall:station_id"],
        center_frequency_hz=float(capture[sigmf.FREQUENCY_KEY]),
        sample_rate_hz=float(global_info[sigmf.SAMPLE_RATE_KEY]),
        samples=decode_ci16_le(data),
        block_start_index=np.asarray(capture["heimdall:block_start_index"], dtype=np.int64),
        block_time_ns=np.asarray(capture["heimdall:block_time_ns"], dtype=np.int64),
        block_gps_status=np.asarray(capture["heimdall:block_gps_status"], dtype=np.uint8),
        rssi_dbm=np.asarray(
            [np.nan if v is None else v for v in capture["heimdall:rssi_dbm"]], dtype=np.float32
        ),
        start_time=datetime.fromisoformat(capture[sigmf.DATETIME_KEY].replace("Z", "+00:00")),
        driver=driver[0],
        driver_version=driver[1] if len(driver) > 1 else "",
    )
