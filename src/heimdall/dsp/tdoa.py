"""Time difference of arrival between two GPS-timestamped captures.

Sign convention: a positive lag means the signal reached ``b`` (``y``) later
than ``a`` (``x``): ``y[n] ~ x[n - lag]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy import optimize
from scipy.signal import czt

from heimdall.dsp.spectrum import validate_iq, validate_sample_rate
from heimdall.receivers.capture import IQCapture

#: Below this quality (dB of main peak over the strongest correlation outside
#: the main lobe) a lag is not trustworthy: a carrier or a periodic signal
#: correlates equally well at many lags.
MIN_TDOA_QUALITY_DB = 6.0
#: Lags examined around the search window to measure the sidelobe/noise level.
SIDELOBE_SPAN_SAMPLES = 64
#: Relative sample-rate mismatch tolerated between captures (5 s at 12 kHz
#: drifts by 0.06 samples at 1 ppm; beyond that correlate resampled data).
MAX_SAMPLE_RATE_MISMATCH = 1e-6
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0
#: Largest drift (samples, either side of the capture's centre) that ``resample_to_rate``
#: bridges with a Taylor series instead of a chirp-z transform: 2 s at 12 kHz with
#: rates 80 ppm apart. Beyond it the series needs too many terms to be cheaper.
MAX_SERIES_DRIFT_SAMPLES = 1.0
#: Truncation bound of that series, relative to the signal's amplitude.
SERIES_TOLERANCE = 1e-6
#: Probe spacings of the successive parabola fits that refine a peak (a carrier's
#: frequency; a correlation peak when Newton steps fail): each fit brings the estimate
#: well within the next, finer spacing.
REFINEMENT_SPACINGS_SAMPLES = (0.5, 1 / 16, 1 / 128)
#: Newton refinement of a correlation peak: at most this many steps, stopping once a
#: step is below the tolerance. Against a float64 search on the accuracy benchmark's pairs
#: the result is within 3e-7 sample (the parabola fits it replaced: 1.7e-4).
NEWTON_MAX_STEPS = 6
NEWTON_TOLERANCE_SAMPLES = 1e-6
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
    weighted = np.stack([spectrum, 1j * angular * spectrum, -(angular**2) * spectrum])
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


def _fitted_carrier(
    samples: npt.NDArray[np.complex64], coarse_cycles: float, length: int
) -> tuple[float, npt.NDArray[np.complexfloating]]:
    """Frequency (cycles/sample) of the line fitted near ``coarse_cycles``, and its spectrum.

    The spectrum is that of the fitted tone over the samples' span at the FFT ``length``:
    the line with its leakage, ready to subtract from the samples' own spectrum.
    """
    line_cycles, amplitude = _fit_line(samples, coarse_cycles)
    index = np.arange(len(samples), dtype=np.float64)
    fitted_tone = amplitude * _unit_phasors(line_cycles * index % 1.0)
    return line_cycles, scipy.fft.fft(fitted_tone, length)


class _SegmentSpectra:
    """FFTs and carrier fits of one run of samples, kept for every partner correlated with it.

    The localization service correlates the strongest receiver against each other one:
    the reference's spectrum and carrier fit are the same in every pair. Entries are
    read-only and a race between threads only computes one twice.
    """

    def __init__(self, samples: npt.NDArray[np.complex64]) -> None:
        self.samples = samples
        self._spectra: dict[int, npt.NDArray[np.complexfloating]] = {}
        self._carriers: dict[tuple[float, int], tuple[float, npt.NDArray[np.complexfloating]]] = {}

    def spectrum(self, length: int) -> npt.NDArray[np.complexfloating]:
        spectrum = self._spectra.get(length)
        if spectrum is None:
            spectrum = scipy.fft.fft(self.samples, length)
            spectrum.flags.writeable = False
            self._spectra[length] = spectrum
        return spectrum

    def carrier(
        self, coarse_cycles: float, length: int
    ) -> tuple[float, npt.NDArray[np.complexfloating]]:
        key = (coarse_cycles, length)
        carrier = self._carriers.get(key)
        if carrier is None:
            carrier = _fitted_carrier(self.samples, coarse_cycles, length)
            carrier[1].flags.writeable = False
            self._carriers[key] = carrier
        return carrier


def _remove_carrier(
    x: _SegmentSpectra,
    y: npt.NDArray[np.complex64],
    spectrum_x: npt.NDArray[np.complexfloating],
    spectrum_y: npt.NDArray[np.complexfloating],
    frequency_cycles: npt.NDArray[np.float64],
    notch_cycles: float,
) -> npt.NDArray[np.bool_]:
    """Take the pair's strongest line out of both spectra (in place); the bins kept.

    Each capture's fitted tone is subtracted with its leakage (the spectrum of the
    tone over the capture's span), then the band within ``notch_cycles`` of it is
    dropped: what remains of the carrier there are slow amplitude changes.
    """
    power = np.abs(spectrum_x) ** 2 + np.abs(spectrum_y) ** 2
    coarse_cycles = float(frequency_cycles[int(np.argmax(power))])
    length = len(spectrum_x)
    _, tone_spectrum_x = x.carrier(coarse_cycles, length)
    spectrum_x -= tone_spectrum_x
    line_cycles, tone_spectrum_y = _fitted_carrier(y, coarse_cycles, length)
    spectrum_y -= tone_spectrum_y
    distance_cycles = np.abs((frequency_cycles - line_cycles + 0.5) % 1.0 - 0.5)
    kept = distance_cycles > notch_cycles
    spectrum_x *= kept
    spectrum_y *= kept
    return kept


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
) -> CorrelationLag:
    """``cross_correlation_lag`` on validated input, ``x``'s FFTs and carrier fits memoised."""
    search = int(np.ceil(max_lag_samples))
    span = max(search * 2, SIDELOBE_SPAN_SAMPLES)
    # Only lags within +-span are read: a circular correlation this long does not
    # wrap any other lag onto them, and costs half of a full linear one.
    length = scipy.fft.next_fast_len(max(len(x.samples), len(y_iq)) + span + 1)
    spectrum_x = x.spectrum(length).copy()
    spectrum_y = scipy.fft.fft(y_iq, length)
    frequency_cycles = scipy.fft.fftfreq(length)
    if carrier_notch_hz is not None:
        _remove_carrier(
            x, y_iq, spectrum_x, spectrum_y, frequency_cycles, carrier_notch_hz / sample_rate_hz
        )
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
    centred_spectrum = cross_spectrum * _unit_phasors(frequency_cycles * integer_lag % 1.0)
    fraction = _newton_peak(
        centred_spectrum, frequency_cycles, _parabola_vertex(magnitude[peak - 1 : peak + 2])
    )
    if fraction is None:  # not concave around the peak: fall back on parabola fits
        frequency_cycles32 = frequency_cycles.astype(np.float32)

        def probe_magnitudes(offsets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            cycles = np.outer(offsets.astype(np.float32), frequency_cycles32)
            return np.abs(_unit_phasors(cycles) @ centred_spectrum).astype(np.float64)

        fraction = _refine_peak(probe_magnitudes)
    aligned_spectrum = centred_spectrum * _unit_phasors(frequency_cycles * fraction)
    peak_magnitude = float(np.abs(np.sum(aligned_spectrum)))
    lag_samples = float(np.clip(integer_lag + fraction, -max_lag_samples, max_lag_samples))
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
    block_sums = np.empty((len(lags), block_count), dtype=np.complex128)
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

    def negative_magnitude(frequency_hz: float) -> float:
        return -float(np.abs(np.sum(best * np.exp(-2j * np.pi * frequency_hz * block_times_s))))

    bin_width_hz = block_rate_hz / length
    coarse_hz = float(bin_frequencies_hz[peak_column])
    refined = optimize.minimize_scalar(
        negative_magnitude,
        bounds=(coarse_hz - bin_width_hz, coarse_hz + bin_width_hz),
        method="bounded",
        options={"xatol": 1e-3 * bin_width_hz},
    )
    frequency_offset_hz = float(
        np.clip(refined.x, -max_frequency_offset_hz, max_frequency_offset_hz)
    )
    return AmbiguityPeak(lag_samples=int(lags[peak_row]), frequency_offset_hz=frequency_offset_hz)


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

    Both captures are cut to their common time span (b resampled onto a's rate
    when the receivers' rates differ). A cross-ambiguity search finds the
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
    sample_period_ns = 1e9 / sample_rate_hz
    # All times relative to a's first block: small numbers, exact to the nanosecond.
    start_a_ns = prepared.start_ns
    start_b_ns = capture_start_time_ns(b, prepared.reference_ns)
    b_samples = b.samples
    mismatch = abs(a.sample_rate_hz - b.sample_rate_hz) / a.sample_rate_hz
    if mismatch > MAX_SAMPLE_RATE_MISMATCH:
        # Every KiwiSDR has its own GPS-corrected rate: tens of ppm apart, which
        # drifts by a sample within seconds. Put b on a's sample grid first.
        b_samples = resample_to_rate(b.samples, b.sample_rate_hz, sample_rate_hz)
    common_start_ns = max(start_a_ns, start_b_ns)
    common_end_ns = min(
        start_a_ns + len(a.samples) * sample_period_ns,
        start_b_ns + len(b_samples) * sample_period_ns,
    )
    if common_end_ns <= common_start_ns:
        raise ValueError("the captures do not overlap in time")
    # First sample of each capture at or after the common start.
    skip_a = int(np.ceil((common_start_ns - start_a_ns) / sample_period_ns - 1e-6))
    skip_b = int(np.ceil((common_start_ns - start_b_ns) / sample_period_ns - 1e-6))
    count = min(len(a.samples) - skip_a, len(b_samples) - skip_b)
    cut_a = prepared.cut(skip_a, count)
    cut_b = b_samples[skip_b : skip_b + count]
    start_difference_s = (
        (start_b_ns + skip_b * sample_period_ns) - (start_a_ns + skip_a * sample_period_ns)
    ) / 1e9
    # The cut starts differ by under a sample, so the sample window is the
    # physical one widened by that residual.
    max_lag_samples = (max_lag_s + abs(start_difference_s)) * sample_rate_hz
    # The receivers' oscillators differ by up to tens of Hz, which would decorrelate
    # seconds of signal: estimate the offset jointly with the lag, remove it from
    # b, then refine the lag coherently. A frequency shift does not move the
    # envelope, so the lag is unchanged by the compensation.
    peak = cross_ambiguity_peak(
        cut_a.samples, cut_b, sample_rate_hz, max_lag_samples, max_frequency_offset_hz
    )
    compensated_b = shift_frequency(cut_b, -peak.frequency_offset_hz, sample_rate_hz)
    # With the offset removed the pair's carriers sit on one frequency: notch it out,
    # so that only the modulation (which carries the timing) is correlated.
    result = _correlation_lag(
        cut_a,
        validate_iq(compensated_b, min_samples=16, name="b"),
        sample_rate_hz,
        max_lag_samples,
        CARRIER_NOTCH_HZ,
    )
    return TdoaLag(
        lag_s=result.lag_samples / sample_rate_hz + start_difference_s,
        lag_samples=result.lag_samples,
        quality_db=result.quality_db,
        peak_correlation=result.peak_correlation,
        overlap_s=count / sample_rate_hz,
        sample_rate_hz=sample_rate_hz,
        frequency_offset_hz=peak.frequency_offset_hz,
        rms_bandwidth_hz=result.rms_bandwidth_hz,
    )
