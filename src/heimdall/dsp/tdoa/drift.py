"""Sample-clock drift between receivers: the drift series on the reference's spectrum, and
resampling when the rates are far apart."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy.signal import czt

from heimdall.dsp.spectrum import validate_sample_rate
from heimdall.dsp.tdoa.carrier import _fitted_carrier, _Line, _line_phasors
from heimdall.dsp.tdoa.peak import fft_frequencies, fft_phasors, sample_index

#: Largest drift (samples, either side of the record's centre) bridged with a Taylor
#: series: by ``tdoa_lag`` inside the correlation (the reference's stretched spectrum)
#: and by ``resample_to_rate`` instead of a chirp-z transform. 2 s at 12 kHz with rates
#: 80 ppm apart. Beyond it the series needs too many terms to be cheaper.
MAX_SERIES_DRIFT_SAMPLES = 1.0


#: Truncation bound of that series, relative to the signal's amplitude.
SERIES_TOLERANCE = 1e-6

_POWERS_OF_J = tuple(np.complex64(1j**k) for k in range(4))


class _SegmentSpectra:
    """FFTs and carrier fits of one run of samples, kept for every partner correlated with it.

    The localization service correlates the strongest receiver against each other one:
    the reference's spectrum and carrier fit are the same in every pair. Entries are
    read-only; a race between threads only computes a carrier fit twice, the moment
    spectra (the costly part) are computed under a lock.
    """

    def __init__(self, samples: npt.NDArray[np.complex64]) -> None:
        self.samples = samples
        #: Per FFT length, the moment spectra of orders 0, 1, ... computed so far.
        self._moments: dict[int, list[npt.NDArray[np.complexfloating]]] = {}
        # Pairs correlated in threads all need the same moments: one thread computes them.
        self._moments_lock = threading.Lock()
        self._carriers: dict[tuple[float, int], _Line] = {}
        self._without_line: dict[tuple[int, float], tuple[_Line, _SegmentSpectra]] = {}
        self._memo: dict[tuple[object, ...], npt.NDArray[Any]] = {}

    def memoised(
        self, key: tuple[object, ...], compute: Callable[[], npt.NDArray[Any]]
    ) -> npt.NDArray[Any]:
        """``compute()`` once per key (read-only): other per-reference work of a pair,
        e.g. its coarse spectrum and its windows' FFTs."""
        value = self._memo.get(key)
        if value is None:
            value = compute()
            value.flags.writeable = False
            self._memo[key] = value
        return value

    def spectrum(self, length: int) -> npt.NDArray[np.complexfloating]:
        return self.moment_spectrum(length, 0)

    def moment_spectrum(self, length: int, order: int) -> npt.NDArray[np.complexfloating]:
        """FFT of ``samples * u**order``, u running linearly from -1 (first) to 1 (last)."""
        return self.moment_spectra(length, order + 1)[order]

    def moment_spectra(self, length: int, orders: int) -> list[npt.NDArray[np.complexfloating]]:
        """The moment spectra of orders 0 .. ``orders`` - 1 (read-only).

        The missing ones are computed together, in one batched FFT (several times
        faster per row than one at a time), and the powers of u as running products in
        float64: numpy's float32 ``u**order`` costs more than the FFT itself.
        """
        with self._moments_lock:
            known = self._moments.setdefault(length, [])
            if len(known) < orders:
                u = np.linspace(-1.0, 1.0, len(self.samples), dtype=np.float32).astype(np.float64)
                power = np.ones(len(self.samples))
                weights = np.empty((orders - len(known), len(self.samples)), dtype=np.float32)
                for order in range(orders):
                    if order >= len(known):
                        weights[order - len(known)] = power
                    power *= u
                spectra = scipy.fft.fft(self.samples * weights, length, axis=1)
                spectra.flags.writeable = False
                known.extend(spectra)
            return known[:orders]

    def stretched_spectrum(
        self, length: int, end_drift_samples: float
    ) -> npt.NDArray[np.complexfloating]:
        """Spectrum to correlate against a partner whose sample clock runs slightly faster.

        A partner sampling at (1 + e) times this rate sees sample i at its own position
        i + e (i - c) + e c (c: the centre). Correlating against it, with the constant
        e c left in the lag, is correlating this run against the partner's band-limited
        interpolant shifted by d_i = e (i - c), which runs from -D to D
        (``end_drift_samples``). A Taylor series in d_i moves that shift onto this side's
        spectrum: sum_m FFT(x u^m) (-j 2 pi f D)^m / m!, with u = (i - c) / c. The
        moment spectra FFT(x u^m) are kept, so each partner costs a few multiply-adds
        per bin, not the inverse FFTs and the FFT of resampling the partner.
        """
        return self.stretched_spectra(length, [end_drift_samples])[0]

    def stretched_spectra(
        self, length: int, end_drifts_samples: list[float]
    ) -> npt.NDArray[np.complex64]:
        """``stretched_spectrum`` for each of several partners, shape ``(partners, length)``.

        The series is sum_m D^m W_m with W_m = FFT(x u^m) (-j 2 pi f)^m / m!: the W_m are
        kept beside the moments, and the partners' spectra are one matrix product of the
        powers of their drifts with them (each partner to its own number of terms).
        """
        terms = [_series_terms(np.pi * abs(drift)) for drift in end_drifts_samples]
        most = max(terms)
        if most == 1:
            return np.tile(self.spectrum(length), (len(terms), 1))
        powers = np.zeros((len(terms), most), dtype=np.complex64)
        for row, (drift, count) in enumerate(zip(end_drifts_samples, terms, strict=True)):
            powers[row, :count] = float(drift) ** np.arange(count, dtype=np.float64)
        return np.asarray(powers @ self._series_spectra(length, most), dtype=np.complex64)

    def _series_spectra(self, length: int, terms: int) -> npt.NDArray[np.complex64]:
        """W_m = FFT(x u^m) (-j 2 pi f)^m / m!, m = 0 .. ``terms`` - 1 (read-only)."""

        def compute() -> npt.NDArray[np.complex64]:
            moments = self.moment_spectra(length, terms)
            # (-j 2 pi f)^m / m! = j^m t_m, t_m the running product of -2 pi f / k over
            # k <= m: real float64 products (a third of the complex ones' time) that
            # round as the imaginary steps' did, and j^m is exact in complex64.
            angular = -2 * np.pi * fft_frequencies(length)
            magnitude = np.ones(length)
            series = np.empty((terms, length), dtype=np.complex64)
            series[0] = moments[0]
            for order in range(1, terms):
                magnitude *= angular / order
                np.multiply(moments[order], magnitude.astype(np.float32), out=series[order])
                if order % 4:
                    series[order] *= _POWERS_OF_J[order % 4]
            return series

        return self.memoised(("series", length, terms), compute)

    def without_line(self, length: int, notch_cycles: float) -> tuple[_Line, _SegmentSpectra]:
        """This run's carrier, and the run with that line taken out.

        The carrier is the strongest line of the band, as wide as the notch, that holds
        the most power: an FM carrier's power is spread over a few bins (syllabic
        amplitude changes, drift) and must win over a single modulation line beside it.
        """
        key = (length, notch_cycles)
        cached = self._without_line.get(key)
        if cached is None:
            power = np.abs(self.spectrum(length)) ** 2
            half = max(1, int(notch_cycles * length))
            wrapped = np.concatenate((power[-half:], power, power[:half]))
            running = np.concatenate(([0.0], np.cumsum(wrapped)))
            band_power = running[2 * half + 1 :] - running[: -2 * half - 1]
            band = (int(np.argmax(band_power)) + np.arange(-half, half + 1)) % length
            peak = int(band[np.argmax(power[band])])
            line = self.carrier(float(fft_frequencies(length)[peak]), length)
            tone = line.amplitude * _line_phasors(line.cycles, len(self.samples))
            cached = (line, _SegmentSpectra((self.samples - tone).astype(np.complex64)))
            self._without_line[key] = cached
        return cached

    def carrier(self, coarse_cycles: float, length: int) -> _Line:
        key = (coarse_cycles, length)
        carrier = self._carriers.get(key)
        if carrier is None:
            carrier = _fitted_carrier(self.samples, coarse_cycles, length)
            self._carriers[key] = carrier
        return carrier


