"""Issue 15 study: a pair's lag under a fading echo, from the whole span or from its windows.

One pair: ``a`` hears the signal directly, ``b`` through the simulator's own tapped
delay line (``simulator.channel.tap_gains``: a Rician direct path and Rayleigh echoes
fading as sums of 8 Doppler sinusoids). Each case prints, over many draws, the bias
(mean, with its standard error), the median, RMS and 90th percentile of |error| in us
against the direct path's delay, for

* ``span``: the whole span's lag (``tdoa_lag``, what the service uses);
* ``mean8`` / ``median8`` / ``all8``: the in-cluster windows' mean, their median, the mean
  of every window (``windows.window_lags``, 8 windows), and the same for 16 windows;
* for one echo, three models of the span's shift ``tau Re g``, ``g = r / (1 + r)`` with
  ``r`` the echo's gain over the direct path's: ``equal`` (``g`` averaged over time),
  ``power`` (weighted by ``|1 + r|^2``) and ``coherent`` (``g`` of the time-averaged
  gains), and the span's distance to the power and coherent models.

``lengths`` instead prints the span's and the windows' mean error over realistic links
for spans of 1, 2 and 5 s: the longer the span, the more of a fading echo it averages.

Run: PYTHONPATH=src .venv/bin/python benchmarks/study_window_mean.py [bb|fm|lengths] [draws]
Prints figures; asserts nothing (the property it found is
``tests/unit/dsp/test_tdoa_multipath.py::test_a_turning_echo_averages_out_of_the_whole_span_peak``).
"""

from __future__ import annotations

import sys

import numpy as np

from heimdall.dsp.signals import (
    broadband_burst,
    complex_white_noise,
    fm_signal,
    fractional_delay,
    make_capture,
    voice_like_modulation,
)
from heimdall.dsp.tdoa import tdoa_lag
from heimdall.dsp.tdoa.windows import window_lags
from heimdall.simulator.channel import Tap, tap_gains, taps_of

SAMPLE_RATE_HZ = 12_000.0
DIRECT_SAMPLES = 3.3
PAD = 400


def _taps(
    rng: np.random.Generator,
    echo_db: float,
    tau_us: float,
    k_db: float,
    fading_hz: float,
    echoes: int,
) -> tuple[Tap, ...]:
    """A tapped delay line as ``channel.link_taps`` draws one, with chosen settings."""
    powers = [1.0] + [10 ** (echo_db / 10)] * echoes
    delays = [0.0] + [tau_us * 1e-6 * (k + 1) / echoes for k in range(echoes)]
    return taps_of(delays, powers, k_db, fading_hz, rng)


