"""Cross-correlation of two runs of samples: the peak, its quality and its bandwidth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft

from heimdall.dsp.spectrum import validate_iq, validate_sample_rate
from heimdall.dsp.tdoa.carrier import (
    BATCH_FFT_WORKERS,
    _fitted_carrier,
    _line_phasors,
    _notch,
)
from heimdall.dsp.tdoa.drift import _SegmentSpectra
from heimdall.dsp.tdoa.multipath import echo_bias_bound_samples
from heimdall.dsp.tdoa.peak import (
    DelayedSums,
    _integer_lag_phasors,
    _main_lobe,
    _newton_peak,
    _parabola_vertex,
    _refine_peak,
    _rms_bandwidth_hz,
    choose_peak,
    fft_frequencies,
    fft_phasors,
)

#: Below this quality (dB of main peak over the strongest correlation outside
#: the main lobe) a lag is not trustworthy: a carrier or a periodic signal
#: correlates equally well at many lags.
MIN_TDOA_QUALITY_DB = 6.0


#: Lags examined around the search window to measure the sidelobe/noise level.
SIDELOBE_SPAN_SAMPLES = 64


#: Least zero padding of a correlation: far more than any partner's length differs by
#: or any lag span needs, so all pairs with one reference share its FFT length.
CORRELATION_PAD_SAMPLES = 512


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
    #: Other peaks kept as rival hypotheses (echoes or the direct path), sub-sample lags.
    rival_lags_samples: tuple[float, ...] = ()
    #: The pair's carrier notched out (cycles per sample of ``x``), when one was.
    carrier_cycles: float | None = None
    #: Bound on the peak shift an unresolved echo can cause, from the channel's curvature
    #: across the band (``multipath.echo_bias_bound_samples``); 0 when not measured (not
    #: asked for, or the peak below the quality gate).
    echo_bias_bound_samples: float = 0.0

    @property
    def is_reliable(self) -> bool:
        return self.quality_db >= MIN_TDOA_QUALITY_DB


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


def cross_correlation_lag(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    sample_rate_hz: float,
    max_lag_samples: float,
    *,
    carrier_notch_hz: float | None = None,
    echo_bound: bool = False,
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
    With ``echo_bound`` the result carries ``echo_bias_bound_samples`` (``multipath``).

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
        _SegmentSpectra(x_iq),
        y_iq,
        sample_rate_hz,
        max_lag_samples,
        carrier_notch_hz,
        echo_bound=echo_bound,
    )


def _correlation_length(x_count: int, y_count: int, search: int) -> tuple[int, int]:
    """The lags read either side of 0 (``span``) and the FFT length of a correlation.

    Only lags within +-span are read: a circular correlation this long does not wrap any
    other lag onto them, and costs half of a full linear one. At least
    ``CORRELATION_PAD_SAMPLES`` of padding, so that every partner of one x (a few
    samples longer or shorter) gets the same length and x's spectra are reused.
    """
    span = max(search * 2, SIDELOBE_SPAN_SAMPLES)
    length = scipy.fft.next_fast_len(
        max(x_count + CORRELATION_PAD_SAMPLES, max(x_count, y_count) + span + 1)
    )
    return span, length


def _correlation_lag(
    x: _SegmentSpectra,
    y_iq: npt.NDArray[np.complex64],
    sample_rate_hz: float,
    max_lag_samples: float,
    carrier_notch_hz: float | None,
    *,
    echo_bound: bool = False,
) -> CorrelationLag:
    """``cross_correlation_lag`` on validated input, ``x``'s FFTs and carrier fits memoised."""
    search = int(np.ceil(max_lag_samples))
    span, length = _correlation_length(len(x.samples), len(y_iq), search)
    frequency_cycles = fft_frequencies(length)
    spectrum_y = scipy.fft.fft(y_iq, length)
    spectrum_x = x.spectrum(length).copy()  # the memoised one is read-only
    if carrier_notch_hz is not None:
        notch_cycles = carrier_notch_hz / sample_rate_hz
        _remove_carrier(x, y_iq, spectrum_x, spectrum_y, frequency_cycles, notch_cycles)
    # Cross-spectrum of y against x: its inverse peaks at the delay of y.
    cross_spectrum = spectrum_y * np.conj(spectrum_x)
    return _correlation_peak(
        cross_spectrum,
        scipy.fft.ifft(cross_spectrum),
        (spectrum_x, spectrum_y),
        sample_rate_hz,
        max_lag_samples,
        search,
        span,
        echo_bound=echo_bound,
    )


