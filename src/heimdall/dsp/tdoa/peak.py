"""Phasors and correlation-peak refinement: band-limited interpolation of a peak."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import scipy.fft

#: Probe spacings of the successive parabola fits that refine a peak (a carrier's
#: frequency, the cross-ambiguity's offset; a correlation peak when Newton steps
#: fail): each fit brings the estimate well within the next, finer spacing.
REFINEMENT_SPACINGS_SAMPLES = (0.5, 1 / 16, 1 / 128)


#: Newton refinement of a correlation peak: at most this many steps, stopping once a
#: step is below the tolerance. Against a float64 search on the accuracy benchmark's pairs
#: the result is within 3e-7 sample (the parabola fits it replaced: 1.7e-4).
NEWTON_MAX_STEPS = 6


NEWTON_TOLERANCE_SAMPLES = 1e-6


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


def _turn_fraction(cycles: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """``cycles % 1.0`` (whole turns dropped, in [0, 1]), bit for bit, ten times faster.

    numpy's float remainder goes through fmod and sign fix-ups; the fractional part of a
    float is exactly representable, so ``x - floor(x)`` rounds the same exact value.
    """
    return cycles - np.floor(cycles)


#: Fine phasors per coarse one in a ramp (``_ramp_factors``): fixed, not ~sqrt(count), so
#: that sample n's phasor is the same product whatever the ramp's length. A tone taken
#: out of a pair's samples then leaves the same rounding whether the pair is correlated
#: alone or among a reference's partners (``tdoa_lags``), and a flat correlation (a
#: carrier alone) refines to the same lag both ways.
RAMP_FINE_PHASORS = 256


@lru_cache(maxsize=32)
def _ramp_grid(count: int) -> npt.NDArray[np.float64]:
    """Sample numbers 0 .. M-1 then 0, M, 2M .. up to ``count`` (M = ``RAMP_FINE_PHASORS``)."""
    coarse_count = -(-count // RAMP_FINE_PHASORS)
    grid = np.concatenate(
        [np.arange(RAMP_FINE_PHASORS), RAMP_FINE_PHASORS * np.arange(coarse_count)]
    ).astype(np.float64)
    grid.flags.writeable = False
    return grid


def _ramp_factors(
    steps: npt.NDArray[np.float64], starts: npt.NDArray[np.float64], count: int
) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]]:
    """The coarse and fine phasors of ramps start + step n, n = a M + b (M = ``RAMP_FINE_PHASORS``).

    A ramp is a geometric sequence: exp(j 2 pi (start + step n)) is the product of
    exp(j 2 pi (start + step a M)) (shape (..., count / M)) and exp(j 2 pi step b)
    (shape (..., M)). M + count / M cos/sin in float64 (~350 for 24 000 samples), whole
    turns dropped first, stand for count of them.
    """
    fine_count, grid = RAMP_FINE_PHASORS, _ramp_grid(count)
    cycles = steps[..., np.newaxis] * grid
    cycles[..., fine_count:] += starts[..., np.newaxis]
    angle_rad = (2 * np.pi) * (cycles - np.floor(cycles))
    phasors = np.empty(angle_rad.shape, dtype=np.complex64)
    phasors.real = np.cos(angle_rad)
    phasors.imag = np.sin(angle_rad)
    return phasors[..., fine_count:], phasors[..., :fine_count]


def ramp_phasors(
    step_cycles: npt.ArrayLike, count: int, start_cycles: npt.ArrayLike = 0.0
) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi (start + step n)), n = 0 .. count-1: a phase ramp, complex64.

    Built from ``_ramp_factors``: count complex products instead of count float32
    cos/sin, a third of the time of ``_unit_phasors`` at 24 000 samples on an AVX2 host
    (no AVX-512 cos/sin), and ten times closer to exact (~1e-7: a complex64 rounding per
    factor and one for the product, where float32 angles of up to half a turn err by up
    to ~1e-6 rad). ``step_cycles`` and ``start_cycles`` broadcast: arrays of shape (R,)
    give R ramps, shape (R, count).

    >>> import numpy as np
    >>> ramp = ramp_phasors(0.25, 6, start_cycles=0.5)
    >>> bool(np.allclose(ramp, np.exp(2j * np.pi * (0.5 + 0.25 * np.arange(6))), atol=1e-6))
    True
    >>> ramp_phasors([0.1, -0.2], 5).shape
    (2, 5)
    """
    steps, starts = np.broadcast_arrays(
        np.asarray(step_cycles, dtype=np.float64), np.asarray(start_cycles, dtype=np.float64)
    )
    coarse, fine = _ramp_factors(steps, starts, count)
    ramp = coarse[..., :, np.newaxis] * fine[..., np.newaxis, :]
    return ramp.reshape(*steps.shape, -1)[..., :count]


