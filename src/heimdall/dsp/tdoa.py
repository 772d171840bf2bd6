"""Time difference of arrival between two GPS-timestamped captures.

Sign convention: a positive lag means the signal reached ``b`` (``y``) later
than ``a`` (``x``): ``y[n] ~ x[n - lag]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy.signal import czt

from heimdall.dsp.spectrum import validate_iq, validate_sample_rate
from heimdall.receivers.capture import IQCapture

#: Below this quality (dB of main peak over the strongest correlation outside
#: the main lobe) a lag is not trustworthy: a carrier or a periodic signal
#: correlates equally well at many lags.
MIN_TDOA_QUALITY_DB = 6.0
#: Lags examined around the search window to measure the sidelobe/noise level.
SIDELOBE_SPAN_SAMPLES = 64
#: Largest drift (samples, either side of the record's centre) bridged with a Taylor
#: series: by ``tdoa_lag`` inside the correlation (the reference's stretched spectrum)
#: and by ``resample_to_rate`` instead of a chirp-z transform. 2 s at 12 kHz with rates
#: 80 ppm apart. Beyond it the series needs too many terms to be cheaper.
MAX_SERIES_DRIFT_SAMPLES = 1.0
#: Truncation bound of that series, relative to the signal's amplitude.
SERIES_TOLERANCE = 1e-6
#: Probe spacings of the successive parabola fits that refine a peak (a carrier's
#: frequency, the cross-ambiguity's offset; a correlation peak when Newton steps
#: fail): each fit brings the estimate well within the next, finer spacing.
REFINEMENT_SPACINGS_SAMPLES = (0.5, 1 / 16, 1 / 128)
#: Newton refinement of a correlation peak: at most this many steps, stopping once a
#: step is below the tolerance. Against a float64 search on the accuracy benchmark's pairs
#: the result is within 3e-7 sample (the parabola fits it replaced: 1.7e-4).
NEWTON_MAX_STEPS = 6
NEWTON_TOLERANCE_SAMPLES = 1e-6
#: Least zero padding of a correlation: far more than any partner's length differs by
#: or any lag span needs, so all pairs with one reference share its FFT length.
CORRELATION_PAD_SAMPLES = 512
#: Largest carrier frequency difference searched between two receivers. Their
#: local oscillators are GPS-disciplined but not exact: 0.1 ppm each at 145 MHz
#: is up to 30 Hz apart, and a coherent correlation over seconds needs that removed.
MAX_FREQUENCY_OFFSET_HZ = 100.0
#: Half-width of the band excluded around a pair's strongest spectral line before
#: correlating in ``tdoa_lag``. A carrier correlates equally at every lag: left in,
#: an FM signal's carrier (tens of % of its power) is a flat pedestal under the
#: sidebands' sharp peak. The band also takes the carrier's syllabic amplitude
#: changes (a few Hz) and the leakage of its line; it holds no timing information.
CARRIER_NOTCH_HZ = 30.0
#: Samples summed per block when a carrier's frequency is refined: within one DFT bin
#: of its coarse frequency the tone turns by under 2 pi 32 / N in a block.
LINE_FIT_BLOCK_SAMPLES = 32


@dataclass(frozen=True, slots=True)
class CorrelationLag:
    """Peak of a cross-correlation.

    Attributes:
        lag_samples: sub-sample lag of ``y`` behind ``x``.
        quality_db: main peak over the strongest correlation outside the main lobe.
        peak_correlation: normalised correlation magnitude at the peak (0..1), of the
            signal actually correlated (without the carrier when it was notched out).
        rms_bandwidth_hz: RMS bandwidth (about its centroid) of what ``x`` and ``y``
            have in common: the second moment of their cross-spectrum's in-phase part
            at the peak, where receiver noise averages out. 0 when none was found.
    """

    lag_samples: float
    quality_db: float
    peak_correlation: float
    rms_bandwidth_hz: float = 0.0

    @property
    def is_reliable(self) -> bool:
        return self.quality_db >= MIN_TDOA_QUALITY_DB


@dataclass(frozen=True, slots=True)
class TdoaLag:
    """Arrival-time difference of ``b`` behind ``a`` on the common GPS time base."""

    lag_s: float
    lag_samples: float
    quality_db: float
    peak_correlation: float
    overlap_s: float
    sample_rate_hz: float
    #: Carrier frequency of b minus that of a (Hz), removed before the lag was refined.
    frequency_offset_hz: float = 0.0
    #: RMS bandwidth of the signal correlated (carrier excluded), measured from the pair.
    rms_bandwidth_hz: float = 0.0

    @property
    def is_reliable(self) -> bool:
        return self.quality_db >= MIN_TDOA_QUALITY_DB


def _main_lobe(magnitude: npt.NDArray[np.float64], peak: int) -> tuple[int, int]:
    """Indices [start, stop) of the contiguous region around ``peak`` above half of it."""
    below = magnitude < magnitude[peak] / 2
    after = np.flatnonzero(below[peak:])
    before = np.flatnonzero(below[: peak + 1])
    stop = peak + int(after[0]) if after.size else len(magnitude)
    start = int(before[-1]) + 1 if before.size else 0
    # One more lobe width on each side: the skirt of the peak is not a sidelobe.
    width = stop - start
    return max(start - width, 0), min(stop + width, len(magnitude))


def _unit_phasors(cycles: npt.NDArray[np.floating]) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi cycles) for |cycles| of order 1, from float32 cos/sin (faster than complex exp)."""
    angle_rad = np.float32(2 * np.pi) * cycles.astype(np.float32, copy=False)
    phasors = np.empty(angle_rad.shape, dtype=np.complex64)
    phasors.real = np.cos(angle_rad)
    phasors.imag = np.sin(angle_rad)
    return phasors


