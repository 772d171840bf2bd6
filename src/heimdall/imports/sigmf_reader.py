"""SigMF recordings made elsewhere (a ``.sigmf-meta`` and its ``.sigmf-data``) as captures.

Samples are read by the ``sigmf`` package, so any complex ``core:datatype`` it reads
is accepted (``ci16_le``, ``cf32_le``, ``cu8``, ...), its checksum verified when the
metadata has one. Frequency and time come from the first capture segment
(``core:frequency``, ``core:datetime``), the receiver's position from
``core:geolocation``. GPS time quality comes from Heimdall's own extension when present:

* ``heimdall:block_time_ns`` / ``heimdall:block_gps_status`` (/ ``heimdall:rssi_dbm``),
  as Heimdall writes its recordings: the per-block GPS stamps, kept as recorded;
* otherwise ``heimdall:gps_locked: true`` (in the capture or the global object) says
  that ``core:datetime`` is GPS-disciplined: 512-sample blocks are timed from it;
* otherwise the recording has no trusted time: power and frequency only (status 255).
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import sigmf
from sigmf import SigMFFile
from sigmf.error import SigMFError
from sigmf.sigmffile import dtype_info

from heimdall.core.constants import NS_PER_S
from heimdall.receivers.capture import GPS_STATUS_NO_GPS, SAMPLES_PER_BLOCK, IQCapture

DRIVER_NAME = "sigmf"
_DATETIME = re.compile(
    r"^(?P<second>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})$"
)


class SigMFImportError(ValueError):
    """The pair is not an importable SigMF recording; the message says why."""


@dataclass(frozen=True, slots=True)
class SigMFRecording:
    capture: IQCapture
    #: The receiver as the recording names it (``heimdall:station_id``, else the file stem).
    station: str
    #: (latitude, longitude, altitude_m) from ``core:geolocation``, when given.
    position: tuple[float, float, float] | None


def datetime_ns(text: str) -> int:
    """``core:datetime`` in integer ns since the Unix epoch, fraction digits all kept.

    >>> datetime_ns("1970-01-01T00:00:01.000000123Z")
    1000000123
    """
    match = _DATETIME.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise SigMFImportError(f"core:datetime {text!r} is not an ISO 8601 UTC time")
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    try:
        whole = datetime.fromisoformat(match["second"] + zone)
    except ValueError as exc:
        raise SigMFImportError(f"core:datetime {text!r}: {exc}") from exc
    fraction = (match["fraction"] or "0")[:9].ljust(9, "0")
    return round(whole.timestamp()) * NS_PER_S + int(fraction)


def _position(global_info: dict[str, Any]) -> tuple[float, float, float] | None:
    point = global_info.get(sigmf.GEOLOCATION_KEY)
    if point is None:
        return None
    coordinates: Any = point.get("coordinates") if isinstance(point, dict) else None
    try:
        longitude, latitude = float(coordinates[0]), float(coordinates[1])
        altitude_m = float(coordinates[2]) if len(coordinates) > 2 else 0.0
    except (TypeError, ValueError, IndexError) as exc:
        raise SigMFImportError(f"core:geolocation is not a GeoJSON point: {point!r}") from exc
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180 and math.isfinite(altitude_m)):
        raise SigMFImportError(f"core:geolocation is an impossible position: {coordinates!r}")
    return latitude, longitude, altitude_m


def _samples(metadata: dict[str, Any], data: bytes) -> npt.NDArray[np.complex64]:
    global_info = metadata["global"]
    datatype = global_info.get(sigmf.DATATYPE_KEY)
    try:
        info = dtype_info(datatype)
    except (SigMFError, AttributeError, TypeError) as exc:
        raise SigMFImportError(f"core:datatype {datatype!r} is not a SigMF datatype") from exc
    if not info["is_complex"]:
        raise SigMFImportError(
            f"core:datatype {datatype!r} is real-valued: only complex (IQ) recordings import"
        )
    if int(global_info.get(sigmf.NUM_CHANNELS_KEY, 1)) != 1:
        raise SigMFImportError("multi-channel recordings are not supported (core:num_channels)")
    if not data:
        raise SigMFImportError("the .sigmf-data file is empty")
    if len(data) % info["sample_size"]:
        raise SigMFImportError(
            f"the .sigmf-data file ({len(data)} bytes) is not whole {datatype} samples "
            f"({info['sample_size']} bytes each): truncated?"
        )
    try:
        recording = SigMFFile(metadata=metadata)
        recording.set_data_file(data_buffer=io.BytesIO(data))
        samples = recording.read_samples()
    except SigMFError as exc:  # the checksum included: a file other than the one described
        raise SigMFImportError(f"the sigmf package cannot read it: {exc}") from exc
    return np.ascontiguousarray(samples, dtype=np.complex64).ravel()


Blocks = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint8], npt.NDArray[np.float32]
]


def _blocks(
    capture: dict[str, Any], global_info: dict[str, Any], count: int, start_ns: int, rate_hz: float
) -> Blocks:
    """Block starts, times, GPS statuses and RSSI readings of the recording."""
    if "heimdall:block_time_ns" in capture:
        try:
            starts = np.asarray(capture["heimdall:block_start_index"], dtype=np.int64)
            times = np.asarray(capture["heimdall:block_time_ns"], dtype=np.int64)
            given_status = np.asarray(capture["heimdall:block_gps_status"], dtype=np.int64)
            rssi_values = capture.get("heimdall:rssi_dbm") or [None] * len(starts)
            rssi = np.asarray([np.nan if v is None else v for v in rssi_values], dtype=np.float32)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise SigMFImportError(f"malformed heimdall: block stamps ({exc})") from exc
        if not len(starts) == len(times) == len(given_status) == len(rssi) or not len(starts):
            raise SigMFImportError("heimdall: block arrays differ in length or are empty")
        if starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= count:
            raise SigMFImportError("heimdall:block_start_index is not increasing within the data")
        if np.any((given_status < 0) | (given_status > 255)):
            raise SigMFImportError("heimdall:block_gps_status outside 0..255")
        return starts, times, given_status.astype(np.uint8), rssi
    locked = capture.get("heimdall:gps_locked", global_info.get("heimdall:gps_locked", False))
    starts = np.arange(0, count, SAMPLES_PER_BLOCK, dtype=np.int64)
    times = start_ns + np.round(starts * (NS_PER_S / rate_hz)).astype(np.int64)
    status = np.full(len(starts), 0 if locked is True else GPS_STATUS_NO_GPS, dtype=np.uint8)
    return starts, times, status, np.full(len(starts), np.nan, dtype=np.float32)


def read_sigmf_pair(meta: bytes, data: bytes, *, stem: str) -> SigMFRecording:
    """One SigMF recording (metadata and data bytes) as a capture; ``stem`` names it."""
    try:
        metadata = json.loads(meta)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SigMFImportError(f"the .sigmf-meta file is not JSON: {exc}") from exc
    if not isinstance(metadata, dict) or not isinstance(metadata.get("global"), dict):
        raise SigMFImportError("the .sigmf-meta file has no 'global' object")
    captures = metadata.get("captures")
    if not isinstance(captures, list) or not captures or not isinstance(captures[0], dict):
        raise SigMFImportError("the .sigmf-meta file has no capture segment")
    global_info: dict[str, Any] = metadata["global"]
    first: dict[str, Any] = captures[0]
    try:
        rate_hz = float(global_info[sigmf.SAMPLE_RATE_KEY])
        frequency_hz = float(first[sigmf.FREQUENCY_KEY])
    except (KeyError, TypeError, ValueError) as exc:
        raise SigMFImportError(f"no usable core:sample_rate or core:frequency ({exc})") from exc
    if not (math.isfinite(rate_hz) and rate_hz > 0 and math.isfinite(frequency_hz)):
        raise SigMFImportError(f"impossible sample rate {rate_hz} Hz or frequency {frequency_hz}")
    retuned = [c.get(sigmf.FREQUENCY_KEY) for c in captures[1:] if isinstance(c, dict)]
    if any(f is not None and f != first[sigmf.FREQUENCY_KEY] for f in retuned):
        raise SigMFImportError("its capture segments are at different frequencies")
    if sigmf.DATETIME_KEY not in first:
        raise SigMFImportError("its first capture segment has no core:datetime: no time")
    start_ns = datetime_ns(first[sigmf.DATETIME_KEY])
    samples = _samples(metadata, data)
    starts, times, status, rssi = _blocks(first, global_info, len(samples), start_ns, rate_hz)
    station = str(global_info.get("heimdall:station_id") or stem)
    capture = IQCapture(
        station_id=station,
        center_frequency_hz=frequency_hz,
        sample_rate_hz=rate_hz,
        samples=samples,
        block_start_index=starts,
        block_time_ns=times,
        block_gps_status=status,
        rssi_dbm=rssi,
        start_time=datetime.fromtimestamp(start_ns / NS_PER_S, tz=UTC),
        driver=DRIVER_NAME,
        driver_version=str(global_info.get(sigmf.RECORDER_KEY, "unknown recorder")),
        metadata={"source_file": f"{stem}.sigmf-meta", "station": station},
    )
    return SigMFRecording(capture, station, _position(global_info))