def _walked(samples: npt.NDArray[np.complex64], drift: float) -> npt.NDArray[np.complex64]:
    """``samples`` read at positions n + drift (n - c), c the centre: linear interpolation."""
    if drift == 0.0:
        return samples
    index = sample_index(len(samples))
    positions = index + drift * (index - (len(samples) - 1) / 2)
    below = np.clip(np.floor(positions).astype(np.int64), 0, len(samples) - 2)
    fraction = np.clip(positions - below, 0.0, 1.0).astype(np.float32)
    low = np.take(samples, below)  # gathered once (take: faster than fancy indexing)
    return low + fraction * (np.take(samples, below + 1) - low)


def _series_terms(max_phase_rad: float) -> int:
    """Terms of exp(j x) = sum_m (j x)^m / m! needed for |x| <= max_phase_rad (Lagrange bound)."""
    terms = 1
    while max_phase_rad**terms / math.factorial(terms) > SERIES_TOLERANCE:
        terms += 1
    return terms


def _resample_by_series(
    samples: npt.NDArray[np.complex64], step: float, count: int
) -> npt.NDArray[np.complex64]:
    """Band-limited interpolation at positions i * step when they drift by under a sample or so.

    Position i * step = i + c + u_i, with c the drift at the centre and |u_i| <= U. The
    interpolant shifted by c is a phase ramp on the spectrum; the residual u_i is a
    Taylor series in derivatives, each an inverse FFT of the spectrum times (j w)^m:
    sum_m u_i^m / m! y^(m)(i). Scaled by U^m, term m is below (pi U)^m / m!, so a
    handful of batched inverse FFTs replace a chirp-z transform of twice the length.
    The FFTs keep the capture's own length: the interpolant is the same periodic one as
    the chirp-z path's (to ``SERIES_TOLERANCE``), wrap-around at the ends included.
    """
    drift_per_sample = step - 1.0
    centre_drift = drift_per_sample * (count - 1) / 2
    half_span = abs(centre_drift)
    length = len(samples)
    frequency_cycles = scipy.fft.fftfreq(length)
    terms = _series_terms(np.pi * half_span)
    # Row m: spectrum * (j w U)^m / m!, shifted by the centre drift.
    scaled = np.empty((terms, length), dtype=np.complex64)
    scaled[0] = scipy.fft.fft(samples, length) * fft_phasors(length, centre_drift)
    j_omega_span = ((2j * np.pi * half_span) * frequency_cycles).astype(np.complex64)
    for m in range(1, terms):
        np.multiply(scaled[m - 1], j_omega_span / np.float32(m), out=scaled[m])
    derivatives = scipy.fft.ifft(scaled, axis=1, overwrite_x=True)
    # Past the last sample (a faster rate) the periodic interpolant wraps to the first.
    positions = np.arange(count) % length if count > length else slice(0, count)
    if half_span == 0.0:
        return derivatives[0, positions].astype(np.complex64)
    # Horner in u_i / U, within +-1, in place.
    fraction = ((drift_per_sample * np.arange(count) - centre_drift) / half_span).astype(np.float32)
    values = derivatives[terms - 1, positions].copy()
    for m in range(terms - 2, -1, -1):
        values *= fraction
        values += derivatives[m, positions]
    return values