@lru_cache(maxsize=8)
def _roots_of_unity(length: int) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi m / length), m = 0 .. length-1 (read-only: shared by every caller)."""
    roots = _unit_phasors(np.arange(length, dtype=np.float64) / length)
    roots.flags.writeable = False
    return roots


def _integer_lag_phasors(length: int, lag: int) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi k lag / length) for every FFT bin k: an integer shift, exact by lookup."""
    return _roots_of_unity(length)[np.arange(length) * lag % length]


def _parabola_vertex(values: npt.NDArray[np.float64]) -> float:
    """Offset (in probe spacings, within +-1) of the vertex of the parabola through 3 values."""
    left, centre, right = (float(v) for v in values)
    curvature = left - 2 * centre + right
    if curvature >= 0:  # not a maximum: stay at the best probe
        return float(np.argmax(values)) - 1.0
    return float(np.clip(0.5 * (left - right) / curvature, -1.0, 1.0))


def _refine_peak(
    probe_magnitudes: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
) -> float:
    """Offset maximising ``probe_magnitudes``: parabola fits through ever closer probe triples."""
    offset = 0.0
    for spacing in REFINEMENT_SPACINGS_SAMPLES:
        probes = offset + spacing * np.array([-1.0, 0.0, 1.0])
        offset += spacing * _parabola_vertex(probe_magnitudes(probes))
    return offset


def _newton_peak(
    spectrum: npt.NDArray[np.complexfloating],
    frequency_cycles: npt.NDArray[np.float64],
    start_samples: float,
) -> float | None:
    """Lag (within +-1 sample) maximising |C(t)|^2, C(t) = sum_k S_k exp(j 2 pi f_k t).

    Newton's method on the band-limited interpolation itself: C, C' and C'' at t are
    one set of phasors against the spectrum weighted by (j 2 pi f)^0..2, so each step
    costs one phasor evaluation (the parabola fits of ``_refine_peak`` cost nine). From
    a start within a tenth of a sample or so it converges in 2-3 steps. None when the
    curve is not concave on the way or the steps leave +-1 sample: the caller falls back.
    """
    angular = (2 * np.pi * frequency_cycles).astype(np.float32)
    weighted = np.stack(
        [spectrum, np.complex64(1j) * angular * spectrum, -(angular**2) * spectrum]
    ).astype(np.complex64, copy=False)
    frequency_cycles32 = frequency_cycles.astype(np.float32)
    lag = start_samples
    for _ in range(NEWTON_MAX_STEPS):
        value, first, second = weighted @ _unit_phasors(frequency_cycles32 * np.float32(lag))
        slope = float((np.conj(value) * first).real)
        curvature = float(abs(first) ** 2 + (np.conj(value) * second).real)
        if curvature >= 0:
            return None
        step = -slope / curvature
        lag += step
        if abs(lag) > 1.0:
            return None
        if abs(step) < NEWTON_TOLERANCE_SAMPLES:
            return lag
    return lag


