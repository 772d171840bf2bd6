import numpy as np
import pytest

from heimdall.dsp.signals import (
    broadband_burst,
    complex_white_noise,
    fractional_delay,
    make_capture,
    tone,
)
from heimdall.dsp.tdoa import MIN_TDOA_QUALITY_DB, _newton_peak, cross_correlation_lag, tdoa_lag

from .conftest import SAMPLE_RATE_HZ

EPOCH_NS = 1_700_000_000 * 10**9
MARGIN = 100  # extra samples generated so the circular delay never wraps into the capture


def delayed_pair(
    delay_samples: float, sample_count: int, seed: int, snr_db: float = 20.0
) -> tuple[np.ndarray, np.ndarray]:
    """A broadband burst and its delayed copy, each with independent receiver noise."""
    rng = np.random.default_rng(seed)
    burst = broadband_burst(sample_count + 2 * MARGIN, rng)
    late = fractional_delay(burst, delay_samples)
    noise_power = 10 ** (-snr_db / 10)
    x = burst[MARGIN:-MARGIN] + complex_white_noise(noise_power, sample_count, rng)
    y = late[MARGIN:-MARGIN] + complex_white_noise(noise_power, sample_count, rng)
    return x, y


@pytest.mark.parametrize("delay_samples", [0.1, 0.25, 0.5, 1.37, 3.9, 7.5, 12.05, 20.0, -6.6])
def test_fractional_delay_is_found_within_005_samples_at_20_db(delay_samples: float) -> None:
    x, y = delayed_pair(delay_samples, 12_000, seed=int(abs(delay_samples) * 100))
    result = cross_correlation_lag(x, y, SAMPLE_RATE_HZ, max_lag_samples=30)
    assert abs(result.lag_samples - delay_samples) < 0.05
    assert result.is_reliable


def test_carrier_gives_a_low_quality_lag() -> None:
    rng = np.random.default_rng(8)
    x = tone(300.0, SAMPLE_RATE_HZ, 12_000) + complex_white_noise(0.01, 12_000, rng)
    y = tone(300.0, SAMPLE_RATE_HZ, 12_000, phase_rad=2.0) + complex_white_noise(0.01, 12_000, rng)
    result = cross_correlation_lag(x, y, SAMPLE_RATE_HZ, max_lag_samples=10)
    assert result.quality_db < MIN_TDOA_QUALITY_DB
    assert not result.is_reliable


def test_peak_outside_max_lag_is_not_found() -> None:
    x, y = delayed_pair(25.0, 6_000, seed=3)
    result = cross_correlation_lag(x, y, SAMPLE_RATE_HZ, max_lag_samples=10)
    assert abs(result.lag_samples) <= 10
    assert not result.is_reliable


def test_tdoa_lag_adds_the_difference_of_gps_start_times() -> None:
    # b starts 37.4 samples later than a; its signal is also delayed by 2.25
    # samples, so b sees the burst 2.25 samples after a on the common time base.
    rng = np.random.default_rng(9)
    burst = broadband_burst(24_000, rng)
    start_offset_samples = 37.4
    a_samples = burst[1_000:13_000]
    b_samples = fractional_delay(burst, 2.25 - start_offset_samples)[1_000:13_000]
    period_ns = 1e9 / SAMPLE_RATE_HZ
    a = make_capture(a_samples, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS)
    b = make_capture(
        b_samples,
        SAMPLE_RATE_HZ,
        start_time_ns=EPOCH_NS + round(start_offset_samples * period_ns),
    )
    result = tdoa_lag(a, b, max_lag_s=5 / SAMPLE_RATE_HZ)
    assert result.lag_s * SAMPLE_RATE_HZ == pytest.approx(2.25, abs=0.05)
    assert result.overlap_s == pytest.approx((12_000 - 38) / SAMPLE_RATE_HZ, abs=1e-9)
    assert result.is_reliable


