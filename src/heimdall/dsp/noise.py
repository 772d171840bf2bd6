"""Robust noise-floor estimation from a Welch PSD."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import stats

from heimdall.dsp.spectrum import PowerSpectrum


@lru_cache(maxsize=256)
def chi2_median_to_mean(degrees_of_freedom: float) -> float:
    """median / mean of a chi-square variable: the bias of a median noise estimate.

    A Welch bin of pure noise is N0 * chi2(nu) / nu; its median lies below N0
    (about 0.69 N0 for a single periodogram, nu = 2), so the median is divided by
    this factor.
    """
    return float(stats.chi2.median(degrees_of_freedom) / degrees_of_freedom)


@lru_cache(maxsize=256)
def chi2_detection_factor(degrees_of_freedom: float, false_alarm_probability: float) -> float:
    """PSD / N0 that a pure-noise bin exceeds with the given probability."""
    return float(stats.chi2.isf(false_alarm_probability, degrees_of_freedom) / degrees_of_freedom)


def noise_floor_fs2_per_hz(
    spectrum: PowerSpectrum, signal_mask: npt.NDArray[np.bool_] | None = None
) -> float:
    """Noise density N0 (FS^2/Hz): bias-corrected median of the bins outside the signal.

    The median ignores a signal occupying a minority of the bins; excluding the
    bins in ``signal_mask`` lets it work when the signal is wide too.

    >>> import numpy as np
    >>> from heimdall.dsp.spectrum import welch_psd
    >>> rng = np.random.default_rng(1)
    >>> noise = (rng.normal(size=60_000) + 1j * rng.normal(size=60_000)).astype(np.complex64)
    >>> psd = welch_psd(noise * np.sqrt(0.5), 12_000.0)  # unit power over 12 kHz
    >>> bool(abs(10 * np.log10(noise_floor_fs2_per_hz(psd) * 12_000.0)) < 0.1)  # dB
    True
    """
    bins = spectrum.psd_fs2_per_hz
    if signal_mask is not None and np.count_nonzero(~signal_mask) >= 8:
        bins = bins[~signal_mask]
    median = float(np.median(bins))
    return median / chi2_median_to_mean(round(spectrum.degrees_of_freedom, 1))