def _fit_line(samples: npt.NDArray[np.complex64], coarse_cycles: float) -> tuple[float, complex]:
    """Frequency (cycles/sample) and complex amplitude of the tone best fitting ``samples``.

    Refines a coarse frequency (a DFT bin) on the magnitude of the samples' Fourier
    sum, probing within a bin; the amplitude is the least-squares one at that frequency.
    """
    count = len(samples)
    index = np.arange(count, dtype=np.float64)
    # Take the coarse frequency out once: what is left of the tone turns by at most a
    # few cycles over the record, so sums over blocks of LINE_FIT_BLOCK_SAMPLES (each
    # taken at its centre) keep its Fourier sum to ~1e-5 at a fraction of the cost.
    derotated = samples * _unit_phasors(-(coarse_cycles * index % 1.0))
    block_count = -(-count // LINE_FIT_BLOCK_SAMPLES)
    padded = np.zeros(block_count * LINE_FIT_BLOCK_SAMPLES, dtype=np.complex64)
    padded[:count] = derotated
    block_sums = padded.reshape(block_count, LINE_FIT_BLOCK_SAMPLES).sum(axis=1)
    block_centres = (
        np.arange(block_count) * LINE_FIT_BLOCK_SAMPLES + (LINE_FIT_BLOCK_SAMPLES - 1) / 2
    ).astype(np.float32)

    def probe_magnitudes(offsets_bins: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cycles = np.outer((offsets_bins / count).astype(np.float32), block_centres)
        return np.abs(_unit_phasors(-cycles) @ block_sums).astype(np.float64)

    offset_bins = _refine_peak(probe_magnitudes)
    amplitude = complex(_unit_phasors(-(offset_bins / count) * block_centres) @ block_sums) / count
    return coarse_cycles + offset_bins / count, amplitude


@dataclass(frozen=True, slots=True)
class _Line:
    """A spectral line fitted to a run of samples: A exp(j 2 pi f n), n = 0 .. N-1."""

    cycles: float  # f, cycles per sample
    amplitude: complex  # A
    #: Spectrum of exp(j 2 pi f n) over the run at the FFT length: the line's leakage.
    unit_spectrum: npt.NDArray[np.complexfloating]

    def spectrum(self) -> npt.NDArray[np.complexfloating]:
        return self.amplitude * self.unit_spectrum


def _line_phasors(cycles: float, count: int) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi cycles n), n = 0 .. count-1 (whole turns dropped in float64 first)."""
    return _unit_phasors(cycles * np.arange(count, dtype=np.float64) % 1.0)


def _fitted_carrier(samples: npt.NDArray[np.complex64], coarse_cycles: float, length: int) -> _Line:
    """The line fitted near ``coarse_cycles``, with its spectrum at the FFT ``length``."""
    line_cycles, amplitude = _fit_line(samples, coarse_cycles)
    unit_spectrum = scipy.fft.fft(_line_phasors(line_cycles, len(samples)), length)
    unit_spectrum.flags.writeable = False
    return _Line(line_cycles, amplitude, unit_spectrum)


class _SegmentSpectra:
    """FFTs and carrier fits of one run of samples, kept for every partner correlated with it.

    The localization service correlates the strongest receiver against each other one:
    the reference's spectrum and carrier fit are the same in every pair. Entries are
    read-only and a race between threads only computes one twice.
    """

    def __init__(self, samples: npt.NDArray[np.complex64]) -> None:
        self.samples = samples
        self._moments: dict[tuple[int, int], npt.NDArray[np.complexfloating]] = {}
        self._carriers: dict[tuple[float, int], _Line] = {}
        self._without_line: dict[tuple[int, float], tuple[_Line, _SegmentSpectra]] = {}

    def spectrum(self, length: int) -> npt.NDArray[np.complexfloating]:
        return self.moment_spectrum(length, 0)

    def moment_spectrum(self, length: int, order: int) -> npt.NDArray[np.complexfloating]:
        """FFT of ``samples * u**order``, u running linearly from -1 (first) to 1 (last)."""
        key = (length, order)
        spectrum = self._moments.get(key)
        if spectrum is None:
            weighted = self.samples
            if order:
                u = np.linspace(-1.0, 1.0, len(self.samples), dtype=np.float32)
                weighted = self.samples * u**order
            spectrum = scipy.fft.fft(weighted, length)
            spectrum.flags.writeable = False
            self._moments[key] = spectrum
        return spectrum

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
        terms = _series_terms(np.pi * abs(end_drift_samples))
        if terms == 1:
            return self.spectrum(length)
        slope = ((-2j * np.pi * end_drift_samples) * scipy.fft.fftfreq(length)).astype(np.complex64)
        # Horner: sum_m A_m w^m / m! = A_0 + w (A_1 + w/2 (A_2 + w/3 (...))).
        stretched = self.moment_spectrum(length, terms - 1).copy()
        for order in range(terms - 2, -1, -1):
            stretched *= slope
            stretched *= np.float32(1.0 / (order + 1))
            stretched += self.moment_spectrum(length, order)
        return stretched

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
            line = self.carrier(float(scipy.fft.fftfreq(length)[peak]), length)
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


def _notch(
    spectra: tuple[npt.NDArray[np.complexfloating], ...], line_cycles: float, notch_cycles: float
) -> None:
    """Zero (in place) the bins within ``notch_cycles`` of a line (circularly)."""
    length = len(spectra[0])
    first = math.ceil((line_cycles - notch_cycles) * length)
    last = math.floor((line_cycles + notch_cycles) * length)
    bins = np.arange(first, last + 1) % length
    for spectrum in spectra:
        spectrum[bins] = 0.0


def _remove_carrier(
    x: _SegmentSpectra,
    y: npt.NDArray[np.complex64],
    spectrum_x: npt.NDArray[np.complexfloating],
    spectrum_y: npt.NDArray[np.complexfloating],
    frequency_cycles: npt.NDArray[np.float64],
    notch_cycles: float,
) -> None:
    """Take the pair's strongest line out of both spectra (in place).

    Each capture's fitted tone is subtracted with its leakage (the spectrum of the
    tone over the capture's span), then the band within ``notch_cycles`` of it is
    dropped: what remains of the carrier there are slow amplitude changes.
    """
    power = np.abs(spectrum_x) ** 2 + np.abs(spectrum_y) ** 2
    coarse_cycles = float(frequency_cycles[int(np.argmax(power))])
    length = len(spectrum_x)
    spectrum_x -= x.carrier(coarse_cycles, length).spectrum()
    line_y = _fitted_carrier(y, coarse_cycles, length)
    spectrum_y -= line_y.spectrum()
    _notch((spectrum_x, spectrum_y), line_y.cycles, notch_cycles)


def _rms_bandwidth_hz(
    aligned_spectrum: npt.NDArray[np.complexfloating], frequencies_hz: npt.NDArray[np.float64]
) -> float:
    """RMS bandwidth about the centroid of the common signal in a peak-aligned cross-spectrum.

    Aligned on the peak, the common signal's cross-spectrum has one phase (the
    receivers' carrier phase difference) at every frequency, while the receivers'
    independent noise has random phase: the part in phase with the peak estimates
    the signal's power spectrum with the noise averaged out, not added.
    """
    peak_phase = np.exp(-1j * np.angle(np.sum(aligned_spectrum)))
    in_phase = (aligned_spectrum * peak_phase).real.astype(np.float64)
    total = float(np.sum(in_phase))
    if total <= 0:
        return 0.0
    centroid_hz = float(np.sum(frequencies_hz * in_phase)) / total
    variance_hz2 = float(np.sum((frequencies_hz - centroid_hz) ** 2 * in_phase)) / total
    return float(np.sqrt(variance_hz2)) if variance_hz2 > 0 else 0.0


def cross_correlation_lag(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    sample_rate_hz: float,
    max_lag_samples: float,
    *,
    carrier_notch_hz: float | None = None,
) -> CorrelationLag:
    """Lag of ``y`` behind ``x`` in samples, searched within +-``max_lag_samples``.

    The correlation is computed by FFT; its integer peak is refined on the
    band-limited (trigonometric) interpolation of the correlation, evaluated
    directly from its spectrum: Newton steps on its squared magnitude from the
    parabola through the three integer lags around the peak (2-3 steps, within
    ~1e-6 sample of the true maximum of the interpolated correlation; parabola fits
    through ever closer probes when the peak is not concave there). With
    ``carrier_notch_hz`` the strongest spectral line of the pair and everything
    within that many Hz of it are left out of the correlation (see ``CARRIER_NOTCH_HZ``).

    >>> import numpy as np
    >>> from heimdall.dsp.signals import broadband_burst, fractional_delay
    >>> burst = broadband_burst(4_096, np.random.default_rng(3))
    >>> late = fractional_delay(burst, 2.3)
    >>> result = cross_correlation_lag(burst[100:-100], late[100:-100], 12_000.0, 10)
    >>> round(result.lag_samples, 2), result.is_reliable
    (2.3, True)
    >>> round(result.rms_bandwidth_hz / 12_000.0, 2)  # 0.8 of the band: 0.8 / sqrt(12)
    0.23
    """
    x_iq = validate_iq(x, min_samples=16, name="x")
    y_iq = validate_iq(y, min_samples=16, name="y")
    validate_sample_rate(sample_rate_hz)
    if not np.isfinite(max_lag_samples) or max_lag_samples < 0:
        raise ValueError(f"max_lag_samples must be non-negative, got {max_lag_samples}")
    return _correlation_lag(
        _SegmentSpectra(x_iq), y_iq, sample_rate_hz, max_lag_samples, carrier_notch_hz
    )


def _correlation_lag(
    x: _SegmentSpectra,
    y_iq: npt.NDArray[np.complex64],
    sample_rate_hz: float,
    max_lag_samples: float,
    carrier_notch_hz: float | None,
    end_drift_samples: float = 0.0,
    *,
    frequency_aligned: bool = False,
) -> CorrelationLag:
    """``cross_correlation_lag`` on validated input, ``x``'s FFTs and carrier fits memoised.

    With ``end_drift_samples`` (see ``_SegmentSpectra.stretched_spectrum``) ``y``'s clock
    runs slightly faster than ``x``'s; the lag returned is then the one at ``x``'s centre.
    ``frequency_aligned``: the pair's frequency offset was removed, so both share one line.
    """
    search = int(np.ceil(max_lag_samples + abs(end_drift_samples)))
    span = max(search * 2, SIDELOBE_SPAN_SAMPLES)
    # Only lags within +-span are read: a circular correlation this long does not
    # wrap any other lag onto them, and costs half of a full linear one.
    # At least CORRELATION_PAD_SAMPLES of padding, so that every partner of one x
    # (a few samples longer or shorter) gets the same length and x's spectra are reused.
    length = scipy.fft.next_fast_len(
        max(len(x.samples) + CORRELATION_PAD_SAMPLES, max(len(x.samples), len(y_iq)) + span + 1)
    )
    frequency_cycles = scipy.fft.fftfreq(length)
    spectrum_y = scipy.fft.fft(y_iq, length)
    line: _Line | None = None
    notch_cycles = (carrier_notch_hz or 0.0) / sample_rate_hz
    if carrier_notch_hz is not None and frequency_aligned:
        # y's line sits on x's: take it out of x before the stretch (the stretched
        # line would leave a residue), and fit y's own near it. Only y's amplitude at
        # x's frequency left enough of a strong carrier (tens of dB) for pure-carrier
        # pairs to pass the quality gate with lags tens of microseconds wrong.
        line, x = x.without_line(length, notch_cycles)
        spectrum_y -= _fitted_carrier(y_iq, line.cycles, length).spectrum()
    spectrum_x = x.stretched_spectrum(length, end_drift_samples)
    if not spectrum_x.flags.writeable:  # the memoised spectrum itself
        spectrum_x = spectrum_x.copy()
    if carrier_notch_hz is not None:
        if line is not None:
            _notch((spectrum_x, spectrum_y), line.cycles, notch_cycles)
        else:
            _remove_carrier(x, y_iq, spectrum_x, spectrum_y, frequency_cycles, notch_cycles)
    # Cross-spectrum of y against x: its inverse peaks at the delay of y.
    cross_spectrum = spectrum_y * np.conj(spectrum_x)
    correlation = scipy.fft.ifft(cross_spectrum)

    lags = np.arange(-span, span + 1)
    magnitude = np.abs(correlation[lags % length]).astype(np.float64)
    in_search = np.abs(lags) <= search
    peak = int(np.flatnonzero(in_search)[np.argmax(magnitude[in_search])])

    start, stop = _main_lobe(magnitude, peak)
    outside = np.concatenate((magnitude[:start], magnitude[stop:]))
    sidelobe = float(np.max(outside)) if outside.size else float(magnitude[peak])
    quality_db = 20 * np.log10(max(magnitude[peak], 1e-30) / max(sidelobe, 1e-30))

    integer_lag = int(lags[peak])
    # Centre the spectrum on the integer peak once; the refinement then only needs
    # phasors of a fractional lag, whose small angles are exact in float32.
    centred_spectrum = cross_spectrum * _integer_lag_phasors(length, integer_lag)
    vertex = _parabola_vertex(magnitude[peak - 1 : peak + 2])
    fraction: float | None = vertex
    if quality_db >= MIN_TDOA_QUALITY_DB:  # an unreliable peak is not worth refining
        fraction = _newton_peak(centred_spectrum, frequency_cycles, vertex)
    if fraction is None:  # not concave around the peak: fall back on parabola fits
        frequency_cycles32 = frequency_cycles.astype(np.float32)

        def probe_magnitudes(offsets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            cycles = np.outer(offsets.astype(np.float32), frequency_cycles32)
            return np.abs(_unit_phasors(cycles) @ centred_spectrum).astype(np.float64)

        fraction = _refine_peak(probe_magnitudes)
    aligned_spectrum = centred_spectrum * _unit_phasors(frequency_cycles * fraction)
    peak_magnitude = float(np.abs(np.sum(aligned_spectrum)))
    # The stretch leaves the drift at the centre, e c = D, in the lag: take it out.
    lag_samples = float(
        np.clip(integer_lag + fraction - end_drift_samples, -max_lag_samples, max_lag_samples)
    )
    # Parseval: the energies of what was correlated, from the (notched) spectra.
    energy_x = float(np.sum(spectrum_x.real**2 + spectrum_x.imag**2))
    energy_y = float(np.sum(spectrum_y.real**2 + spectrum_y.imag**2))
    energy = np.sqrt(energy_x * energy_y) / length
    peak_correlation = peak_magnitude / length / max(energy, 1e-30)
    return CorrelationLag(
        lag_samples=lag_samples,
        quality_db=float(quality_db),
        peak_correlation=float(min(peak_correlation, 1.0)),
        rms_bandwidth_hz=_rms_bandwidth_hz(aligned_spectrum, frequency_cycles * sample_rate_hz),
    )


@dataclass(frozen=True, slots=True)
class AmbiguityPeak:
    """Peak of the cross-ambiguity function of two captures.

    Attributes:
        lag_samples: integer lag of ``y`` behind ``x`` at the peak.
        frequency_offset_hz: carrier frequency of ``y`` minus that of ``x``.
    """

    lag_samples: int
    frequency_offset_hz: float


def _decimation_factor(sample_rate_hz: float, max_frequency_offset_hz: float) -> int:
    """Samples summed per block of the lag products: the offset stays in the central quarter."""
    return max(1, int(sample_rate_hz // (4.0 * max_frequency_offset_hz)))


def cross_ambiguity_peak(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    sample_rate_hz: float,
    max_lag_samples: float,
    max_frequency_offset_hz: float = MAX_FREQUENCY_OFFSET_HZ,
) -> AmbiguityPeak:
    """Joint (integer lag, frequency offset) of ``y`` against ``x``: the cross-ambiguity peak.

    For each integer lag d within +-(``max_lag_samples`` + 2) the lag product
    z_d[n] = conj(x[n]) y[n + d] is a tone at the frequency offset when d is the
    true lag. Each z_d is summed over blocks (the offset is small, so a block
    sum is a cheap low-pass and decimator), zero-padded and transformed; the
    largest |FFT| bin within +-``max_frequency_offset_hz`` gives the lag and a
    coarse offset, which is then refined by maximising the magnitude of the
    block sums' Fourier sum within one bin.


    >>> import numpy as np
    >>> from heimdall.dsp.signals import broadband_burst, fractional_delay
    >>> burst = broadband_burst(12_200, np.random.default_rng(4))
    >>> late = fractional_delay(burst, 3.0)
    >>> shifted = late * np.exp(2j * np.pi * 12.5 * np.arange(12_200) / 12_000.0)
    >>> peak = cross_ambiguity_peak(burst[100:-100], shifted[100:-100], 12_000.0, 10)
    >>> peak.lag_samples, round(peak.frequency_offset_hz, 1)
    (3, 12.5)
    """
    x_iq = validate_iq(x, min_samples=16, name="x")
    y_iq = validate_iq(y, min_samples=16, name="y")
    validate_sample_rate(sample_rate_hz)
    if not np.isfinite(max_lag_samples) or max_lag_samples < 0:
        raise ValueError(f"max_lag_samples must be non-negative, got {max_lag_samples}")
    if not np.isfinite(max_frequency_offset_hz) or max_frequency_offset_hz <= 0:
        raise ValueError(f"max_frequency_offset_hz must be positive, got {max_frequency_offset_hz}")
    if max_frequency_offset_hz >= sample_rate_hz / 2:
        raise ValueError("max_frequency_offset_hz must be below half the sample rate")
    count = min(len(x_iq), len(y_iq))
    max_lag = int(np.ceil(max_lag_samples)) + 2
    decimation = _decimation_factor(sample_rate_hz, max_frequency_offset_hz)
    # Every lag uses the same x samples, so their FFT peaks compare like with like.
    block_count = (count - 2 * max_lag) // decimation
    if block_count < 8:
        raise ValueError("the captures are too short for the lag and frequency search")
    used = block_count * decimation
    x_conj = np.conj(x_iq[max_lag : max_lag + used])
    lags = np.arange(-max_lag, max_lag + 1)
    block_sums = np.empty((len(lags), block_count), dtype=np.complex64)
    for row, lag in enumerate(lags):
        product = x_conj * y_iq[max_lag + lag : max_lag + lag + used]
        block_sums[row] = product.reshape(block_count, decimation).sum(axis=1)

    # Zero-pad 4x so the coarse peak is within a quarter of a natural bin.
    length = scipy.fft.next_fast_len(4 * block_count)
    spectra = np.abs(scipy.fft.fft(block_sums, length, axis=1))
    block_rate_hz = sample_rate_hz / decimation
    bin_frequencies_hz = scipy.fft.fftfreq(length, d=1.0 / block_rate_hz)
    allowed = np.abs(bin_frequencies_hz) <= max_frequency_offset_hz
    spectra[:, ~allowed] = 0.0
    peak_row, peak_column = (
        int(i) for i in np.unravel_index(int(np.argmax(spectra)), spectra.shape)
    )

    # Block k sums samples k*D .. k*D + D-1: its time is the block centre.
    block_times_s = (np.arange(block_count) * decimation + (decimation - 1) / 2) / sample_rate_hz
    best = block_sums[peak_row]
    bin_width_hz = block_rate_hz / length
    coarse_hz = float(bin_frequencies_hz[peak_column])
    # Within a bin the tone turns by under 2 pi bin_width * T over the record: float32
    # phasors of that fractional turn are exact enough.
    fraction_cycles = (bin_width_hz * block_times_s).astype(np.float32)
    derotated = best * _unit_phasors(-coarse_hz * block_times_s % 1.0)

    def probe_magnitudes(offsets_bins: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cycles = np.outer(offsets_bins.astype(np.float32), fraction_cycles)
        return np.abs(_unit_phasors(-cycles) @ derotated).astype(np.float64)

    refined_hz = coarse_hz + bin_width_hz * _refine_peak(probe_magnitudes)
    frequency_offset_hz = float(
        np.clip(refined_hz, -max_frequency_offset_hz, max_frequency_offset_hz)
    )
    return AmbiguityPeak(lag_samples=int(lags[peak_row]), frequency_offset_hz=frequency_offset_hz)


def _walked(samples: npt.NDArray[np.complex64], drift: float) -> npt.NDArray[np.complex64]:
    """``samples`` read at positions n + drift (n - c), c the centre: linear interpolation."""
    if drift == 0.0:
        return samples
    index = np.arange(len(samples), dtype=np.float64)
    positions = index + drift * (index - (len(samples) - 1) / 2)
    below = np.clip(np.floor(positions).astype(np.int64), 0, len(samples) - 2)
    fraction = np.clip(positions - below, 0.0, 1.0).astype(np.float32)
    return samples[below] + fraction * (samples[below + 1] - samples[below])


def shift_frequency(
    samples: npt.NDArray[np.complex64], frequency_hz: float, sample_rate_hz: float
) -> npt.NDArray[np.complex64]:
    """Multiply by exp(j 2 pi f n / fs): move every component up by ``frequency_hz``.

    >>> import numpy as np
    >>> shifted = shift_frequency(np.ones(4, np.complex64), 3_000.0, 12_000.0)
    >>> (np.angle(shifted, deg=True) % 360).round().tolist()
    [0.0, 90.0, 180.0, 270.0]
    """
    phase_cycles = frequency_hz * np.arange(len(samples), dtype=np.float64) / sample_rate_hz
    # Whole cycles dropped in float64: the float32 phasors then stay exact.
    return (samples * _unit_phasors(phase_cycles % 1.0)).astype(np.complex64, copy=False)


def capture_start_time_ns(capture: IQCapture, reference_ns: int = 0) -> float:
    """GPS time of sample 0, in ns after ``reference_ns``: the median over blocks.

    The median keeps one bad stamp from moving it. Absolute UTC instants
    (~1.7e18 ns) are beyond float64's resolution (256 ns), so the blocks are
    compared in int64 against the first block, and the result is returned
    relative to ``reference_ns``: pass a nearby instant to keep nanoseconds.

    >>> import numpy as np
    >>> from heimdall.dsp.signals import make_capture
    >>> start_ns = 1_700_000_000_123_456_789
    >>> capture = make_capture(np.zeros(4_096, np.complex64), 12_000.0, start_time_ns=start_ns)
    >>> round(capture_start_time_ns(capture, reference_ns=start_ns - 1_000))
    1000
    """
    if not capture.has_gps_time:
        raise ValueError(f"capture {capture.station_id!r} has no GPS timestamps")
    first_block_ns = int(capture.block_time_ns[0])
    since_first_ns = (capture.block_time_ns - first_block_ns).astype(np.float64)
    starts_ns = since_first_ns - capture.block_start_index * (1e9 / capture.sample_rate_hz)
    return float(np.median(starts_ns)) + (first_block_ns - reference_ns)


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
    scaled[0] = scipy.fft.fft(samples, length) * _unit_phasors(frequency_cycles * centre_drift)
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


class PreparedCapture:
    """A capture to be correlated against several others by ``tdoa_lag``.

    Its GPS start time, and for each cut of it its FFTs and carrier fits, are computed
    once and reused by every pair (thread-safe: at worst a race computes one twice).
    The localization service prepares its reference receiver this way; the gain needs
    the partners' windows to cover the same span of it (the same cut every time).
    """

    def __init__(self, capture: IQCapture) -> None:
        self.capture = capture
        #: Times are relative to the first block: small numbers, exact to the nanosecond.
        self.reference_ns = int(capture.block_time_ns[0]) if len(capture.block_time_ns) else 0
        self.start_ns = capture_start_time_ns(capture, self.reference_ns)
        self._cuts: dict[tuple[int, int], _SegmentSpectra] = {}

    def cut(self, skip: int, count: int) -> _SegmentSpectra:
        """Samples ``skip`` .. ``skip + count`` with their memoised spectra."""
        cut = self._cuts.get((skip, count))
        if cut is None:
            cut = _SegmentSpectra(self.capture.samples[skip : skip + count])
            self._cuts[(skip, count)] = cut
        return cut


def tdoa_lag(
    a: IQCapture | PreparedCapture,
    b: IQCapture,
    *,
    max_lag_s: float,
    max_frequency_offset_hz: float = MAX_FREQUENCY_OFFSET_HZ,
) -> TdoaLag:
    """Arrival-time difference of ``b`` behind ``a`` on the GPS time base.

    Both captures are cut to their common time span. When the receivers' sample
    rates differ (each KiwiSDR has its own GPS-corrected one), b's drift against a
    is taken inside the correlation (a Taylor series on a's spectrum, see
    ``_SegmentSpectra.stretched_spectrum``), or, beyond a sample, b is resampled
    onto a's rate first. A cross-ambiguity search finds the
    carrier offset of b against a (within +-``max_frequency_offset_hz``), b is
    shifted back by it, and the compensated pair is correlated; the lag in
    seconds is sample lag / fs plus the difference of the cut start times.
    ``max_lag_s`` bounds the physically possible lag (baseline / c). Pass ``a`` as a
    ``PreparedCapture`` to correlate it against several captures without redoing its
    share of the work.

    >>> import numpy as np
    >>> from heimdall.dsp.signals import broadband_burst, fractional_delay, make_capture
    >>> burst = broadband_burst(24_000, np.random.default_rng(5))
    >>> a = make_capture(burst[:12_000], 12_000.0)
    >>> b = make_capture(fractional_delay(burst, 4.5)[:12_000], 12_000.0)
    >>> round(tdoa_lag(a, b, max_lag_s=0.002).lag_s * 12_000.0, 2)
    4.5
    """
    if not np.isfinite(max_lag_s) or max_lag_s < 0:
        raise ValueError(f"max_lag_s must be non-negative, got {max_lag_s}")
    prepared = a if isinstance(a, PreparedCapture) else PreparedCapture(a)
    a = prepared.capture
    if a.sample_rate_hz <= 0 or b.sample_rate_hz <= 0:
        raise ValueError("sample rates must be positive")
    sample_rate_hz = a.sample_rate_hz
    # All times relative to a's first block: small numbers, exact to the nanosecond.
    start_a_ns = prepared.start_ns
    start_b_ns = capture_start_time_ns(b, prepared.reference_ns)
    b_samples, b_rate_hz = b.samples, b.sample_rate_hz
    # Every KiwiSDR has its own GPS-corrected rate, tens of ppm apart: over seconds b
    # drifts by a fraction of a sample against a. The correlation takes that drift
    # (see _SegmentSpectra.stretched_spectrum); only a drift beyond a sample or so
    # (rates hundreds of ppm apart) puts b on a's sample grid first.
    clock_drift = b_rate_hz / sample_rate_hz - 1.0
    if abs(clock_drift) * len(a.samples) / 2 > MAX_SERIES_DRIFT_SAMPLES:
        b_samples = resample_to_rate(b.samples, b_rate_hz, sample_rate_hz)
        b_rate_hz = sample_rate_hz
        clock_drift = 0.0
    period_a_ns, period_b_ns = 1e9 / sample_rate_hz, 1e9 / b_rate_hz
    common_start_ns = max(start_a_ns, start_b_ns)
    common_end_ns = min(
        start_a_ns + len(a.samples) * period_a_ns, start_b_ns + len(b_samples) * period_b_ns
    )
    if common_end_ns <= common_start_ns:
        raise ValueError("the captures do not overlap in time")
    # First sample of each capture at or after the common start, and the samples of
    # each up to the common end.
    skip_a = int(np.ceil((common_start_ns - start_a_ns) / period_a_ns - 1e-6))
    skip_b = int(np.ceil((common_start_ns - start_b_ns) / period_b_ns - 1e-6))
    first_a_ns = start_a_ns + skip_a * period_a_ns
    first_b_ns = start_b_ns + skip_b * period_b_ns
    count_a = min(len(a.samples) - skip_a, int((common_end_ns - first_a_ns) / period_a_ns))
    count_b = min(len(b_samples) - skip_b, int((common_end_ns - first_b_ns) / period_b_ns))
    cut_a = prepared.cut(skip_a, count_a)
    cut_b = b_samples[skip_b : skip_b + count_b]
    start_difference_s = (first_b_ns - first_a_ns) / 1e9
    # b's sample at a's sample i is i (1 + e) + lag: it drifts by e (count_a - 1) / 2
    # samples either side of a's centre.
    end_drift_samples = clock_drift * (count_a - 1) / 2
    # The cut starts differ by under a sample, so the sample window is the
    # physical one widened by that residual.
    max_lag_samples = (max_lag_s + abs(start_difference_s)) * sample_rate_hz
    # The receivers' oscillators differ by up to tens of Hz, which would decorrelate
    # seconds of signal: estimate the offset jointly with the lag, remove it from
    # b, then refine the lag coherently. A frequency shift does not move the
    # envelope, so the lag is unchanged by the compensation.
    # b's faster clock walks the lag across the record, which the search would see
    # as a frequency offset too (-drift times the signal's frequency): it searches b
    # walked onto a's grid, linearly interpolated (enough to find a carrier offset).
    peak = cross_ambiguity_peak(
        cut_a.samples,
        _walked(cut_b, clock_drift),
        sample_rate_hz,
        max_lag_samples + abs(end_drift_samples),
        max_frequency_offset_hz,
    )
    frequency_offset_hz = peak.frequency_offset_hz
    compensated_b = shift_frequency(cut_b, -frequency_offset_hz, b_rate_hz)
    # With the offset removed the pair's carriers sit on one frequency: notch it out,
    # so that only the modulation (which carries the timing) is correlated.
    result = _correlation_lag(
        cut_a,
        validate_iq(compensated_b, min_samples=16, name="b"),
        sample_rate_hz,
        max_lag_samples,
        CARRIER_NOTCH_HZ,
        end_drift_samples,
        frequency_aligned=True,
    )
    return TdoaLag(
        # The lag is counted in b's samples (at a's centre).
        lag_s=result.lag_samples / b_rate_hz + start_difference_s,
        lag_samples=result.lag_samples,
        quality_db=result.quality_db,
        peak_correlation=result.peak_correlation,
        overlap_s=count_a / sample_rate_hz,
        sample_rate_hz=sample_rate_hz,
        frequency_offset_hz=frequency_offset_hz,
        rms_bandwidth_hz=result.rms_bandwidth_hz,
    )