def test_tdoa_lag_of_swapped_captures_changes_sign() -> None:
    x, y = delayed_pair(4.2, 12_000, seed=10)
    a, b = make_capture(x, SAMPLE_RATE_HZ), make_capture(y, SAMPLE_RATE_HZ)
    forward = tdoa_lag(a, b, max_lag_s=0.002).lag_s
    backward = tdoa_lag(b, a, max_lag_s=0.002).lag_s
    assert forward * SAMPLE_RATE_HZ == pytest.approx(4.2, abs=0.05)
    assert backward == pytest.approx(-forward, abs=1e-6)


def test_tdoa_needs_gps_time() -> None:
    x, y = delayed_pair(1.0, 2_000, seed=11)
    with pytest.raises(ValueError, match="no GPS"):
        tdoa_lag(
            make_capture(x, SAMPLE_RATE_HZ, gps=False),
            make_capture(y, SAMPLE_RATE_HZ),
            max_lag_s=0.001,
        )


def test_tdoa_rejects_captures_that_do_not_overlap() -> None:
    x, y = delayed_pair(1.0, 2_000, seed=12)
    a = make_capture(x, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS)
    b = make_capture(y, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS + 10**9)
    with pytest.raises(ValueError, match="do not overlap"):
        tdoa_lag(a, b, max_lag_s=0.001)


def test_cross_correlation_rejects_nan() -> None:
    x = np.ones(100, np.complex64)
    y = x.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        cross_correlation_lag(x, y, SAMPLE_RATE_HZ, 5)


@pytest.mark.parametrize("true_lag_samples", [-0.73, -0.2, 0.0, 0.05, 0.41, 0.88])
def test_newton_refinement_finds_the_interpolated_maximum(true_lag_samples: float) -> None:
    # A cross-spectrum whose every bin is in phase at true_lag_samples: |C(t)| peaks
    # there exactly. Started from a tenth of a sample off, Newton must land on it.
    rng = np.random.default_rng(round(100 * true_lag_samples) + 1_000)
    length = 8_192
    frequency_cycles = np.fft.fftfreq(length)
    band_power = np.abs(rng.standard_normal(length)) ** 2 * (np.abs(frequency_cycles) < 0.35)
    spectrum = (band_power * np.exp(-2j * np.pi * frequency_cycles * true_lag_samples)).astype(
        np.complex64
    )
    start = float(np.clip(true_lag_samples + 0.1, -1.0, 1.0))
    refined = _newton_peak(spectrum, start)
    assert refined is not None
    assert refined == pytest.approx(true_lag_samples, abs=1e-5)


def test_newton_refinement_gives_up_where_the_curve_is_not_concave() -> None:
    # Two equal spikes 6 samples apart: halfway between them |C| has a minimum.
    length = 4_096
    frequency_cycles = np.fft.fftfreq(length)
    spectrum = (
        np.exp(-2j * np.pi * frequency_cycles * -3.0) + np.exp(-2j * np.pi * frequency_cycles * 3.0)
    ).astype(np.complex64)
    assert _newton_peak(spectrum, 0.0) is None


def test_moment_spectra_are_the_ffts_of_the_weighted_samples_however_requested() -> None:
    # The moments are computed in batches (whatever orders are missing); each must be the
    # FFT of samples * u**order, u from -1 to 1, and a later, longer request must extend
    # the first without changing it.
    from heimdall.dsp.tdoa.drift import _SegmentSpectra

    rng = np.random.default_rng(8)
    samples = (rng.standard_normal(3_000) + 1j * rng.standard_normal(3_000)).astype(np.complex64)
    u = np.linspace(-1.0, 1.0, len(samples))
    segment = _SegmentSpectra(samples)
    first = [s.copy() for s in segment.moment_spectra(4_096, 3)]
    spectra = segment.moment_spectra(4_096, 7)
    assert len(spectra) == 7
    for order, spectrum in enumerate(spectra):
        expected = np.fft.fft(samples.astype(np.complex128) * u**order, 4_096)
        scale = np.max(np.abs(expected))
        assert np.max(np.abs(spectrum - expected)) < 1e-5 * scale
    for before, after in zip(first, spectra[:3], strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(segment.moment_spectrum(4_096, 5), spectra[5])
