"""The echo bias bound (``dsp.tdoa.multipath``) against a two-path channel of known echo.

One echo of amplitude ``a`` (< 1) and delay ``tau``, phase ``phi``: the peak moves to the
channel's group delay ``tau Re g``, ``g = a e^{j phi} / (1 + a e^{j phi})``, and the bound
the curvature gives is ``tau |g| / sqrt(a) = tau sqrt(a) / |1 + a e^{j phi}|``.
"""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.dsp.signals import broadband_burst, complex_white_noise, fractional_delay
from heimdall.dsp.tdoa import cross_correlation_lag
from heimdall.dsp.tdoa.multipath import echo_bias_bound_samples

SAMPLE_RATE_HZ = 12_000.0


def _two_path(a: float, tau: float, phi: float, f: np.ndarray) -> np.ndarray:
    return 1 + a * np.exp(1j * (phi - 2 * np.pi * f * tau))


def _analytic_shift_and_bound(a: float, tau: float, phi: float) -> tuple[float, float]:
    echo = a * np.exp(1j * phi)
    g = echo / (1 + echo)
    return tau * float(g.real), tau * np.sqrt(a) / float(abs(1 + echo))


@pytest.mark.parametrize("phi", [0.0, np.pi / 2, 2.0, np.pi])
@pytest.mark.parametrize(("a", "tau"), [(0.5, 0.2), (0.3, 0.1), (0.2, 0.24)])
def test_bound_of_an_exact_two_path_channel_is_the_analytic_one(
    a: float, tau: float, phi: float
) -> None:
    f = np.fft.fftfreq(8_192)
    channel = _two_path(a, tau, phi, f)
    shift, bound = _analytic_shift_and_bound(a, tau, phi)
    measured = echo_bias_bound_samples(channel, np.ones_like(f), np.abs(channel) ** 2, f)
    # The fit averages the curvature over the band (f tau up to 0.12 cycles here).
    assert measured == pytest.approx(bound, rel=0.15)
    assert measured >= abs(shift)


def test_a_pure_delay_and_a_flat_gain_give_no_bound() -> None:
    """A delay is a phase slope, a gain a constant: neither is curvature."""
    f = np.fft.fftfreq(8_192)
    cross = 3.0 * np.exp(-2j * np.pi * f * 0.37)
    assert echo_bias_bound_samples(cross, np.ones_like(f), 9.0 * np.ones_like(f), f) == 0.0


def test_bands_without_the_common_signal_give_no_bound() -> None:
    f = np.fft.fftfreq(8_192)
    rng = np.random.default_rng(3)
    incoherent = complex_white_noise(1.0, len(f), rng)  # nothing in common
    assert echo_bias_bound_samples(incoherent, np.ones_like(f), np.ones_like(f), f) == 0.0


