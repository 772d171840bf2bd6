import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heimdall.dsp.measurement import measure
from heimdall.dsp.signals import make_capture
from heimdall.dsp.spectrum import welch_psd

from .conftest import SAMPLE_RATE_HZ, tone_in_noise

scale_db = st.floats(min_value=-60.0, max_value=20.0)
snr_db = st.floats(min_value=5.0, max_value=40.0)
offset_hz = st.floats(min_value=-5_000.0, max_value=5_000.0)
seed = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=25, deadline=None)
@given(scale_db=scale_db, snr_db=snr_db, offset_hz=offset_hz, seed=seed)
def test_scaling_moves_powers_only(
    scale_db: float, snr_db: float, offset_hz: float, seed: int
) -> None:
    iq = tone_in_noise(snr_db, offset_hz, 1.0, seed)
    scaled = (iq * np.float32(10 ** (scale_db / 20))).astype(np.complex64)
    reference = measure(make_capture(iq, SAMPLE_RATE_HZ))
    result = measure(make_capture(scaled, SAMPLE_RATE_HZ))
    # float32 arithmetic: agreement to a few thousandths of a dB / Hz.
    assert abs(result.total_power_dbfs - reference.total_power_dbfs - scale_db) < 0.01
    assert abs(result.signal_power_dbfs - reference.signal_power_dbfs - scale_db) < 0.01
    assert abs(result.noise_floor_dbfs - reference.noise_floor_dbfs - scale_db) < 0.01
    assert abs(result.snr_db - reference.snr_db) < 0.01
    assert abs(result.frequency_offset_hz - reference.frequency_offset_hz) < 0.01


@settings(max_examples=25, deadline=None)
@given(snr_db=snr_db, offset_hz=offset_hz, seed=seed)
def test_complex64_in_float32_out(snr_db: float, offset_hz: float, seed: int) -> None:
    iq = tone_in_noise(snr_db, offset_hz, 0.5, seed)
    assert iq.dtype == np.complex64
    spectrum = welch_psd(iq, SAMPLE_RATE_HZ)
    assert spectrum.psd_fs2_per_hz.dtype == np.float32
    assert spectrum.frequency_offset_hz.dtype == np.float32
    result = measure(make_capture(iq, SAMPLE_RATE_HZ))
    for value in (result.snr_db, result.signal_power_dbfs, result.frequency_offset_hz):
        assert isinstance(value, float)
        assert np.float32(value) == value  # float32-valued
    assert result.spectrum.psd_fs2_per_hz.dtype == np.float32
