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
    """0.0 .. count - 1 (read-only): the phase ramps of a localization's carrier fits and
    frequency shifts run over a few lengths of ~23 000 samples, dozens of times."""
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