def resample_to_rate(
    samples: npt.NDArray[np.complex64], from_rate_hz: float, to_rate_hz: float
) -> npt.NDArray[np.complex64]:
    """Band-limited resampling to a slightly different rate, keeping sample 0's time.

    The output sample i lies at input position i * from/to: the trigonometric
    interpolation of the samples (their DFT read back at non-integer positions).
    When the positions drift from the integers by at most ``MAX_SERIES_DRIFT_SAMPLES``
    either side of the centre (GPS-corrected KiwiSDR rates over seconds), it is a
    Taylor series of batched inverse FFTs; otherwise all positions at once as a
    chirp-z transform of the spectrum. Both are exact for a band-limited periodic
    signal, so the only error is at the capture's ends, confined to tens of samples.

    >>> import numpy as np
    >>> t = np.arange(12_000) / 12_000.0
    >>> x = np.exp(2j * np.pi * 1_000.0 * t).astype(np.complex64)
    >>> for rate_hz in (12_000.24, 12_006.0):  # 20 ppm (series), 500 ppm (chirp-z)
    ...     y = resample_to_rate(x, 12_000.0, rate_hz)
    ...     expected = np.exp(2j * np.pi * 1_000.0 * np.arange(len(y)) / rate_hz)
    ...     print(bool(np.max(np.abs(y[100:-100] - expected[100:-100])) < 1e-4))
    True
    True
    """
    validate_sample_rate(from_rate_hz)
    validate_sample_rate(to_rate_hz)
    sample_count = len(samples)
    count = int(np.floor(sample_count / from_rate_hz * to_rate_hz))
    step = from_rate_hz / to_rate_hz  # input samples per output sample
    if abs(step - 1.0) * (count - 1) / 2 <= MAX_SERIES_DRIFT_SAMPLES:
        return _resample_by_series(samples, step, count)
    # Bins in signed order k = -N//2 .. N - N//2 - 1, so that reading the DFT back
    # at a fractional position interpolates with the lowest frequencies.
    spectrum = scipy.fft.fftshift(scipy.fft.fft(samples.astype(np.complex128)))
    first_bin = -(sample_count // 2)
    # x(p_i) = 1/N sum_m S[m] exp(j 2 pi (m + first_bin) p_i / N), with p_i = i * step.
    values = czt(spectrum, m=count, w=np.exp(2j * np.pi * step / sample_count), a=1.0)
    output_positions = np.arange(count) * step
    values *= np.exp(2j * np.pi * first_bin * output_positions / sample_count) / sample_count
    return values.astype(np.complex64)
