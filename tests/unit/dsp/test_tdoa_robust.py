"""Issue 15's TDOA robustness on analytic signals: wide frequency search, peak choice
with a resolvable echo, sliding-window lags and their empirical sigma."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.dsp.signals import (
    broadband_burst,
    complex_white_noise,
    fractional_delay,
    make_capture,
)
from heimdall.dsp.tdoa import cross_correlation_lag, tdoa_lag
from heimdall.dsp.tdoa.carrier import coarse_frequency_offset_hz
from heimdall.dsp.tdoa.windows import window_lags

RATE_HZ = 12_000.0


def burst(count: int, seed: int, fraction: float = 0.4) -> np.ndarray:
    return broadband_burst(count, np.random.default_rng(seed), bandwidth_fraction=fraction)


def shifted(samples: np.ndarray, frequency_hz: float) -> np.ndarray:
    n = np.arange(len(samples))
    return (samples * np.exp(2j * np.pi * frequency_hz * n / RATE_HZ)).astype(np.complex64)


@pytest.mark.parametrize("offset_hz", [-3_700.0, -1_234.5, 850.0, 2_600.0])
def test_a_converter_offset_of_kilohertz_is_found_and_the_lag_kept(offset_hz: float) -> None:
    source = burst(30_000, 1)
    late = shifted(fractional_delay(source, 2.6), offset_hz)
    rng = np.random.default_rng(2)
    a = make_capture(source[:24_000] + complex_white_noise(0.01, 24_000, rng), RATE_HZ)
    b = make_capture(late[:24_000] + complex_white_noise(0.01, 24_000, rng), RATE_HZ)
    assert coarse_frequency_offset_hz(a.samples, b.samples, RATE_HZ, 4_500.0) == pytest.approx(
        offset_hz, abs=6.0
    )
    lag = tdoa_lag(a, b, max_lag_s=1e-3, max_frequency_offset_hz=4_500.0)
    assert lag.frequency_offset_hz == pytest.approx(offset_hz, abs=0.05)
    assert lag.lag_s * RATE_HZ == pytest.approx(2.6, abs=0.01)
    # The narrow search alone cannot: it has no peak to find.
    narrow = tdoa_lag(a, b, max_lag_s=1e-3)
    assert abs(narrow.lag_s * RATE_HZ - 2.6) > 0.05 or not narrow.is_reliable


def test_a_stronger_resolvable_echo_loses_to_the_earlier_direct_path() -> None:
    source = burst(20_000, 3, fraction=0.8)
    received = fractional_delay(source, 4.3) + 1.15 * fractional_delay(source, 4.3 + 9.0)
    result = cross_correlation_lag(source[200:-200], received[200:-200], RATE_HZ, 20)
    assert result.lag_samples == pytest.approx(4.3, abs=0.05)
    assert result.rival_lags_samples and result.rival_lags_samples[0] == pytest.approx(
        13.3, abs=0.3
    )
    assert result.is_reliable
    # A weak echo (> 3 dB down) is no rival to the direct path's peak.
    weak = fractional_delay(source, 4.3) + 0.3 * fractional_delay(source, 13.3)
    assert (
        cross_correlation_lag(source[200:-200], weak[200:-200], RATE_HZ, 20).rival_lags_samples
        == ()
    )


def test_window_lags_follow_a_fading_echo_and_say_how_far_they_scatter() -> None:
    count = 48_000
    source = burst(count + 400, 4)
    direct = fractional_delay(source, 3.0)
    echo = fractional_delay(source, 3.6)
    # The echo's phase turns once over the record: the composite lag wanders with it.
    phase = np.exp(2j * np.pi * np.arange(count + 400) / (count + 400))
    received = (direct + 0.6 * phase * echo).astype(np.complex64)
    clean = window_lags(source[200:-200], direct[200:-200], 3.0)
    faded = window_lags(source[200:-200], received[200:-200], 3.2)
    assert clean is not None and faded is not None
    assert clean.median_samples == pytest.approx(3.0, abs=0.002)
    assert np.ptp(faded.lags_samples) > 0.3  # the echo pulls from -0.9 to +0.2 sample
    assert faded.sigma_samples > 20 * clean.sigma_samples


def test_windows_drop_an_interfered_stretch() -> None:
    count = 48_000
    source = burst(count + 400, 5)
    received = fractional_delay(source, 2.25)[200:-200].copy()
    # A strong interferer in one window of y only.
    interferer = burst(6_000, 6, fraction=0.6) * 8.0
    received[6_000:12_000] += interferer
    result = window_lags(source[200:-200], received, 2.25)
    assert result is not None and result.agree
    assert result.median_samples == pytest.approx(2.25, abs=0.01)