def fft_phasors(length: int, delay_samples: npt.ArrayLike) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi f delay) at every frequency f of ``fft_frequencies(length)``, complex64.

    From the most negative frequency up the phasors are one ramp (``ramp_phasors``);
    FFT order puts its non-negative half first. Delays of shape (R,) give (R, length).

    >>> import numpy as np
    >>> phasors = fft_phasors(5, 0.3)
    >>> bool(np.allclose(phasors, np.exp(2j * np.pi * np.fft.fftfreq(5) * 0.3), atol=1e-6))
    True
    """
    step = np.asarray(delay_samples, dtype=np.float64) / length
    negative = length // 2
    ramp = ramp_phasors(step, length, start_cycles=-negative * step)
    phasors = np.empty(ramp.shape, dtype=np.complex64)
    phasors[..., : length - negative] = ramp[..., negative:]
    phasors[..., length - negative :] = ramp[..., :negative]
    return phasors


class DelayedSums:
    """sum_k S[..., k] exp(j 2 pi f_k t) of spectra S over their FFT frequencies f_k, at delays
    t: a spectrum's band-limited interpolation, evaluated again and again (Newton steps).

    From the most negative frequency up (m = 0 .. N-1, f = (m - N_neg) / N) the phasors
    are one ramp, so with m = a M + b the sum is sum_a coarse_a sum_b S[a M + b] fine_b
    (``_ramp_factors``): a matrix-vector product against the spectra reordered and
    reshaped once to (L, M), and no phasor array of length N at all (a fifth of the time
    of ``_unit_phasors`` and a product at 24 000 bins). Spectra of shape (..., N);
    a delay per spectrum, or one for all.

    >>> import numpy as np
    >>> spectrum = np.exp(-2j * np.pi * np.fft.fftfreq(16) * 0.4).astype(np.complex64)
    >>> sums = DelayedSums(spectrum)
    >>> round(abs(complex(sums(0.4))), 3), round(abs(complex(sums(0.0))), 3)
    (16.0, 12.122)
    """

    def __init__(self, spectra: npt.NDArray[np.complexfloating]) -> None:
        self.length = length = spectra.shape[-1]
        self.negative = negative = length // 2
        fine_count = RAMP_FINE_PHASORS
        coarse_count = len(_ramp_grid(length)) - fine_count
        blocks = np.zeros((*spectra.shape[:-1], coarse_count * fine_count), dtype=np.complex64)
        blocks[..., :negative] = spectra[..., length - negative :]
        blocks[..., negative:length] = spectra[..., : length - negative]
        self.blocks = blocks.reshape(*spectra.shape[:-1], coarse_count, fine_count)

    def __call__(self, delay_samples: npt.ArrayLike) -> npt.NDArray[np.complex64]:
        step = np.asarray(delay_samples, dtype=np.float64) / self.length
        coarse, fine = _ramp_factors(step, -self.negative * step, self.length)
        if step.ndim == 0:  # one delay: one matrix-vector product over every row
            return (self.blocks @ fine) @ coarse
        partial_sums = (self.blocks @ fine[..., np.newaxis])[..., 0]
        return np.sum(partial_sums * coarse, axis=-1)


@lru_cache(maxsize=8)
def _roots_of_unity(length: int) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi m / length), m = 0 .. length-1 (read-only: shared by every caller)."""
    roots = _unit_phasors(np.arange(length, dtype=np.float64) / length)
    roots.flags.writeable = False
    return roots


def _integer_lag_phasors(length: int, lag: int) -> npt.NDArray[np.complex64]:
    """exp(j 2 pi k lag / length) for every FFT bin k: an integer shift, exact by lookup
    (``take``'s wrap is the modulo, at half the cost of numpy's ``%``)."""
    return np.take(_roots_of_unity(length), np.arange(length) * lag, mode="wrap")


@lru_cache(maxsize=16)
def sample_index(count: int) -> npt.NDArray[np.float64]:
    """0.0 .. count - 1 (read-only): a localization walks its partners' samples
    (``drift._walked``) over a few lengths of ~23 000 samples, dozens of times."""
    index = np.arange(count, dtype=np.float64)
    index.flags.writeable = False
    return index


