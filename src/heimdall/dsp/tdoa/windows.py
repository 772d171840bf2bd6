"""Pair statistics: the lag measured over sliding windows, clustered, with an empirical sigma.

Once a pair is aligned (lag, drift and frequency offset known from the whole span),
each of ``WINDOW_COUNT`` consecutive windows is correlated on its own around the
expected lag: one FFT of each side per window and a Newton refinement of the peak on
the band-limited interpolation. What the windows say:

* their spread is an empirical sigma: multipath fading, interference bursts and a
  syllabic modulation move the lag from window to window in ways no peak-height
  formula knows; the pair's sigma is never below it;
* their cluster (the windows within ``CLUSTER_SIGMAS`` robust sigmas of the median) is
  what the pair agrees on: windows outside it (an impulse, an interferer, a deep fade)
  are dropped, and a whole-span lag outside the cluster is replaced by its median;
* a pair whose windows do not agree (fewer than half in the cluster) is not a lag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft

from heimdall.dsp.tdoa.carrier import BATCH_FFT_WORKERS, _notch
from heimdall.dsp.tdoa.peak import DelayedSums, fft_frequencies

WINDOW_COUNT = 8
#: Windows whose peak correlation is below this share of the best window's carry no
#: timing (a wideband burst's off time, a syllable pause, a deep fade) and are skipped.
MIN_WINDOW_CORRELATION_SHARE = 0.3
#: Robust sigmas (1.4826 MAD) from the median within which a window is in the cluster.
CLUSTER_SIGMAS = 4.0
#: The cluster never narrows below this (samples): windows agreeing to a millisample agree.
CLUSTER_FLOOR_SAMPLES = 0.002
MIN_WINDOWS = 4
#: Newton steps per window (from within half a sample: 3 reach 1e-6 sample).
NEWTON_STEPS = 4
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class WindowLags:
    """Per-window lags (samples, referred to ``x``'s first sample) and what they agree on."""

    lags_samples: npt.NDArray[np.float64]
    in_cluster: npt.NDArray[np.bool_]
    median_samples: float
    #: Standard deviation of the cluster's mean, from the cluster's own spread.
    sigma_samples: float

    @property
    def agree(self) -> bool:
        return len(self.lags_samples) >= MIN_WINDOWS and 2 * int(self.in_cluster.sum()) >= len(
            self.lags_samples
        )


def _batched_newton(
    cross: npt.NDArray[np.complex64], start: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """``peak._newton_peak`` for every row of ``cross`` (cross-spectra in FFT order) at once:
    (lags, |C| at them, converged).

    A row whose curve is not concave on the way, or that leaves +-1 sample of its
    start, is marked as not converged (its window is dropped).
    """
    angular = (2 * np.pi * fft_frequencies(cross.shape[1])).astype(np.float32)
    sums = DelayedSums(
        np.stack([cross, (np.complex64(1j) * angular) * cross, -(angular**2) * cross])
    )
    lags = start.astype(np.float64).copy()
    converged = np.ones(len(lags), dtype=bool)
    value = np.zeros(len(lags), dtype=np.complex64)
    for _ in range(NEWTON_STEPS):
        value, first, second = sums(lags)
        slope = (np.conj(value) * first).real.astype(np.float64)
        curvature = (np.abs(first) ** 2 + (np.conj(value) * second).real).astype(np.float64)
        converged &= curvature < 0
        step = np.where(curvature < 0, -slope / np.where(curvature < 0, curvature, -1.0), 0.0)
        lags += step
        converged &= np.abs(lags - start) <= 1.0
    return lags, np.abs(value).astype(np.float64), converged


def _window_geometry(samples: int, count: int) -> tuple[int, int]:
    """Samples per window and the FFT length the windows are correlated at."""
    window = samples // count
    return window, scipy.fft.next_fast_len(window + 64)


def window_spectra(
    x: npt.NDArray[np.complex64], count: int = WINDOW_COUNT
) -> npt.NDArray[np.complexfloating]:
    """FFTs of ``x``'s ``count`` consecutive windows, shape ``(count, length)``."""
    window, length = _window_geometry(len(x), count)
    return np.asarray(scipy.fft.fft(x[: count * window].reshape(count, window), length, axis=1))


@dataclass(frozen=True, slots=True)
class WindowPair:
    """One pair's input to ``window_lags_batched``: the arguments of ``window_lags``."""

    x_count: int
    y: npt.NDArray[np.complex64]
    lag_samples: float
    drift: float = 0.0
    line_cycles: float | None = None
    x_spectra: npt.NDArray[np.complexfloating] | None = None
    x: npt.NDArray[np.complex64] | None = None


def window_lags(
    x: npt.NDArray[np.complex64],
    y: npt.NDArray[np.complex64],
    lag_samples: float,
    drift: float = 0.0,
    *,
    line_cycles: float | None = None,
    notch_cycles: float = 0.0,
    count: int = WINDOW_COUNT,
    x_spectra: npt.NDArray[np.complexfloating] | None = None,
) -> WindowLags | None:
    """Lags of ``y`` behind ``x`` in ``count`` consecutive windows of ``x``, or None.

    ``lag_samples`` is the whole span's lag and ``drift`` the rate ratio minus one
    (``y``'s sample of ``x``'s sample i is i (1 + drift) + lag), both
    from ``tdoa_lag``; ``y`` already shifted onto ``x``'s frequency. With ``line_cycles``
    the band within ``notch_cycles`` of the pair's carrier is left out, as in the whole
    span's correlation. None when fewer than ``MIN_WINDOWS`` windows carry a peak.
    ``x_spectra``: ``window_spectra(x, count)`` when the caller keeps it (a reference).

    >>> import numpy as np
    >>> from heimdall.dsp.signals import broadband_burst, fractional_delay
    >>> burst = broadband_burst(40_000, np.random.default_rng(7))
    >>> late = fractional_delay(burst, 3.25)
    >>> result = window_lags(burst[100:-100], late[100:-100], 3.2)
    >>> round(result.median_samples, 3), bool(result.in_cluster.all())
    (3.25, True)
    """
    pair = WindowPair(len(x), y, lag_samples, drift, line_cycles, x_spectra, x)
    return window_lags_batched([pair], notch_cycles, count)[0]


def _x_window_spectra(pair: WindowPair, count: int) -> npt.NDArray[np.complexfloating]:
    if pair.x_spectra is not None:
        return pair.x_spectra
    if pair.x is None:
        raise ValueError("a pair needs x or its window spectra")
    return window_spectra(pair.x, count)


def window_lags_batched(
    pairs: list[WindowPair], notch_cycles: float = 0.0, count: int = WINDOW_COUNT
) -> list[WindowLags | None]:
    """``window_lags`` of several pairs, in their order: every window of every pair in
    one FFT and one batched Newton refinement (pairs whose ``x`` are as long share them).

    Each pair gives ``x_spectra`` or ``x``. Rows are independent, so the results are
    those of one pair at a time; the localization windows a reference's partners at once.
    """
    results: list[WindowLags | None] = [None] * len(pairs)
    by_x_count: dict[int, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_x_count.setdefault(pair.x_count, []).append(index)
    for x_count, members in by_x_count.items():
        window, length = _window_geometry(x_count, count)
        starts = np.arange(count) * window
        window_centres = starts + (window - 1) / 2
        placed = []
        for index in members:
            pair = pairs[index]
            # y's position of each x window's start, with the drift at the window's centre.
            expected = starts + pair.lag_samples + pair.drift * window_centres
            starts_y = np.round(expected).astype(np.int64)
            fits = (starts_y >= 0) & (starts_y + window <= len(pair.y))
            if int(fits.sum()) >= MIN_WINDOWS:
                placed.append((index, fits, starts_y[fits], expected[fits]))
        if not placed:
            continue
        offsets = np.arange(window)
        # All windows of all pairs in one batched FFT per side.
        spectra_y = scipy.fft.fft(
            np.concatenate([pairs[i].y[ys[:, np.newaxis] + offsets] for i, _, ys, _ in placed]),
            length,
            axis=1,
            workers=BATCH_FFT_WORKERS,
        )
        # A copy (fancy indexing): the notch below writes into it.
        spectra_x = np.concatenate([_x_window_spectra(pairs[i], count)[f] for i, f, _, _ in placed])
        bounds = np.cumsum([0] + [len(ys) for _, _, ys, _ in placed])
        for (index, _, _, _), first, last in zip(placed, bounds[:-1], bounds[1:], strict=True):
            line_cycles = pairs[index].line_cycles
            if line_cycles is not None and notch_cycles > 0:
                _notch(
                    (spectra_x[first:last].T, spectra_y[first:last].T), line_cycles, notch_cycles
                )
        cross = (spectra_y * np.conj(spectra_x)).astype(np.complex64)
        fractions, peaks, converged = _batched_newton(
            cross, np.concatenate([e - ys for _, _, ys, e in placed])
        )
        energies = np.sqrt(
            np.sum(np.abs(spectra_x) ** 2, axis=1) * np.sum(np.abs(spectra_y) ** 2, axis=1)
        )
        strengths = np.where(converged, peaks / np.maximum(energies, 1e-30), 0.0)
        for (index, fits, starts_y, _), first, last in zip(
            placed, bounds[:-1], bounds[1:], strict=True
        ):
            # Each window's lag at its centre, referred back to x's first sample.
            lags = (
                starts_y
                - starts[fits]
                + fractions[first:last]
                - pairs[index].drift * window_centres[fits]
            )
            results[index] = _agreement(lags, strengths[first:last], converged[first:last])
    return results


def _agreement(
    lags: npt.NDArray[np.float64],
    strengths: npt.NDArray[np.float64],
    converged: npt.NDArray[np.bool_],
) -> WindowLags | None:
    """What one pair's windows agree on, or None when too few carry a peak."""
    if not np.any(strengths > 0):
        return None
    keep = strengths >= MIN_WINDOW_CORRELATION_SHARE * float(np.max(strengths))
    values = np.asarray(lags, dtype=np.float64)[keep & converged]
    if len(values) < MIN_WINDOWS:
        return None
    median = float(np.median(values))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    in_cluster = np.abs(values - median) <= max(CLUSTER_SIGMAS * spread, CLUSTER_FLOOR_SAMPLES)
    cluster = values[in_cluster]
    sigma = float(np.std(cluster, ddof=1) / np.sqrt(len(cluster))) if len(cluster) > 1 else 0.0
    return WindowLags(values, in_cluster, float(np.median(cluster)), sigma)
