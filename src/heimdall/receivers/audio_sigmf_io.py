"""Audio captures as SigMF recordings: real-valued audio (``ri16_le``) plus a sidecar.

SigMF describes sample streams; the spectrum frames and the S-meter series of
an OpenWebRX capture are not one. They go into a sidecar object next to the
recording, a NumPy ``.npz`` archive (arrays with their dtypes and shapes, read
back without pickle), named in the metadata under ``heimdall:sidecar`` so that
whoever holds the ``.sigmf-meta`` finds it. The audio itself is an ordinary
real-valued SigMF recording any SigMF tool can open.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import sigmf
from sigmf import SigMFFile

from heimdall.receivers.capture import AudioCapture
from heimdall.receivers.sigmf_io import global_info, jsonable, sigmf_datetime

DATATYPE = "ri16_le"
SIDECAR_SUFFIX = ".heimdall-spectra.npz"
SIDECAR_FORMAT = "npz"
_INT16_SCALE = 32767.0
#: Arrays in the sidecar and the dtype each must have.
SIDECAR_ARRAYS = {
    "fft_db": np.float32,
    "fft_arrival_ns": np.int64,
    "smeter_power": np.float64,
    "smeter_arrival_ns": np.int64,
    "chunk_start_index": np.int64,
    "chunk_arrival_ns": np.int64,
}


def encode_ri16_le(samples: npt.NDArray[np.float32]) -> bytes:
    """Real float32 audio (full scale 1.0) -> little-endian int16, clipped.

    >>> encode_ri16_le(np.array([1.0, -1.0, 0.5], dtype=np.float32)).hex()
    'ff7f01800040'
    """
    return np.clip(np.rint(samples * _INT16_SCALE), -32768, 32767).astype("<i2").tobytes()


def decode_ri16_le(data: bytes) -> npt.NDArray[np.float32]:
    """Little-endian int16 -> float32 audio with full scale 1.0."""
    if len(data) % 2:
        raise ValueError(f"ri16_le data must be a multiple of 2 bytes, got {len(data)}")
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(_INT16_SCALE)).astype(
        np.float32
    )


def sidecar_bytes(capture: AudioCapture) -> bytes:
    """The spectrum frames, S-meter series and audio message times as an ``.npz`` archive."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: getattr(capture, name) for name in SIDECAR_ARRAYS})
    return buffer.getvalue()


def read_sidecar(data: bytes) -> dict[str, npt.NDArray[Any]]:
    """The sidecar's arrays, checked for presence and dtype (no pickle is ever loaded)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for name, dtype in SIDECAR_ARRAYS.items():
        if name not in arrays:
            raise ValueError(f"sidecar has no {name!r} array")
        if arrays[name].dtype != dtype:
            raise ValueError(
                f"sidecar {name!r} is {arrays[name].dtype}, expected {np.dtype(dtype)}"
            )
    return arrays


def audio_sigmf_metadata(
    capture: AudioCapture,
    *,
    latitude: float,
    longitude: float,
    altitude_m: float,
    sidecar_name: str,
    measurement: object | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The ``.sigmf-meta`` document of an audio capture, validated against the SigMF schema.

    ``core:frequency`` is the RF frequency at 0 Hz of the audio (the dial); the
    frequency measured is ``heimdall:measured_frequency_hz``.
    """
    info = global_info(
        capture,
        datatype=DATATYPE,
        latitude=latitude,
        longitude=longitude,
        altitude_m=altitude_m,
        measurement=measurement,
        description=description,
    )
    info |= {
        "heimdall:capture_kind": "audio",
        "heimdall:measured_frequency_hz": float(capture.center_frequency_hz),
        "heimdall:demodulator": capture.demodulator,
        "heimdall:passband_hz": [float(v) for v in capture.passband_hz],
        "heimdall:fft_center_frequency_hz": float(capture.fft_center_frequency_hz),
        "heimdall:fft_sample_rate_hz": float(capture.fft_sample_rate_hz),
        "heimdall:sidecar": {
            "name": sidecar_name,
            "format": SIDECAR_FORMAT,
            "arrays": sorted(SIDECAR_ARRAYS),
            "fft_db": "spectrum frames (frames x bins, increasing frequency), receiver's dB",
            "smeter_power": "S-meter readings as sent: linear, uncalibrated",
            "arrival_ns": "host arrival time of each message, ns since the Unix epoch",
        },
        "heimdall:receiver": jsonable(dict(capture.metadata)),
    }
    sigmf_file = SigMFFile(global_info=info, skip_checksum=True)
    sigmf_file.add_capture(
        0,
        metadata={
            sigmf.FREQUENCY_KEY: float(capture.dial_frequency_hz),
            sigmf.DATETIME_KEY: sigmf_datetime(capture.start_time),
        },
    )
    sigmf_file.validate()
    metadata: dict[str, Any] = json.loads(sigmf_file.dumps())
    return metadata


def audio_capture_from_sigmf(metadata: dict[str, Any], data: bytes, sidecar: bytes) -> AudioCapture:
    """Rebuild an :class:`AudioCapture` from what :func:`audio_sigmf_metadata` described."""
    global_info = metadata["global"]
    if global_info[sigmf.DATATYPE_KEY] != DATATYPE:
        raise ValueError(f"unsupported SigMF datatype {global_info[sigmf.DATATYPE_KEY]!r}")
    capture = metadata["captures"][0]
    arrays = read_sidecar(sidecar)
    recorder = str(global_info.get(sigmf.RECORDER_KEY, ""))
    driver = recorder.split(" / ", 1)[-1].split(" ", 1)
    low_hz, high_hz = global_info["heimdall:passband_hz"]
    return AudioCapture(
        station_id=global_info["heimdall:station_id"],
        center_frequency_hz=float(global_info["heimdall:measured_frequency_hz"]),
        dial_frequency_hz=float(capture[sigmf.FREQUENCY_KEY]),
        demodulator=str(global_info["heimdall:demodulator"]),
        passband_hz=(float(low_hz), float(high_hz)),
        sample_rate_hz=float(global_info[sigmf.SAMPLE_RATE_KEY]),
        samples=decode_ri16_le(data),
        chunk_start_index=arrays["chunk_start_index"],
        chunk_arrival_ns=arrays["chunk_arrival_ns"],
        fft_db=arrays["fft_db"],
        fft_arrival_ns=arrays["fft_arrival_ns"],
        fft_center_frequency_hz=float(global_info["heimdall:fft_center_frequency_hz"]),
        fft_sample_rate_hz=float(global_info["heimdall:fft_sample_rate_hz"]),
        smeter_power=arrays["smeter_power"],
        smeter_arrival_ns=arrays["smeter_arrival_ns"],
        start_time=datetime.fromisoformat(capture[sigmf.DATETIME_KEY].replace("Z", "+00:00")),
        driver=driver[0],
        driver_version=driver[1] if len(driver) > 1 else "",
    )
