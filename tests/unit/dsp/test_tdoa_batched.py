"""A reference's partners batched through each stage (``tdoa_lags``) give what each pair
gives on its own (``tdoa_lag``): the rows of the batched FFTs must not mix."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heimdall.dsp.signals import broadband_burst, fractional_delay, make_capture, tone
from heimdall.dsp.tdoa import PreparedCapture, TdoaLag, tdoa_lag, tdoa_lags
from heimdall.dsp.tdoa.windows import WindowPair, window_lags, window_lags_batched

from .conftest import SAMPLE_RATE_HZ
from .test_tdoa_frequency_offset import EPOCH_NS, multitone, with_noise

SEARCH_HZ = 4_500.0


def _partner(
    delay_samples: float,
    offset_hz: float,
    *,
    rate_ppm: float = 0.0,
    late_s: float = 0.0,
    count: int = 24_000,
    seed: int = 1,
) -> tuple[object, float]:
    """A receiver hearing the reference's signal ``delay_samples`` later, ``offset_hz``
    higher, sampling ``rate_ppm`` faster and starting ``late_s`` later: evaluated at its
    own instants, so the delay, rate and offset are exact."""
    rate_hz = SAMPLE_RATE_HZ * (1 + rate_ppm * 1e-6)
    times_s = late_s + np.arange(count) / rate_hz
    samples = multitone(times_s - delay_samples / SAMPLE_RATE_HZ, offset_hz, 40)
    rng = np.random.default_rng(seed)
    capture = make_capture(
        with_noise(samples, 20.0, rng),
        rate_hz,
        station_id=f"p{seed}",
        start_time_ns=EPOCH_NS + round(late_s * 1e9),
    )
    return capture, delay_samples


def test_batched_partners_equal_one_pair_at_a_time_on_analytic_signals() -> None:
    times_s = np.arange(24_000) / SAMPLE_RATE_HZ
    reference = make_capture(
        with_noise(multitone(times_s, 0.0, 40), 20.0, np.random.default_rng(0)),
        SAMPLE_RATE_HZ,
        start_time_ns=EPOCH_NS,
    )
    partners = [
        _partner(2.37, 7.3, seed=1),
        _partner(-6.6, 1_234.0, rate_ppm=30.0, seed=2),  # coarse search, drift series
        _partner(0.4, -15.0, late_s=0.25, count=18_000, seed=3),  # a shorter cut of a
        _partner(5.2, 0.0, rate_ppm=400.0, seed=4),  # resampled onto a's rate
    ]
    # Between them, a partner overlapping a by 100 samples (too short to search: its own
    # error, the others correlated), a carrier alone (correlates flat: no windows) and a
    # recording of another time.
    overlap_start_ns = EPOCH_NS + round(23_900 / SAMPLE_RATE_HZ * 1e9)
    barely = make_capture(partners[0][0].samples, SAMPLE_RATE_HZ, start_time_ns=overlap_start_ns)
    carrier = make_capture(
        tone(300.0, SAMPLE_RATE_HZ, 24_000), SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS
    )
    elsewhen = make_capture(partners[0][0].samples, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS + 10**10)
    captures = [partners[0][0], barely, *(c for c, _ in partners[1:]), carrier, elsewhen]
    max_lags_s = [20 / SAMPLE_RATE_HZ] * len(captures)

    batched = tdoa_lags(
        PreparedCapture(reference),
        captures,
        max_lags_s=max_lags_s,
        max_frequency_offset_hz=SEARCH_HZ,
    )
    assert len(batched) == len(captures)
    for capture, max_lag_s, together in zip(captures, max_lags_s, batched, strict=True):
        try:
            alone: TdoaLag | ValueError = tdoa_lag(
                reference, capture, max_lag_s=max_lag_s, max_frequency_offset_hz=SEARCH_HZ
            )
        except ValueError as exc:
            alone = exc
        if isinstance(alone, ValueError):
            assert isinstance(together, ValueError) and str(together) == str(alone)
            continue
        assert isinstance(together, TdoaLag)
        for field in dataclasses.fields(TdoaLag):
            got, expected = getattr(together, field.name), getattr(alone, field.name)
            # float32 rounding: pocketfft may take several rows through SIMD lanes at once.
            assert np.asarray(got, dtype=float) == pytest.approx(
                np.asarray(expected, dtype=float), rel=1e-6, abs=1e-6 / SAMPLE_RATE_HZ, nan_ok=True
            ), field.name
    # The analytic truth, so that the equality is not that of two wrong answers.
    analytic = [batched[0], *batched[2:5]]
    for (_, delay_samples), lag in zip(partners, analytic, strict=True):
        assert isinstance(lag, TdoaLag)
        assert lag.windows > 0
        assert lag.lag_s * SAMPLE_RATE_HZ == pytest.approx(delay_samples, abs=0.05)
    assert isinstance(batched[1], ValueError) and "too short" in str(batched[1])
    assert isinstance(batched[5], TdoaLag) and not batched[5].is_reliable
    assert isinstance(batched[6], ValueError) and "overlap" in str(batched[6])


def test_batched_windows_equal_one_pair_at_a_time() -> None:
    burst = broadband_burst(48_000, np.random.default_rng(7))
    # Two lengths of x (two FFT lengths), a drift, a notch: each row keeps its own.
    rows = [
        (100, 40_000, 3.25, 0.0, None),
        (300, 30_000, -2.5, 1e-6, 0.01),
        (200, 40_000, 1.5, 0.0, None),
    ]
    pairs, alone = [], []
    for start, count, delay, drift, line_cycles in rows:
        x = burst[start : start + count]
        y = fractional_delay(burst, delay)[start : start + count + 400]
        pairs.append(WindowPair(len(x), y, delay, drift, line_cycles, x=x))
        alone.append(window_lags(x, y, delay, drift, line_cycles=line_cycles, notch_cycles=0.002))
    together = window_lags_batched(pairs, notch_cycles=0.002)
    for one, batch in zip(alone, together, strict=True):
        assert one is not None and batch is not None
        np.testing.assert_allclose(batch.lags_samples, one.lags_samples, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(batch.in_cluster, one.in_cluster)
        assert batch.sigma_samples == pytest.approx(one.sigma_samples, rel=1e-9, abs=1e-15)


def test_stretched_spectra_of_several_drifts_are_each_drifts_series() -> None:
    from math import factorial

    from heimdall.dsp.tdoa.drift import _SegmentSpectra, _series_terms

    x = broadband_burst(4_000, np.random.default_rng(3))
    length, drifts = 4_608, [0.8, -0.3, 0.0]
    together = _SegmentSpectra(x).stretched_spectra(length, drifts)
    u = np.linspace(-1.0, 1.0, len(x))
    angular = -2j * np.pi * np.fft.fftfreq(length)
    for drift, row in zip(drifts, together, strict=True):
        # The series in float64, straight from its definition, to the drift's own terms.
        terms = _series_terms(np.pi * abs(drift))
        expected = sum(
            np.fft.fft(x * u**m, length) * (angular * drift) ** m / factorial(m)
            for m in range(terms)
        )
        scale = np.max(np.abs(expected))
        np.testing.assert_allclose(row, expected, rtol=0, atol=1e-5 * scale)
        alone = _SegmentSpectra(x).stretched_spectra(length, [drift])[0]
        np.testing.assert_allclose(row, alone, rtol=0, atol=1e-6 * scale)
