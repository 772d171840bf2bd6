"""The SigMF metadata we write is valid SigMF, and reads back as the capture it came from."""

from __future__ import annotations

import numpy as np
from sigmf import SigMFFile

from heimdall.dsp.measurement import measure
from heimdall.dsp.signals import complex_white_noise, make_capture, tone
from heimdall.receivers.sigmf_io import (
    capture_from_sigmf,
    decode_ci16_le,
    encode_ci16_le,
    sigmf_metadata,
)


def test_metadata_validates_against_the_sigmf_schema_and_round_trips() -> None:
    rng = np.random.default_rng(3)
    samples = tone(300.0, 12_001.0, 512 * 24, amplitude=0.1) + complex_white_noise(
        1e-4, 512 * 24, rng
    )
    capture = make_capture(samples.astype(np.complex64), 12_001.0, station_id="torino")
    metadata = sigmf_metadata(
        capture,
        latitude=45.07,
        longitude=7.69,
        altitude_m=240.0,
        measurement=measure(capture),
        description="round trip",
    )
    SigMFFile(metadata=metadata, skip_checksum=True).validate()  # raises when invalid
    back = capture_from_sigmf(metadata, encode_ci16_le(capture.samples))
    assert back.station_id == "torino"
    assert back.sample_rate_hz == capture.sample_rate_hz
    assert np.array_equal(back.block_time_ns, capture.block_time_ns)
    assert np.allclose(back.samples, capture.samples, atol=1 / 32767)


def test_ci16_samples_decode_to_i_plus_j_q_over_full_scale() -> None:
    pairs = np.array([[32767, -32767], [0, 16384], [-32768, 1], [7, -7]], dtype="<i2")
    decoded = decode_ci16_le(pairs.tobytes())
    assert decoded.dtype == np.complex64
    # Each sample is I + jQ, each component int16 / 32767 in float32, exactly.
    expected = (pairs.astype(np.float32) / np.float32(32767.0)).astype(np.float64)
    np.testing.assert_array_equal(decoded.real, expected[:, 0])
    np.testing.assert_array_equal(decoded.imag, expected[:, 1])
    assert decoded[0] == 1 - 1j