def _pair(
    a: float, tau: float, phi: float, snr_db: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Lag error and echo bound (samples) of a broadband pair, y with one echo."""
    count, margin, delay = 24_000, 200, 3.0
    burst = broadband_burst(count + 2 * margin, rng)
    echoed = fractional_delay(burst, delay) + a * np.exp(1j * phi) * fractional_delay(
        burst, delay + tau
    )
    noise_power = 10 ** (-snr_db / 10)
    x = burst[margin:-margin] + complex_white_noise(noise_power, count, rng)
    y = echoed[margin:-margin] + complex_white_noise(noise_power, count, rng)
    lag = cross_correlation_lag(x, y, SAMPLE_RATE_HZ, 10, echo_bound=True)
    return lag.lag_samples - delay, lag.echo_bias_bound_samples


@pytest.mark.parametrize("phi", [0.0, np.pi / 2, np.pi])
def test_correlation_carries_a_bound_that_holds_its_echo_shift(phi: float) -> None:
    """A -8 dB echo 20 us late at 12 kHz (0.24 sample): unresolved, it moves the peak."""
    a, tau = 0.4, 0.24
    shift, bound = _analytic_shift_and_bound(a, tau, phi)
    error, measured = _pair(a, tau, phi, 20.0, np.random.default_rng(7))
    assert error == pytest.approx(shift, abs=0.25 * abs(shift) + 0.003)  # the echo moved it
    assert measured == pytest.approx(bound, rel=0.3)
    assert measured >= abs(error)


def test_without_an_echo_noise_alone_rarely_reads_as_one() -> None:
    rng = np.random.default_rng(21)
    bounds = [_pair(0.0, 0.0, 0.0, snr_db, rng)[1] for snr_db in (10.0, 20.0) for _ in range(10)]
    assert sum(b > 0 for b in bounds) <= 2


def test_noise_floors_are_fitted_out_of_a_falling_spectrum_at_unequal_snrs() -> None:
    """The raw power ratio of receivers at different SNRs bends where the spectrum falls;
    with the floors fitted out (from the noise-free cross-spectrum) it is flat again."""
    from heimdall.dsp.tdoa.multipath import _signal_powers

    bins = np.full(14, 750)
    shape = np.exp(-((np.linspace(-1, 1, 14) / 0.8) ** 4))  # falls off at the edges
    a, b = 1000.0 * shape * bins, 300.0 * shape * bins  # |H_b / H_a|^2 = 0.3 everywhere
    pxx, pyy = a + 10.0 * bins, b + 300.0 * bins  # b's floor 30x a's
    raw = 0.5 * np.log(pyy / pxx)
    assert np.ptp(raw) > 0.5  # what the echo bound would read as curvature
    signal_x, signal_y = _signal_powers(pxx, pyy, np.sqrt(a * b), bins)
    np.testing.assert_allclose(0.5 * np.log(signal_y / signal_x), 0.5 * np.log(0.3), atol=1e-6)


def test_tdoa_lag_carries_the_bound_in_seconds_only_when_asked() -> None:
    from heimdall.dsp.signals import make_capture
    from heimdall.dsp.tdoa import tdoa_lag

    rng = np.random.default_rng(9)
    count, margin, a, tau = 24_000, 200, 0.4, 0.24
    burst = broadband_burst(count + 2 * margin, rng)
    echoed = fractional_delay(burst, 3.0) + a * fractional_delay(burst, 3.0 + tau)
    x = burst[margin:-margin] + complex_white_noise(0.01, count, rng)
    y = echoed[margin:-margin] + complex_white_noise(0.01, count, rng)
    first = make_capture(x.astype(np.complex64), SAMPLE_RATE_HZ)
    second = make_capture(y.astype(np.complex64), SAMPLE_RATE_HZ)
    assert tdoa_lag(first, second, max_lag_s=0.002).echo_bias_bound_s == 0.0
    measured = tdoa_lag(first, second, max_lag_s=0.002, echo_bound=True).echo_bias_bound_s
    _, bound = _analytic_shift_and_bound(a, tau, 0.0)
    assert measured == pytest.approx(bound / SAMPLE_RATE_HZ, rel=0.3)


def _turning_echo_errors(turns_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Errors (samples) of the whole span's lag and of its in-cluster windows' mean, for
    a -6 dB echo 20 us late whose phase turns at ``turns_hz`` over 3 s, from 12 phases."""
    from heimdall.dsp.signals import make_capture
    from heimdall.dsp.tdoa import tdoa_lag
    from heimdall.dsp.tdoa.windows import window_lags

    rng = np.random.default_rng(11)
    count, margin, delay, a, tau = 36_000, 200, 3.0, 0.5, 0.24
    turning = np.exp(2j * np.pi * turns_hz * np.arange(count) / SAMPLE_RATE_HZ)
    spans, windows = [], []
    for phi in np.linspace(0.0, 2 * np.pi, 12, endpoint=False):
        burst = broadband_burst(count + 2 * margin, rng)
        echo = a * np.exp(1j * phi) * turning * fractional_delay(burst, delay + tau)[margin:-margin]
        x = burst[margin:-margin] + complex_white_noise(0.01, count, rng)
        y = fractional_delay(burst, delay)[margin:-margin] + echo
        y = (y + complex_white_noise(0.01, count, rng)).astype(np.complex64)
        lag = tdoa_lag(
            make_capture(x, SAMPLE_RATE_HZ), make_capture(y, SAMPLE_RATE_HZ), max_lag_s=0.002
        )
        windowed = window_lags(x, y, lag.lag_samples)
        assert windowed is not None
        spans.append(lag.lag_samples - delay)
        windows.append(float(np.mean(windowed.lags_samples[windowed.in_cluster])) - delay)
    return np.array(spans), np.array(windows)


def test_a_turning_echo_averages_out_of_the_whole_span_peak() -> None:
    """The whole span's correlation sums the echo's gain coherently: over whole turns of
    its phase that sum is ~0 and the peak stays on the direct path, not at the
    power-weighted mean delay ``a^2 tau / (1 + a^2)`` (0.048 sample, 4 us, here). The
    windows' equal-weight mean, each window a part of a turn, is farther off: an
    equal-weight window mean has no bias of the span's peak to remove (issue 15)."""
    power_weighted = 0.25 * 0.24 / 1.25
    span, windows = _turning_echo_errors(1.0)  # 3 turns
    span_rms, windows_rms = np.sqrt(np.mean(span**2)), np.sqrt(np.mean(windows**2))
    assert abs(np.mean(span)) < 0.1 * power_weighted
    assert span_rms < 0.1 * power_weighted
    assert windows_rms > 3 * span_rms
    static, _ = _turning_echo_errors(0.0)  # the same echo, still: it does move the peak
    assert np.sqrt(np.mean(static**2)) > 10 * span_rms
