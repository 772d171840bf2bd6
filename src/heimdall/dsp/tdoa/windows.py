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

from heimdall.dsp.tdoa.carrier import _notch
from heimdall.dsp.tdoa.peak import _newton_peak, _refine_peak, _unit_phasors

WINDOW_COUNT = 8
#: Windows whose peak correlation is below this share of the best window's carry no
#: timing (a wideband burst's off time, a syllable pause, a deep fade) and are skipped.
MIN_WINDOW_CORRELATION_SHARE = 0.3
#: Robust sigmas (1.4826 MAD) from the median within which a window is in the cluster.
CLUSTER_SIGMAS = 4.0
#: The cluster never narrows below this (samples): windows agreeing to a millisample agree.
CLUSTER_FLOOR_SAMPLES = 0.002
MIN_WINDOWS = 4
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


def window_lags(
    x: npt.NDArray[np.complex64],
    y: npt.NDArray[np.complex64],
    lag_samples: float,
    drift: float = 0.0,
    *,
    line_cycles: float | None = None,
    notch_cycles: float = 0.0,
    count: int = WINDOW_COUNT,
) -> WindowLags | None:
    """Lags of ``y`` behind ``x`` in ``count`` consecutive windows of ``x``, or None.

    ``lag_samples`` is the whole span's lag and ``drift`` the rate ratio minus one
    (``y``'s sample of ``x``'s sample i is i (1 + drift) + lag), both
    from ``tdoa_lag``; ``y`` already shifted onto ``x``'s frequency. With ``line_cycles``
    the band within ``notch_cycles`` of the pair's carrier is left out, as in the whole
    span's correlation. None when fewer than ``MIN_WINDOWS`` windows carry a peak.

    >>> import numpy as np
    >>> from heimdall.dsp.signals import broadband_burst, fractional_delay
    >>> burst = broadband_burst(40_000, np.random.default_rng(7))
    >>> late = fractional_delay(burst, 3.25)
    >>> result = window_lags(burst[100:-100], late[100:-100], 3.2)
    >>> round(result.median_samples, 3), bool(result.in_cluster.all())
    (3.25, True)
    """
    window = len(x) // count
    length = scipy.fft.next_fast_len(window + 64)
    frequency_cycles = scipy.fft.fftfreq(length)
    frequency_cycles32 = frequency_cycles.astype(np.float32)
    lags, strengths = [], []
    for w in range(count):
        start = w * window
        window_centre = start + (window - 1) / 2
        # y's position of x's window start, with the drift at the window's centre.
        expected = start + lag_samples + drift * window_centre
        start_y = round(expected)
        if start_y < 0 or start_y + window > len(y):
            continue
        spectrum_x = scipy.fft.fft(x[start : start + window], length)
        spectrum_y = scipy.fft.fft(y[start_y : start_y + window], length)
        if line_cycles is not None and notch_cycles > 0:
            _notch((spectrum_x, spectrum_y), line_cycles, notch_cycles)
        cross = spectrum_y * np.conj(spectrum_x)
        guess = expected - start_y
        fraction = _newton_peak(cross, frequency_cycles, guess)
        if fraction is None:

            def probe(
                offsets: npt.NDArray[np.float64],
                at: float = guess,
                spectrum: npt.NDArray[np.complexfloating] = cross,
            ) -> npt.NDArray[np.float64]:
                cycles = np.outer((at + offsets).astype(np.float32), frequency_cycles32)
                return np.abs(_unit_phasors(cycles) @ spectrum).astype(np.float64)

            fraction = guess + _refine_peak(probe)
        energy = np.sqrt(
            float(np.sum(np.abs(spectrum_x) ** 2)) * float(np.sum(np.abs(spectrum_y) ** 2))
        )
        peak = float(np.abs(_unit_phasors(frequency_cycles32 * np.float32(fraction)) @ cross))
        strengths.append(peak / max(energy, 1e-30))
        # The window's lag at its centre, referred back to x's first sample.
        lags.append(start_y - start + fraction - drift * window_centre)
    if not strengths:
        return None
    keep = np.asarray(strengths) >= MIN_WINDOW_CORRELATION_SHARE * max(strengths)
    values = np.asarray(lags, dtype=np.float64)[keep]
    if len(values) < MIN_WINDOWS:
        return None
    median = float(np.median(values))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    in_cluster = np.abs(values - median) <= max(CLUSTER_SIGMAS * spread, CLUSTER_FLOOR_SAMPLES)
    cluster = values[in_cluster]
    sigma = float(np.std(cluster, ddof=1) / np.sqrt(len(cluster))) if len(cluster) > 1 else 0.0
    return WindowLags(values, in_cluster, float(np.median(cluster)), sigma)
