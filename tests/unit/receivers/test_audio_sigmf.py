"""Audio captures stored as SigMF (real int16) with the spectra/S-meter sidecar, and back."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import sigmf
from sigmf import sigmffile

from heimdall.dsp.audio_measurement import measure_audio
from heimdall.dsp.signals import make_audio_capture
from heimdall.receivers.audio_sigmf_io import (
    audio_capture_from_sigmf,
    audio_sigmf_metadata,
    encode_ri16_le,
    read_sidecar,
    sidecar_bytes,
)


def test_round_trip_keeps_every_series() -> None:
    capture = make_audio_capture(tone_offset_hz=250.0)
    meta = audio_sigmf_metadata(
        capture,
        latitude=45.0,
        longitude=7.3,
        altitude_m=600.0,
        sidecar_name="giaveno.heimdall-spectra.npz",
        measurement=measure_audio(capture),
    )
    assert meta["global"]["core:datatype"] == "ri16_le"
    assert meta["global"]["heimdall:sidecar"]["name"] == "giaveno.heimdall-spectra.npz"
    assert meta["captures"][0]["core:frequency"] == capture.dial_frequency_hz
    assert "snr_db" in meta["global"]["heimdall:measurement"]
    back = audio_capture_from_sigmf(meta, encode_ri16_le(capture.samples), sidecar_bytes(capture))
    assert np.max(np.abs(back.samples - capture.samples)) <= 1 / 32767
    for name in (
        "fft_db",
        "fft_arrival_ns",
        "smeter_power",
        "smeter_arrival_ns",
        "chunk_arrival_ns",
    ):
        assert np.array_equal(getattr(back, name), getattr(capture, name)), name
    assert (back.center_frequency_hz, back.passband_hz, back.start_time) == (
        capture.center_frequency_hz,
        capture.passband_hz,
        capture.start_time,
    )
    # The same measurement from what was stored.
    assert measure_audio(back).frequency_offset_hz == pytest.approx(250.0, abs=0.5)


def test_the_sigmf_library_reads_the_recording(tmp_path: Path) -> None:
    directory = tmp_path
    capture = make_audio_capture(tone_offset_hz=0.0)
    meta = audio_sigmf_metadata(
        capture, latitude=45.0, longitude=7.3, altitude_m=0.0, sidecar_name="x.npz"
    )
    (directory / "rx.sigmf-meta").write_text(json.dumps(meta))
    (directory / "rx.sigmf-data").write_bytes(encode_ri16_le(capture.samples))
    recording = sigmffile.fromfile(str(directory / "rx.sigmf-meta"))
    samples = recording.read_samples()
    assert recording.get_global_field(sigmf.DATATYPE_KEY) == "ri16_le"
    assert len(samples) == len(capture.samples)
    assert np.allclose(samples, capture.samples, atol=2 / 32767)


def test_a_sidecar_with_wrong_contents_is_refused() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, fft_db=np.zeros((1, 4), np.float64))
    with pytest.raises(ValueError, match="fft_db"):
        read_sidecar(buffer.getvalue())
    pickled = io.BytesIO()
    np.save(pickled, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        read_sidecar(pickled.getvalue())