@lru_cache(maxsize=8)
def fft_frequencies(length: int) -> npt.NDArray[np.float64]:
    """``scipy.fft.fftfreq(length)``, cycles per sample (read-only: shared by every caller,
    as a localization's pairs share their FFT lengths)."""
    cycles = scipy.fft.fftfreq(length)
    cycles.flags.writeable = False
    return cycles


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
    start_samples: float,
    frequency_cycles: npt.NDArray[np.float64] | None = None,
) -> float | None:
    """Lag (within +-1 sample) maximising |C(t)|^2, C(t) = sum_k S_k exp(j 2 pi f_k t).

    ``f_k``: the FFT frequencies of ``spectrum`` (cycles per sample), or
    ``frequency_cycles`` when given (any grid, e.g. band centres).

    Newton's method on the band-limited interpolation itself: C, C' and C'' at t are
    one set of phasors against the spectrum weighted by (j 2 pi f)^0..2, so each step
    costs one phasor evaluation (the parabola fits of ``_refine_peak`` cost nine); on
    the FFT grid, a ``DelayedSums`` one. From a start within a tenth of a sample or so it
    converges in 2-3 steps. None when the curve is not concave on the way or the steps
    leave +-1 sample: the caller falls back.
    """
    on_fft_grid = frequency_cycles is None
    if frequency_cycles is None:
        frequency_cycles = fft_frequencies(len(spectrum))
    angular = (2 * np.pi * frequency_cycles).astype(np.float32)
    weighted = np.stack(
        [spectrum, np.complex64(1j) * angular * spectrum, -(angular**2) * spectrum]
    ).astype(np.complex64, copy=False)
    if on_fft_grid:
        evaluate: Callable[[float], npt.NDArray[np.complex64]] = DelayedSums(weighted)
    else:
        frequency_cycles32 = frequency_cycles.astype(np.float32)

        def evaluate(lag: float) -> npt.NDArray[np.complex64]:
            return weighted @ _unit_phasors(frequency_cycles32 * np.float32(lag))

    lag = start_samples
    for _ in range(NEWTON_MAX_STEPS):
        value, first, second = evaluate(lag)
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


#: A correlation peak within this many dB of the strongest, earlier than it and outside
#: its main lobe, is taken as the direct path: a later, stronger one is its echo.
EARLIEST_PEAK_WINDOW_DB = 3.0
#: Other peaks within this many dB of the chosen one are kept as rival hypotheses.
RIVAL_PEAK_DB = 6.0
#: More rivals than this: the correlation is ambiguous (periodic, a carrier), not an echo.
MAX_RIVAL_PEAKS = 2


def choose_peak(
    magnitude: npt.NDArray[np.float64], in_search: npt.NDArray[np.bool_], lags: npt.NDArray[np.int_]
) -> tuple[int, list[int]]:
    """Index of the peak taken as the direct path, and the rival peaks' indices.

    The earliest local maximum within ``EARLIEST_PEAK_WINDOW_DB`` of the strongest one
    (and outside its main lobe) wins: at a sample rate that resolves an echo, the echo
    can outshine the direct path, never precede it. Rivals are the other distinct
    peaks within ``RIVAL_PEAK_DB`` of the strongest; more than ``MAX_RIVAL_PEAKS`` of them
    means an ambiguous correlation and none is kept (the quality gate decides).

    >>> import numpy as np
    >>> lags = np.arange(-20, 21)
    >>> magnitude = np.exp(-0.5 * ((lags - 2) / 1.0) ** 2) + 1.2 * np.exp(-0.5 * ((lags - 9) / 1.0) ** 2)
    >>> chosen, rivals = choose_peak(magnitude, np.ones(41, bool), lags)
    >>> int(lags[chosen]), [int(lags[k]) for k in rivals]
    (2, [9])
    """
    search = np.flatnonzero(in_search)
    strongest = int(search[np.argmax(magnitude[search])])
    start, stop = _main_lobe(magnitude, strongest)
    inner = np.arange(1, len(magnitude) - 1)
    is_local = (magnitude[inner] >= magnitude[inner - 1]) & (
        magnitude[inner] > magnitude[inner + 1]
    )
    local = inner[is_local & in_search[inner]]
    rival_floor = magnitude[strongest] * 10 ** (-RIVAL_PEAK_DB / 20)
    others = [int(k) for k in local if not start <= k < stop and magnitude[k] >= rival_floor]
    if len(others) > MAX_RIVAL_PEAKS:
        return strongest, []
    earliest_floor = magnitude[strongest] * 10 ** (-EARLIEST_PEAK_WINDOW_DB / 20)
    earlier = [k for k in others if magnitude[k] >= earliest_floor and lags[k] < lags[strongest]]
    chosen = min(earlier, key=lambda k: int(lags[k])) if earlier else strongest
    return chosen, [k for k in [*others, strongest] if k != chosen]