def aligned_correlation_lags(
    xs: list[_SegmentSpectra],
    ys: list[npt.NDArray[np.complex64]],
    sample_rate_hz: float,
    max_lags_samples: list[float],
    end_drifts_samples: list[float],
    carrier_notch_hz: float,
    *,
    echo_bound: bool = False,
) -> list[CorrelationLag]:
    """``cross_correlation_lag`` of each pair ``(xs[i], ys[i])`` whose frequency offset was
    removed (both share one carrier line), in one batched FFT and one inverse per length.

    ``ys[i]``'s clock runs faster than ``xs[i]``'s by ``end_drifts_samples[i]`` at the
    ends (``_SegmentSpectra.stretched_spectrum``); the lag is then the one at x's centre.
    Each pair's carrier, and the band within ``carrier_notch_hz`` of it, is left out: x's
    line is taken out before the stretch (the stretched line would leave a residue) and
    y's own is fitted near it. Only y's amplitude at x's frequency left enough of a strong
    carrier (tens of dB) for pure-carrier pairs to pass the quality gate with lags tens of
    microseconds wrong. Rows are independent: the results are those of one pair at a time.
    """
    notch_cycles = carrier_notch_hz / sample_rate_hz
    searches = [
        int(np.ceil(lag + abs(drift)))
        for lag, drift in zip(max_lags_samples, end_drifts_samples, strict=True)
    ]
    geometry = [
        _correlation_length(len(x.samples), len(y), search)
        for x, y, search in zip(xs, ys, searches, strict=True)
    ]
    results: list[CorrelationLag | None] = [None] * len(xs)
    by_length: dict[int, list[int]] = {}
    for index, (_, length) in enumerate(geometry):
        by_length.setdefault(length, []).append(index)
    for length, members in by_length.items():
        found = _aligned_group(
            [xs[i] for i in members],
            [ys[i] for i in members],
            length,
            sample_rate_hz,
            [max_lags_samples[i] for i in members],
            [end_drifts_samples[i] for i in members],
            [searches[i] for i in members],
            [geometry[i][0] for i in members],
            notch_cycles,
            echo_bound,
        )
        for index, result in zip(members, found, strict=True):
            results[index] = result
    return [r for r in results if r is not None]


def _aligned_group(
    xs: list[_SegmentSpectra],
    ys: list[npt.NDArray[np.complex64]],
    length: int,
    sample_rate_hz: float,
    max_lags_samples: list[float],
    end_drifts_samples: list[float],
    searches: list[int],
    spans: list[int],
    notch_cycles: float,
    echo_bound: bool,
) -> list[CorrelationLag]:
    """``aligned_correlation_lags`` of pairs that share one FFT ``length``."""
    lines = [x.without_line(length, notch_cycles) for x in xs]
    rows = list(range(len(xs)))
    # y's line taken out before its FFT: the same spectrum as subtracting the line's
    # (its leakage included) after it, without an FFT of the line per pair.
    without_lines = np.zeros((len(xs), length), dtype=np.complex64)

    def remove_line(row: int) -> None:
        y = ys[row]
        fitted = _fitted_carrier(y, lines[row][0].cycles, length)
        without_lines[row, : len(y)] = y - fitted.amplitude * _line_phasors(fitted.cycles, len(y))

    for row in rows:
        remove_line(row)
    spectra_y = scipy.fft.fft(without_lines, axis=1, workers=BATCH_FFT_WORKERS)
    spectra_x = np.empty_like(spectra_y)
    # The rows of one reference (cut) stretched together: one product over the series.
    by_x: dict[int, list[int]] = {}
    for row, (_, x) in enumerate(lines):
        by_x.setdefault(id(x), []).append(row)
    for same_x in by_x.values():
        spectra_x[same_x] = lines[same_x[0]][1].stretched_spectra(
            length, [end_drifts_samples[row] for row in same_x]
        )
    for row, (line, _) in enumerate(lines):
        _notch((spectra_x[row], spectra_y[row]), line.cycles, notch_cycles)
    # Cross-spectra of y against x: their inverses peak at the delays of y.
    cross_spectra = spectra_y * np.conj(spectra_x)
    correlations = scipy.fft.ifft(cross_spectra, axis=1, workers=BATCH_FFT_WORKERS)

    def peak(row: int) -> CorrelationLag:
        return _correlation_peak(
            cross_spectra[row],
            correlations[row],
            (spectra_x[row], spectra_y[row]),
            sample_rate_hz,
            max_lags_samples[row],
            searches[row],
            spans[row],
            end_drifts_samples[row],
            line_cycles=lines[row][0].cycles,
            echo_bound=echo_bound,
        )

    return [peak(row) for row in rows]


