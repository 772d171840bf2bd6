import numpy as np
import pytest
from scipy import signal

from heimdall.dsp.noise import chi2_median_to_mean, noise_floor_fs2_per_hz
from heimdall.dsp.signals import complex_white_noise, tone
from heimdall.dsp.spectrum import validate_iq, welch_psd

from .conftest import SAMPLE_RATE_HZ


def test_welch_psd_matches_scipy_welch_fftshifted() -> None:
    iq = complex_white_noise(1.0, 5_000, np.random.default_rng(0)) + tone(900.0, 12_000.0, 5_000)
    psd = welch_psd(iq, SAMPLE_RATE_HZ, segment_length=128)
    frequency_hz, expected = signal.welch(
        iq, SAMPLE_RATE_HZ, nperseg=128, detrend=False, return_onesided=False
    )
    np.testing.assert_allclose(psd.psd_fs2_per_hz, np.fft.fftshift(expected), rtol=2e-5)
    np.testing.assert_allclose(psd.frequency_offset_hz, np.fft.fftshift(frequency_hz))
    assert psd.psd_fs2_per_hz.dtype == np.float32


def test_absolute_frequency_axis_is_centred_on_the_tuned_frequency() -> None:
    psd = welch_psd(tone(0.0, 12_000.0, 1_024), 12_000.0, center_frequency_hz=145_500_000.0)
    assert psd.frequency_hz.dtype == np.float64
    assert psd.frequency_hz[np.argmax(psd.psd_fs2_per_hz)] == 145_500_000.0
    assert psd.frequency_hz[0] == 145_500_000.0 - 6_000.0


def test_psd_integrates_to_the_power_of_a_tone() -> None:
    # Every windowed segment of a tone has the same energy, so the integral is exact.
    psd = welch_psd(tone(1_234.5, SAMPLE_RATE_HZ, 12_000, amplitude=0.5), SAMPLE_RATE_HZ)
    integrated = np.sum(psd.psd_fs2_per_hz, dtype=np.float64) * psd.bin_width_hz
    assert integrated == pytest.approx(0.25, rel=1e-4)


def test_welch_degrees_of_freedom_match_the_observed_bin_variance() -> None:
    # A Welch bin of noise is N0 chi2(nu)/nu: its relative variance is 2/nu.
    iq = complex_white_noise(1.0, 120_000, np.random.default_rng(2))
    psd = welch_psd(iq, SAMPLE_RATE_HZ, segment_length=64)
    relative_variance = np.var(psd.psd_fs2_per_hz / np.mean(psd.psd_fs2_per_hz))
    assert relative_variance == pytest.approx(2 / psd.degrees_of_freedom, rel=0.25)


def test_median_bias_factor_is_ln2_for_a_single_periodogram() -> None:
    assert chi2_median_to_mean(2.0) == pytest.approx(np.log(2.0))


@pytest.mark.parametrize("segment_length", [64, 128, 1024])
def test_noise_floor_is_unbiased_for_every_resolution(segment_length: int) -> None:
    iq = complex_white_noise(1e-2, 60_000, np.random.default_rng(3))
    psd = welch_psd(iq, SAMPLE_RATE_HZ, segment_length=segment_length)
    noise_floor_dbfs = 10 * np.log10(noise_floor_fs2_per_hz(psd) * SAMPLE_RATE_HZ)
    assert noise_floor_dbfs == pytest.approx(-20.0, abs=0.2)


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros(0, np.complex64), "empty"),
        (np.zeros(10, np.complex64), "too short"),
        (np.array([1, np.nan, 1, 1] * 64, np.complex64), "NaN or Inf"),
        (np.array([1, np.inf, 1, 1] * 64, np.complex64), "NaN or Inf"),
        (np.ones(256, np.float32), "complex"),
        (np.ones(256, np.int16), "complex"),
        (np.ones((2, 256), np.complex64), "one-dimensional"),
    ],
)
def test_bad_input_is_rejected_naming_the_problem(samples: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        welch_psd(samples, SAMPLE_RATE_HZ)


def test_bad_sample_rate_is_rejected() -> None:
    with pytest.raises(ValueError, match="sample_rate_hz"):
        welch_psd(np.ones(256, np.complex64), 0.0)


def test_complex128_is_accepted_as_complex64() -> None:
    assert validate_iq(np.ones(4, np.complex128), min_samples=1).dtype == np.complex64
