"""Carriers and frequency search: fitted lines, their notch, the cross-ambiguity offset."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.fft

from heimdall.dsp.spectrum import validate_iq, validate_sample_rate
from heimdall.dsp.tdoa.peak import (
    _parabola_vertex,
    _refine_peak,
    _turn_fraction,
    _unit_phasors,
    ramp_phasors,
)

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


#: Threads one batched FFT (a reference's partners, rows of a 2-D array) is split over.
#: One: a reference's 4-6 partners' rows of up to ~23 600 points split over both cores
#: cost ~1 ms more CPU a localization for no less wall time (7 x 2 s, on 2 cores
#: shared with another benchmark; on a quiet machine no difference was seen).
BATCH_FFT_WORKERS = 1


#: Samples summed per block when a carrier's frequency is refined: within one DFT bin
#: of its coarse frequency the tone turns by under 2 pi 32 / N in a block.
LINE_FIT_BLOCK_SAMPLES = 32


def _fit_line(samples: npt.NDArray[np.complex64], coarse_cycles: float) -> tuple[float, complex]:
    """Frequency (cycles/sample) and complex amplitude of the tone best fitting ``samples``.

    Refines a coarse frequency (a DFT bin) on the magnitude of the samples' Fourier
    sum, probing within a bin; the amplitude is the least-squares one at that frequency.
    """
    count = len(samples)
    # Take the coarse frequency out once: what is left of the tone turns by at most a
    # few cycles over the record, so sums over blocks of LINE_FIT_BLOCK_SAMPLES (each
    # taken at its centre) keep its Fourier sum to ~1e-5 at a fraction of the cost.
    derotated = samples * ramp_phasors(-coarse_cycles, count)
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


@dataclass(frozen=True)
class _Line:
    """A spectral line fitted to a run of samples: A exp(j 2 pi f n), n = 0 .. N-1."""

    cycles: float  # f, cycles per sample
    amplitude: complex  # A
    count: int  # N
    length: int  # the FFT length of its spectrum

    @cached_property
    def unit_spectrum(self) -> npt.NDArray[np.complexfloating]:
        """Spectrum of exp(j 2 pi f n) over the run at the FFT length: the line's leakage.

        Computed when first asked for: a reference's line is only taken out of its
        samples (``_SegmentSpectra.without_line``), and this FFT would be wasted.
        """
        unit_spectrum = scipy.fft.fft(_line_phasors(self.cycles, self.count), self.length)
        unit_spectrum.flags.writeable = False
        return unit_spectrum

    def spectrum(self) -> npt.NDArray[np.complexfloating]:
        return self.amplitude * self.unit_spectrum


def _line_phasors(cycles: float, count: int) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi cycles n), n = 0 .. count-1."""
    return ramp_phasors(cycles, count)


def _fitted_carrier(samples: npt.NDArray[np.complex64], coarse_cycles: float, length: int) -> _Line:
    """The line fitted near ``coarse_cycles``, with its spectrum at the FFT ``length``."""
    line_cycles, amplitude = _fit_line(samples, coarse_cycles)
    return _Line(line_cycles, amplitude, len(samples), length)


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


#: numpy's pairwise summation (``add.reduce`` of float32 pairs): runs of up to this many
#: floats are summed in 8 interleaved accumulators, longer ones split in two halves.
_PAIRWISE_BLOCK_FLOATS = 128