def _draw(
    rng: np.random.Generator,
    kind: str,
    seconds: float,
    snr_db: float,
    echo_db: float | None,
    tau_us: float,
    k_db: float,
    fading_hz: float,
) -> dict[str, float] | None:
    """One pair's errors (us); ``echo_db`` None draws the realistic world's link."""
    count = int(seconds * SAMPLE_RATE_HZ)
    if kind == "bb":
        signal = broadband_burst(count + 2 * PAD, rng)
    else:
        message = voice_like_modulation(SAMPLE_RATE_HZ, count + 2 * PAD, rng)
        signal = fm_signal(message, SAMPLE_RATE_HZ, deviation_hz=2_500.0)
    echoes = 1
    if echo_db is None:  # as impairments.realistic_impairments draws them
        echoes = int(rng.integers(1, 3))
        tau_us = float(rng.uniform(1.0, 20.0))
        echo_db = float(rng.uniform(-18.0, -8.0))
        k_db = float(rng.uniform(6.0, 15.0))
        fading_hz = float(np.exp(rng.uniform(np.log(0.05), np.log(1.0))))
    taps = _taps(rng, echo_db, tau_us, k_db, fading_hz, echoes)
    gains = tap_gains(taps, int(rng.integers(0, 10**9)) * 10**9, np.arange(count) / SAMPLE_RATE_HZ)
    y = np.zeros(count, dtype=np.complex128)
    for row, tap in enumerate(taps):
        delayed = fractional_delay(signal, DIRECT_SAMPLES + tap.delay_s * SAMPLE_RATE_HZ)
        y += gains[row] * delayed[PAD : PAD + count]
    noise = float(np.mean(np.abs(y) ** 2)) / 10 ** (snr_db / 10)
    y = (y + complex_white_noise(noise, count, rng)).astype(np.complex64)
    x = signal[PAD : PAD + count] + complex_white_noise(10 ** (-snr_db / 10), count, rng)
    x = x.astype(np.complex64)
    span = tdoa_lag(
        make_capture(x, SAMPLE_RATE_HZ), make_capture(y, SAMPLE_RATE_HZ), max_lag_s=0.002
    ).lag_samples
    lags = {"span": span}
    for windows in (8, 16):
        found = window_lags(x, y, span, count=windows)
        if found is None:
            return None
        lags[f"mean{windows}"] = float(np.mean(found.lags_samples[found.in_cluster]))
        lags[f"median{windows}"] = found.median_samples
        lags[f"all{windows}"] = float(np.mean(found.lags_samples))
    if echoes == 1:
        tau = tau_us * 1e-6 * SAMPLE_RATE_HZ
        ratio = gains[1] / gains[0]
        shift = tau * np.real(ratio / (1 + ratio))
        power = np.abs(gains[0] + gains[1]) ** 2
        mean_ratio = gains[1].mean() / gains[0].mean()
        lags["equal"] = float(np.mean(shift)) + DIRECT_SAMPLES
        lags["power"] = float(np.sum(power * shift) / np.sum(power)) + DIRECT_SAMPLES
        lags["coherent"] = float(tau * np.real(mean_ratio / (1 + mean_ratio))) + DIRECT_SAMPLES
    errors = {k: (v - DIRECT_SAMPLES) / SAMPLE_RATE_HZ * 1e6 for k, v in lags.items()}
    if echoes == 1:
        errors["span-power"] = errors["span"] - errors["power"]
        errors["span-coherent"] = errors["span"] - errors["coherent"]
    return errors


CASES = [
    # seconds, SNR dB, echo dB (None: the realistic world's draws), tau us, K dB, fading Hz
    (3.0, 15.0, -6.0, 15.0, 10.0, 1.0),
    (3.0, 15.0, -6.0, 15.0, 10.0, 0.2),
    (3.0, 15.0, -6.0, 15.0, 10.0, 0.05),
    (3.0, 15.0, -13.0, 10.0, 10.0, 0.3),
    (3.0, 10.0, -8.0, 20.0, 6.0, 1.0),
    (3.0, 15.0, None, 0.0, 0.0, 0.0),
    (3.0, 10.0, None, 0.0, 0.0, 0.0),
]


def _lengths(draws: int) -> None:
    for kind in ("bb", "fm"):
        for seconds in (1.0, 2.0, 5.0):
            rng = np.random.default_rng(1)
            rows = [
                r
                for r in (_draw(rng, kind, seconds, 15.0, None, 0, 0, 0) for _ in range(draws))
                if r
            ]
            for key in ("span", "mean8"):
                values = np.abs(np.array([r[key] for r in rows]))
                print(
                    f"{kind} {seconds:.0f} s, realistic links, 15 dB, {key:5s}: median |e| "
                    f"{np.median(values):.3f} us, p90 {np.percentile(values, 90):.3f}, "
                    f"rms {np.sqrt(np.mean(values**2)):.3f} ({len(rows)} draws)"
                )


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "bb"
    draws = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    if kind == "lengths":
        _lengths(draws)
        return
    for case in CASES:
        rng = np.random.default_rng(1)
        rows = [r for r in (_draw(rng, kind, *case) for _ in range(draws)) if r is not None]
        seconds, snr_db, echo_db, tau_us, k_db, fading_hz = case
        link = (
            "realistic links"
            if echo_db is None
            else f"echo {echo_db:.0f} dB {tau_us:.0f} us, K {k_db:.0f} dB, fading {fading_hz} Hz"
        )
        print(f"{kind} {seconds:.0f} s {snr_db:.0f} dB, {link}: {len(rows)} draws")
        for key in rows[0]:
            values = np.array([r[key] for r in rows if key in r])
            print(
                f"  {key:14s} bias {values.mean():+.3f} +- {values.std() / np.sqrt(len(values)):.3f}"
                f"  median {np.median(values):+.3f}  rms {np.sqrt(np.mean(values**2)):.3f}"
                f"  p90 |e| {np.percentile(np.abs(values), 90):.3f}"
            )


if __name__ == "__main__":
    main()
