"""The arrival-time differences of GPS-timed captures against one reference (``tdoa_lags``),
or of one pair (``tdoa_lag``).

The partners of a reference go through each stage together: their coarse frequency
search, correlation and sliding windows are batched FFTs over the partners (rows of a
2-D array), not an FFT per pair; what is per pair (the cross-ambiguity search, carrier
fits, peak refinement) reads those rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from heimdall.dsp.spectrum import validate_iq
from heimdall.dsp.tdoa.carrier import (
    CARRIER_NOTCH_HZ,
    COARSE_SEGMENT_SAMPLES,
    MAX_FREQUENCY_OFFSET_HZ,
    coarse_frequency_offsets_hz,
    compressed_spectra,
    compressed_spectrum,
    cross_ambiguity_peak,
    shift_frequency,
)
from heimdall.dsp.tdoa.correlation import CorrelationLag, aligned_correlation_lags
from heimdall.dsp.tdoa.drift import _walked
from heimdall.dsp.tdoa.pair import PairCut, PreparedCapture, TdoaLag, cut_pair
from heimdall.dsp.tdoa.windows import (
    CLUSTER_FLOOR_SAMPLES,
    CLUSTER_SIGMAS,
    WindowLags,
    WindowPair,
    window_lags_batched,
    window_spectra,
)
from heimdall.receivers.capture import IQCapture


def tdoa_lag(
    a: IQCapture | PreparedCapture,
    b: IQCapture,
    *,
    max_lag_s: float,
    max_frequency_offset_hz: float = MAX_FREQUENCY_OFFSET_HZ,
    echo_bound: bool = False,
) -> TdoaLag:
    """Arrival-time difference of ``b`` behind ``a`` on the GPS time base.

    Both captures are cut to their common time span (``pair.cut_pair``). When the
    receivers' sample rates differ, b's drift against a is taken inside the correlation
    (a Taylor series on a's spectrum, see ``_SegmentSpectra.stretched_spectrum``), or,
    beyond a sample, b is resampled onto a's rate first. A cross-ambiguity search finds
    the carrier offset of b against a (within +-``max_frequency_offset_hz``), b is
    shifted back by it, and the compensated pair is correlated; the lag in
    seconds is sample lag / fs plus the difference of the cut start times.
    ``max_lag_s`` bounds the physically possible lag (baseline / c). Pass ``a`` as a
    ``PreparedCapture`` to correlate it against several captures without redoing its
    share of the work, or ``tdoa_lags`` them all at once. ``echo_bound`` also measures
    ``TdoaLag.echo_bias_bound_s`` (a diagnostic, ~1-2 ms a pair; see ``multipath``).

    >>> import numpy as np
    >>> from heimdall.dsp.signals import broadband_burst, fractional_delay, make_capture
    >>> burst = broadband_burst(24_000, np.random.default_rng(5))
    >>> a = make_capture(burst[:12_000], 12_000.0)
    >>> b = make_capture(fractional_delay(burst, 4.5)[:12_000], 12_000.0)
    >>> round(tdoa_lag(a, b, max_lag_s=0.002).lag_s * 12_000.0, 2)
    4.5
    """
    lag = tdoa_lags(
        a,
        [b],
        max_lags_s=[max_lag_s],
        max_frequency_offset_hz=max_frequency_offset_hz,
        echo_bound=echo_bound,
    )[0]
    if isinstance(lag, ValueError):
        raise lag
    return lag


def tdoa_lags(
    reference: IQCapture | PreparedCapture,
    partners: list[IQCapture],
    *,
    max_lags_s: list[float],
    max_frequency_offset_hz: float = MAX_FREQUENCY_OFFSET_HZ,
    echo_bound: bool = False,
) -> list[TdoaLag | ValueError]:
    """``tdoa_lag(reference, partner)`` of every partner, in their order, the partners
    batched through each stage; a pair that cannot be correlated (the captures share no
    time span, no GPS time) gets the ``ValueError`` ``tdoa_lag`` would raise.

    The results are those of one pair at a time (to float rounding): the rows of a
    batched FFT are independent. What stays per pair between the batched FFTs runs in
    turn: at ~23 000 samples a numpy call, two threads convoyed on the GIL between the
    calls (more CPU for no less wall time; docs/BENCHMARKS.md, issue 13).

    >>> import numpy as np
    >>> from heimdall.dsp.signals import broadband_burst, fractional_delay, make_capture
    >>> burst = broadband_burst(24_000, np.random.default_rng(5))
    >>> a = make_capture(burst[:12_000], 12_000.0)
    >>> late = [make_capture(fractional_delay(burst, d)[:12_000], 12_000.0) for d in (2.5, -3.0)]
    >>> lags = tdoa_lags(a, late, max_lags_s=[0.002, 0.002])
    >>> [round(lag.lag_s * 12_000.0, 2) for lag in lags]
    [2.5, -3.0]
    """
    prepared = reference if isinstance(reference, PreparedCapture) else PreparedCapture(reference)
    sample_rate_hz = prepared.capture.sample_rate_hz
    results: list[TdoaLag | ValueError | None] = [None] * len(partners)
    cuts: list[tuple[int, PairCut]] = []
    for index, (partner, max_lag_s) in enumerate(zip(partners, max_lags_s, strict=True)):
        try:
            cuts.append((index, cut_pair(prepared, partner, max_lag_s)))
        except ValueError as exc:
            results[index] = exc
    # b's faster clock walks the lag across the record, which the cross-ambiguity search
    # would see as a frequency offset too (-drift times the signal's frequency): it
    # searches b walked onto a's grid, linearly interpolated (enough to find a carrier
    # offset). The coarse search reads b as recorded: a spectrum does not see the walk
    # (the drift scales frequencies by ~1e-5, 0.1 Hz at 6 kHz), but it would see the
    # interpolation, a low-pass whose gain at the band edge falls to 0 where the walk
    # reaches half a sample, as over 5 s at 20 ppm; that tilt of b's spectrum towards
    # its own 0 Hz pulled the coarse offset hundreds of Hz towards 0, beyond the fine
    # search's reach (docs/localization.md, "Why a longer span loses pairs").
    walked = [_walked(cut.cut_b, cut.clock_drift) for _, cut in cuts]
    coarse_hz = _coarse_offsets_hz(
        cuts, [cut.cut_b for _, cut in cuts], sample_rate_hz, max_frequency_offset_hz
    )

    def compensate(k: int) -> tuple[float, npt.NDArray[np.complex64]] | ValueError:
        # The receivers' oscillators differ by up to tens of Hz, which would decorrelate
        # seconds of signal: estimate the offset jointly with the lag, remove it from
        # b, then refine the lag coherently. A frequency shift does not move the
        # envelope, so the lag is unchanged by the compensation.
        cut, coarse = cuts[k][1], coarse_hz[k]
        try:
            peak = cross_ambiguity_peak(
                cut.cut_a.samples,
                shift_frequency(walked[k], -coarse, sample_rate_hz) if coarse else walked[k],
                sample_rate_hz,
                cut.max_lag_samples + abs(cut.end_drift_samples),
                min(max_frequency_offset_hz, MAX_FREQUENCY_OFFSET_HZ),
            )
            offset_hz = coarse + peak.frequency_offset_hz
            b = shift_frequency(cut.cut_b, -offset_hz, cut.b_rate_hz)
            return offset_hz, validate_iq(b, min_samples=16, name="b")
        except ValueError as exc:  # e.g. an overlap too short to search: this pair only
            return exc

    searched = [compensate(k) for k in range(len(cuts))]
    compensated, kept = [], []
    for found, (index, cut) in zip(searched, cuts, strict=True):
        if isinstance(found, ValueError):
            results[index] = found
        else:
            compensated.append(found)
            kept.append((index, cut))
    cuts = kept
    # With the offset removed the pair's carriers sit on one frequency: notched out, so
    # that only the modulation (which carries the timing) is correlated.
    correlations = aligned_correlation_lags(
        [cut.cut_a for _, cut in cuts],
        [b for _, b in compensated],
        sample_rate_hz,
        [cut.max_lag_samples for _, cut in cuts],
        [cut.end_drift_samples for _, cut in cuts],
        CARRIER_NOTCH_HZ,
        echo_bound=echo_bound,
    )
    reliable = [k for k, result in enumerate(correlations) if result.is_reliable]
    windowed: dict[int, WindowLags | None] = dict.fromkeys(range(len(cuts)))
    window_results = window_lags_batched(
        [
            WindowPair(
                x_count=len(cuts[k][1].cut_a.samples),
                y=compensated[k][1],
                lag_samples=correlations[k].lag_samples,
                drift=cuts[k][1].clock_drift,
                line_cycles=correlations[k].carrier_cycles,
                x_spectra=_window_spectra(cuts[k][1]),
            )
            for k in reliable
        ],
        notch_cycles=CARRIER_NOTCH_HZ / sample_rate_hz,
    )
    windowed.update(zip(reliable, window_results, strict=True))
    for k, ((index, cut), result) in enumerate(zip(cuts, correlations, strict=True)):
        results[index] = _tdoa_lag(cut, result, windowed[k], compensated[k][0], sample_rate_hz)
    return [r for r in results if r is not None]


def _window_spectra(cut: PairCut) -> npt.NDArray[np.complexfloating]:
    samples = cut.cut_a.samples
    return cut.cut_a.memoised(("windows",), lambda: window_spectra(samples))


def _coarse_spectrum(cut: PairCut) -> npt.NDArray[np.float64]:
    samples = cut.cut_a.samples
    return cut.cut_a.memoised(("coarse",), lambda: compressed_spectrum(samples))


def _coarse_offsets_hz(
    cuts: list[tuple[int, PairCut]],
    partners: list[npt.NDArray[np.complex64]],
    sample_rate_hz: float,
    max_frequency_offset_hz: float,
) -> list[float]:
    """Each pair's carrier offset found beyond the fine search's reach (converter LOs, kHz
    apart) from the spectra's cross-correlation, to a few Hz, at any lag; 0 within it.
    ``partners``: each pair's b samples, not interpolated (see ``tdoa_lags``)."""
    offsets_hz = [0.0] * len(cuts)
    if max_frequency_offset_hz <= MAX_FREQUENCY_OFFSET_HZ:
        return offsets_hz
    long_enough = [
        k
        for k, ((_, cut), b) in enumerate(zip(cuts, partners, strict=True))
        if min(len(cut.cut_a.samples), len(b)) >= 2 * COARSE_SEGMENT_SAMPLES
    ]
    if not long_enough:
        return offsets_hz
    spectra_x = np.stack([_coarse_spectrum(cuts[k][1]) for k in long_enough])
    spectra_y = compressed_spectra([partners[k] for k in long_enough])
    found = coarse_frequency_offsets_hz(
        spectra_x, spectra_y, sample_rate_hz, max_frequency_offset_hz
    )
    for k, offset_hz in zip(long_enough, found, strict=True):
        offsets_hz[k] = float(offset_hz)
    return offsets_hz


def _tdoa_lag(
    cut: PairCut,
    result: CorrelationLag,
    windowed: WindowLags | None,
    frequency_offset_hz: float,
    sample_rate_hz: float,
) -> TdoaLag:
    """A pair's lag from its whole span's correlation and its windows: the windows'
    median when the whole span's peak fell outside their cluster."""
    lag_samples = result.lag_samples
    from_windows = False
    if windowed is not None:
        tolerance = max(
            CLUSTER_SIGMAS * windowed.sigma_samples * np.sqrt(len(windowed.lags_samples)),
            CLUSTER_FLOOR_SAMPLES,
        )
        if abs(lag_samples - windowed.median_samples) > tolerance:
            lag_samples, from_windows = windowed.median_samples, True
    b_rate_hz = cut.b_rate_hz
    return TdoaLag(
        # The lag is counted in b's samples (at a's centre).
        lag_s=lag_samples / b_rate_hz + cut.start_difference_s,
        lag_samples=lag_samples,
        quality_db=result.quality_db,
        peak_correlation=result.peak_correlation,
        overlap_s=len(cut.cut_a.samples) / sample_rate_hz,
        sample_rate_hz=sample_rate_hz,
        frequency_offset_hz=frequency_offset_hz,
        rms_bandwidth_hz=result.rms_bandwidth_hz,
        empirical_sigma_s=None if windowed is None else windowed.sigma_samples / b_rate_hz,
        windows_agreeing=0 if windowed is None else int(windowed.in_cluster.sum()),
        windows=0 if windowed is None else len(windowed.lags_samples),
        lag_from_windows=from_windows,
        rival_lags_s=tuple(
            r / b_rate_hz + cut.start_difference_s for r in result.rival_lags_samples
        ),
        echo_bias_bound_s=result.echo_bias_bound_samples / b_rate_hz,
    )