def _pairwise_column_sum(
    term: Callable[[int, npt.NDArray[np.complex64]], object],
    first: int,
    count: int,
    shape: tuple[int, ...],
    scratch: npt.NDArray[np.complex64],
) -> npt.NDArray[np.complex64]:
    """The sum of terms ``first .. first + count - 1`` (``term(j, out)`` writes term j
    into ``out``) added in the order numpy's ``sum`` adds the ``count`` elements of one
    contiguous complex64 run (its pairwise summation), so that it rounds bit for bit as
    ``run.sum()`` would. ``scratch``: an array of ``shape`` to compute terms into."""
    floats = 2 * count  # numpy counts a complex run's floats
    if floats < 8:
        total = np.empty(shape, dtype=np.complex64)
        term(first, total)
        for k in range(first + 1, first + count):
            term(k, scratch)
            total += scratch
        return total
    if floats <= _PAIRWISE_BLOCK_FLOATS:
        # Four complex accumulators (8 floats) over the run's multiple of 4, combined
        # pairwise, then the remainder one at a time.
        whole = count - count % 4
        accumulators = [np.empty(shape, dtype=np.complex64) for _ in range(4)]
        total = accumulators[0]
        for k, accumulator in enumerate(accumulators):
            term(first + k, accumulator)
        for k in range(4, whole):
            term(first + k, scratch)
            accumulators[k % 4] += scratch
        total += accumulators[1]  # (a0 + a1) + (a2 + a3), in place
        accumulators[2] += accumulators[3]
        total += accumulators[2]
        for k in range(first + whole, first + count):
            term(k, scratch)
            total += scratch
        return total
    half_floats = floats // 2
    half_floats -= half_floats % 8
    total = _pairwise_column_sum(term, first, half_floats // 2, shape, scratch)
    total += _pairwise_column_sum(
        term, first + half_floats // 2, count - half_floats // 2, shape, scratch
    )
    return total


def lag_block_sums(
    x: npt.NDArray[np.complex64],
    y: npt.NDArray[np.complex64],
    max_lag: int,
    decimation: int,
    block_count: int,
) -> npt.NDArray[np.complex64]:
    """Block sums of the lag products conj(x[n]) y[n + d], d = -max_lag .. max_lag, over
    x[max_lag:], shape ``(2 max_lag + 1, block_count)``: row d's block k sums n = max_lag
    + k D .. max_lag + k D + D - 1 (D = ``decimation``).

    Bit for bit ``(conj(x) * y_d).reshape(block_count, D).sum(axis=1)`` per lag, as the
    search summed them one lag at a time (the frequency offset found moves a lag by
    ~1e-4 sample when the block sums merely round differently). Here a block position
    j is taken for every lag and block at once, conj(x[max_lag + kD + j]) times the
    lags' y[max_lag + d + kD + j], a contiguous (lags, blocks) product, and the D of
    them are added in numpy's pairwise order: D products over all lags instead of a
    product and a short-row reduction per lag, about half the time.
    """
    used = block_count * decimation
    if min(len(x) - max_lag, len(y) - 2 * max_lag) < used:
        raise ValueError("the captures are shorter than the blocks summed")
    lags = 2 * max_lag + 1
    # x_columns[j, k] = conj(x[max_lag + k D + j]); y_columns[m, k] = y[m + k D], so that
    # the lags' y of block position j are the rows j .. j + 2 max_lag of y_columns.
    x_columns = np.conj(x[max_lag : max_lag + used]).reshape(block_count, decimation).T.copy()
    y_columns = np.lib.stride_tricks.as_strided(
        y,
        shape=(2 * max_lag + decimation, block_count),
        strides=(y.strides[0], decimation * y.strides[0]),
        writeable=False,
    ).copy()

    def term(j: int, out: npt.NDArray[np.complex64]) -> object:
        return np.multiply(x_columns[j], y_columns[j : j + lags], out=out)

    shape = (lags, block_count)
    scratch = np.empty(shape, dtype=np.complex64)
    return _pairwise_column_sum(term, 0, decimation, shape, scratch)


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
    lags = np.arange(-max_lag, max_lag + 1)
    block_sums = lag_block_sums(x_iq, y_iq, max_lag, decimation, block_count)

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
    derotated = best * _unit_phasors(_turn_fraction(-coarse_hz * block_times_s))

    def probe_magnitudes(offsets_bins: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cycles = np.outer(offsets_bins.astype(np.float32), fraction_cycles)
        return np.abs(_unit_phasors(-cycles) @ derotated).astype(np.float64)

    refined_hz = coarse_hz + bin_width_hz * _refine_peak(probe_magnitudes)
    frequency_offset_hz = float(
        np.clip(refined_hz, -max_frequency_offset_hz, max_frequency_offset_hz)
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
    phasors = ramp_phasors(frequency_hz / sample_rate_hz, len(samples))
    return (samples * phasors).astype(np.complex64, copy=False)


#: Segment length of the spectra whose cross-correlation gives the coarse offset
#: (11.7 Hz bins at 12 kHz): well inside the fine search's +-MAX_FREQUENCY_OFFSET_HZ.
COARSE_SEGMENT_SAMPLES = 1024


def compressed_spectrum(samples: npt.NDArray[np.complex64]) -> npt.NDArray[np.float64]:
    """Welch power spectrum above its noise floor, square-rooted (fft order).

    The floor (median) is taken out so noise does not correlate with noise, and the
    root keeps a strong narrow line from outweighing the rest of a wide signal.

    >>> import numpy as np
    >>> tone = np.exp(2j * np.pi * 0.25 * np.arange(4_096)).astype(np.complex64)
    >>> int(np.argmax(compressed_spectrum(tone)))  # a quarter of 1024 bins
    256
    """
    return compressed_spectra([samples])[0]


def compressed_spectra(runs: list[npt.NDArray[np.complex64]]) -> npt.NDArray[np.float64]:
    """``compressed_spectrum`` of each run, shape ``(len(runs), COARSE_SEGMENT_SAMPLES)``:
    the segments of all runs in one batched FFT. Each run needs one segment at least.
    """
    segment = COARSE_SEGMENT_SAMPLES
    counts = [len(run) // segment for run in runs]
    frames = np.concatenate(
        [
            run[: count * segment].reshape(count, segment)
            for run, count in zip(runs, counts, strict=True)
        ]
    ) * np.hanning(segment).astype(np.float32)
    frame_power = np.abs(scipy.fft.fft(frames, axis=1, workers=BATCH_FFT_WORKERS)) ** 2
    bounds = np.cumsum([0, *counts])
    spectra = np.empty((len(runs), segment), dtype=np.float64)
    for row, (first, last) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        power = np.mean(frame_power[first:last], axis=0).astype(np.float64)
        spectra[row] = np.sqrt(np.maximum(power - np.median(power), 0.0))
    return spectra


def coarse_frequency_offset_hz(
    x: npt.NDArray[np.complex64],
    y: npt.NDArray[np.complex64],
    sample_rate_hz: float,
    max_frequency_offset_hz: float,
    x_spectrum: npt.NDArray[np.float64] | None = None,
) -> float:
    """Frequency of ``y``'s signal minus ``x``'s, to a fraction of 11.7 Hz bins, any lag.

    A frequency shift moves the power spectrum and a time lag does not, so the
    cross-correlation of the two spectra (circular over the band) peaks at the offset
    whatever the lag: a search over +-kHz (converter LOs) for the cost of two spectra,
    after which the cross-ambiguity only has to search +-``MAX_FREQUENCY_OFFSET_HZ``.
    ``x_spectrum``: ``compressed_spectrum(x)`` when the caller keeps it (a reference).

    >>> import numpy as np
    >>> from heimdall.dsp.signals import broadband_burst
    >>> burst = broadband_burst(24_000, np.random.default_rng(1), bandwidth_fraction=0.3)
    >>> moved = burst * np.exp(2j * np.pi * 1_234.0 * np.arange(24_000) / 12_000.0)
    >>> abs(coarse_frequency_offset_hz(burst, moved.astype(np.complex64), 12_000.0, 3_000.0)
    ...     - 1_234.0) < 6.0
    True
    """
    if min(len(x), len(y)) < 2 * COARSE_SEGMENT_SAMPLES:
        return 0.0
    spectrum_x = compressed_spectrum(x) if x_spectrum is None else x_spectrum
    return float(
        coarse_frequency_offsets_hz(
            spectrum_x[np.newaxis], compressed_spectra([y]), sample_rate_hz, max_frequency_offset_hz
        )[0]
    )


def coarse_frequency_offsets_hz(
    spectra_x: npt.NDArray[np.float64],
    spectra_y: npt.NDArray[np.float64],
    sample_rate_hz: float,
    max_frequency_offset_hz: float,
) -> npt.NDArray[np.float64]:
    """``coarse_frequency_offset_hz`` of each row pair of ``compressed_spectra`` (one
    batched FFT per side and one inverse); 0 for a row without a positive peak."""
    correlations = scipy.fft.ifft(
        scipy.fft.fft(spectra_y, axis=1, workers=BATCH_FFT_WORKERS)
        * np.conj(scipy.fft.fft(spectra_x, axis=1, workers=BATCH_FFT_WORKERS)),
        axis=1,
        workers=BATCH_FFT_WORKERS,
    ).real
    bins = scipy.fft.fftfreq(COARSE_SEGMENT_SAMPLES, d=1.0 / COARSE_SEGMENT_SAMPLES).astype(int)
    bin_hz = sample_rate_hz / COARSE_SEGMENT_SAMPLES
    allowed = np.flatnonzero(np.abs(bins) * bin_hz <= max_frequency_offset_hz)
    offsets_hz = np.zeros(len(correlations), dtype=np.float64)
    for row, correlation in enumerate(correlations):
        if not np.any(correlation[allowed] > 0):
            continue
        peak = int(allowed[np.argmax(correlation[allowed])])
        neighbours = correlation[[(peak - 1) % len(bins), peak, (peak + 1) % len(bins)]]
        offsets_hz[row] = (bins[peak] + _parabola_vertex(neighbours)) * bin_hz
    return offsets_hz