def _correlation_peak(
    cross_spectrum: npt.NDArray[np.complexfloating],
    correlation: npt.NDArray[np.complexfloating],
    spectra: tuple[npt.NDArray[np.complexfloating], npt.NDArray[np.complexfloating]],
    sample_rate_hz: float,
    max_lag_samples: float,
    search: int,
    span: int,
    end_drift_samples: float = 0.0,
    *,
    line_cycles: float | None = None,
    echo_bound: bool = False,
) -> CorrelationLag:
    """The peak of one correlation (the inverse of ``cross_spectrum``) within +-``search``.

    ``spectra``: x's and y's spectra as correlated (notched), for their energies.
    ``echo_bound``: measure ``CorrelationLag.echo_bias_bound_samples`` too (~1-2 ms).
    """
    spectrum_x, spectrum_y = spectra
    length = len(cross_spectrum)
    frequency_cycles = fft_frequencies(length)

    lags = np.arange(-span, span + 1)
    magnitude = np.abs(correlation[lags % length]).astype(np.float64)
    in_search = np.abs(lags) <= search
    peak, rivals = choose_peak(magnitude, in_search, lags)

    # The sidelobe level leaves out the chosen peak's lobe and its later rivals' (an echo
    # is not a sidelobe: it is the other hypothesis, reported as such). An earlier rival
    # still counts: a correlation with peaks on both sides is ambiguous, not an echo.
    outside_mask = np.ones(len(magnitude), dtype=bool)
    for k in (peak, *(r for r in rivals if lags[r] > lags[peak])):
        start, stop = _main_lobe(magnitude, k)
        outside_mask[start:stop] = False
    outside = magnitude[outside_mask]
    sidelobe = float(np.max(outside)) if outside.size else float(magnitude[peak])
    quality_db = 20 * np.log10(max(magnitude[peak], 1e-30) / max(sidelobe, 1e-30))

    integer_lag = int(lags[peak])
    # Centre the spectrum on the integer peak once; the refinement then only needs
    # phasors of a fractional lag, whose small angles are exact in float32.
    centred_spectrum = cross_spectrum * _integer_lag_phasors(length, integer_lag)
    vertex = _parabola_vertex(magnitude[peak - 1 : peak + 2])
    fraction: float | None = vertex
    if quality_db >= MIN_TDOA_QUALITY_DB:  # an unreliable peak is not worth refining
        fraction = _newton_peak(centred_spectrum, vertex)
    if fraction is None:  # not concave around the peak: fall back on parabola fits
        delayed_sums = DelayedSums(centred_spectrum)

        def probe_magnitudes(offsets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            return np.abs(delayed_sums(offsets)).astype(np.float64)

        fraction = _refine_peak(probe_magnitudes)
    aligned_spectrum = centred_spectrum * fft_phasors(length, fraction)
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
    echo_bound_samples = 0.0
    if echo_bound and quality_db >= MIN_TDOA_QUALITY_DB:
        echo_bound_samples = echo_bias_bound_samples(
            aligned_spectrum,
            spectrum_x.real**2 + spectrum_x.imag**2,
            spectrum_y.real**2 + spectrum_y.imag**2,
            frequency_cycles,
        )
    rival_lags = tuple(
        float(lags[k] + _parabola_vertex(magnitude[k - 1 : k + 2]) - end_drift_samples)
        for k in rivals
        if 0 < k < len(magnitude) - 1
    )
    return CorrelationLag(
        lag_samples=lag_samples,
        quality_db=float(quality_db),
        peak_correlation=float(min(peak_correlation, 1.0)),
        rms_bandwidth_hz=_rms_bandwidth_hz(aligned_spectrum, frequency_cycles * sample_rate_hz),
        rival_lags_samples=rival_lags,
        carrier_cycles=line_cycles,
        echo_bias_bound_samples=echo_bound_samples,
    )
