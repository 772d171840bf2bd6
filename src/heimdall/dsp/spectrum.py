"""Input validation and the Welch power spectral density of complex IQ.

Conventions used across :mod:`heimdall.dsp`: full scale is a complex amplitude
of 1.0, so a full-scale complex exponential has a mean power of 1 (0 dBFS); PSD
values are in FS^2/Hz (two-sided, density scaling), frequencies are offsets from
the tuned frequency in Hz, increasing (the spectrum is fft-shifted).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy import signal

#: Samples per Welch segment. At 12 kHz this is 93.75 Hz per bin, a resolution
#: bandwidth (Hann ENBW) of 140.6 Hz: fine enough for voice FM and SSB, coarse
#: enough that a few seconds give hundreds of averages (a stable noise floor).
DEFAULT_SEGMENT_LENGTH = 128
WINDOW = "hann"


def validate_iq(
    samples: npt.ArrayLike, *, min_samples: int, name: str = "samples"
) -> npt.NDArray[np.complex64]:
    """Check that ``samples`` is usable complex IQ and return it as complex64.

    Raises ValueError naming the problem: not one-dimensional, not complex,
    too short (fewer than ``min_samples``), or containing NaN/Inf.

    >>> validate_iq(np.ones(4, dtype=np.complex64), min_samples=2).dtype
    dtype('complex64')
    """
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must be complex IQ (complex64), got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if array.size < min_samples:
        raise ValueError(f"{name} is too short: {array.size} samples, need at least {min_samples}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or Inf")
    return array.astype(np.complex64, copy=False)


def validate_sample_rate(sample_rate_hz: float) -> float:
    if not np.isfinite(sample_rate_hz) or sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive and finite, got {sample_rate_hz}")
    return float(sample_rate_hz)


@dataclass(frozen=True, slots=True)
class PowerSpectrum:
    """A two-sided Welch PSD, fft-shifted so frequencies increase.

    Attributes:
        frequency_offset_hz: bin centres relative to the tuned frequency (float32).
        psd_fs2_per_hz: power spectral density in FS^2/Hz (float32).
        sample_rate_hz: sample rate of the analysed IQ.
        segment_length: samples per Welch segment (bin width = fs / segment_length).
        segment_count: number of averaged (50 % overlapping) segments.
        degrees_of_freedom: equivalent chi-square degrees of freedom of each bin,
            Welch's formula for overlapping windowed segments.
        center_frequency_hz: the tuned frequency, when known.
    """

    frequency_offset_hz: npt.NDArray[np.float32]
    psd_fs2_per_hz: npt.NDArray[np.float32]
    sample_rate_hz: float
    segment_length: int
    segment_count: int
    degrees_of_freedom: float
    center_frequency_hz: float | None = None

    @property
    def bin_width_hz(self) -> float:
        return self.sample_rate_hz / self.segment_length

    @property
    def resolution_bandwidth_hz(self) -> float:
        """Equivalent noise bandwidth of one bin: the bandwidth a pure tone occupies."""
        return window_enbw_bins(self.segment_length) * self.bin_width_hz

    @property
    def frequency_hz(self) -> npt.NDArray[np.float64]:
        """Absolute bin frequencies (float64: float32 cannot hold 145 MHz to the Hz)."""
        if self.center_frequency_hz is None:
            raise ValueError("absolute frequencies need center_frequency_hz")
        return self.center_frequency_hz + self.frequency_offset_hz.astype(np.float64)


@lru_cache(maxsize=16)
def hann_window(length: int) -> npt.NDArray[np.float32]:
    """The periodic Hann window scipy.signal.welch uses, as float32 (cached)."""
    return signal.get_window(WINDOW, length).astype(np.float32)


@lru_cache(maxsize=16)
def window_enbw_bins(length: int) -> float:
    """Equivalent noise bandwidth of the analysis window, in bins (1.5 for Hann)."""
    window = hann_window(length).astype(np.float64)
    return float(length * np.sum(window**2) / np.sum(window) ** 2)


@lru_cache(maxsize=64)
def welch_degrees_of_freedom(segment_length: int, segment_count: int) -> float:
    """Equivalent chi-square degrees of freedom of a Welch average.

    Overlapping segments are correlated, so K segments give fewer than 2K
    degrees of freedom (Welch 1967, eq. for the variance of the average).
    """
    window = hann_window(segment_length).astype(np.float64)
    step = segment_length // 2
    energy = np.sum(window**2)
    variance_factor = 1.0
    for lag in range(1, min(segment_count, segment_length // step + 1)):
        overlap = np.sum(window[lag * step :] * window[: segment_length - lag * step])
        variance_factor += 2 * (1 - lag / segment_count) * (overlap / energy) ** 2
    return 2.0 * segment_count / variance_factor


def welch_psd(
    samples: npt.ArrayLike,
    sample_rate_hz: float,
    *,
    center_frequency_hz: float | None = None,
    segment_length: int = DEFAULT_SEGMENT_LENGTH,
) -> PowerSpectrum:
    """Two-sided Welch PSD of complex IQ, centred on the tuned frequency.

    Same estimate as ``scipy.signal.welch(x, fs, window="hann", nperseg=L,
    noverlap=L//2, detrend=False, return_onesided=False, scaling="density")``
    followed by fftshift, but all segments go through one batched FFT: scipy's
    welch transforms segment by segment in Python, ~15 ms for 5 s at 12 kHz,
    which alone would break the 20 ms budget for seven receivers.

    >>> import numpy as np
    >>> n = np.arange(12_000)
    >>> tone = np.exp(2j * np.pi * 1_500.0 * n / 12_000).astype(np.complex64)
    >>> psd = welch_psd(tone, 12_000.0)
    >>> float(psd.frequency_offset_hz[np.argmax(psd.psd_fs2_per_hz)])
    1500.0
    >>> round(float(np.sum(psd.psd_fs2_per_hz) * psd.bin_width_hz), 3)  # mean power
    1.0
    """
    if segment_length < 8:
        raise ValueError(f"segment_length must be at least 8, got {segment_length}")
    iq = validate_iq(samples, min_samples=segment_length)
    sample_rate_hz = validate_sample_rate(sample_rate_hz)
    window = hann_window(segment_length)
    step = segment_length // 2
    segments = np.lib.stride_tricks.sliding_window_view(iq, segment_length)[::step]
    spectra = scipy.fft.fft(segments * window, axis=-1)
    power = np.mean(spectra.real**2 + spectra.imag**2, axis=0)
    # Density scaling: the PSD integrates to the mean power of the input.
    psd = scipy.fft.fftshift(power / (sample_rate_hz * np.sum(window**2))).astype(np.float32)
    frequency_offset_hz = scipy.fft.fftshift(
        scipy.fft.fftfreq(segment_length, 1.0 / sample_rate_hz)
    ).astype(np.float32)
    segment_count = len(segments)
    return PowerSpectrum(
        frequency_offset_hz=frequency_offset_hz,
        psd_fs2_per_hz=psd,
        sample_rate_hz=sample_rate_hz,
        segment_length=segment_length,
        segment_count=segment_count,
        degrees_of_freedom=welch_degrees_of_freedom(segment_length, segment_count),
        center_frequency_hz=center_frequency_hz,
    )
