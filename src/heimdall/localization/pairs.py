"""TDOA observations from GPS-timed recordings: which receivers are paired, and each
pair's arrival-time difference with its sigma.

N-1 pairs forming a tree, most against the strongest receiver, another reference or
partner where that one fails (``tdoa_observations_from_recordings``). Recordings are
read and stored elsewhere (``localization.service``); this module only correlates.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace
from functools import partial

import numpy as np
from pyproj import Geod

from heimdall.core.call_process import CallProcessUnavailable
from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.dsp.tdoa import MIN_TDOA_QUALITY_DB, PreparedCapture, TdoaLag, tdoa_lags
from heimdall.localization.lag_process import lag_process
from heimdall.localization.observations import Receiver, TdoaObservation
from heimdall.localization.windows import common_window, window_covering
from heimdall.receivers.capture import IQCapture
from heimdall.receivers.gps_stamps import clean_capture

# A pair whose lag is unusable is still passed on, with a sigma the estimator rejects,
# so that the result lists it instead of silently having fewer pairs.
UNUSABLE_SIGMA_S = 1e-3
#: Carrier offsets searched between two receivers: converters in front of KiwiSDRs put
#: the signal up to +-2 kHz off, so two receivers differ by up to 4 kHz (issue 15).
TDOA_FREQUENCY_SEARCH_HZ = 4_500.0
_GEOD = Geod(ellps="WGS84")


def baseline_s(a: Receiver, b: Receiver) -> float:
    """Light time across the straight line between two receivers (the largest possible lag)."""
    _, _, ground_m = _GEOD.inv(a.longitude, a.latitude, b.longitude, b.latitude)
    return math.hypot(ground_m, a.altitude_m - b.altitude_m) / SPEED_OF_LIGHT_M_PER_S


def correlation_sigma_s(peak_correlation: float, samples: int, rms_bandwidth_hz: float) -> float:
    """Standard deviation of a complex-baseband cross-correlation delay estimate.

    With normalised peak rho over N samples the effective SNR of the pair is
    rho^2 / (1 - rho^2) (= SNR_a SNR_b / (1 + SNR_a + SNR_b)), and the delay
    variance is 1 / (2 N SNR_eff (2 pi B_rms)^2): the factor 2 is that of complex
    samples, whose real and imaginary parts both carry the delay. B_rms is the RMS
    bandwidth about the centroid of the signal correlated (``TdoaLag.rms_bandwidth_hz``).
    """
    rho2 = min(max(peak_correlation, 1e-6) ** 2, 1 - 1e-9)
    snr_eff = rho2 / (1 - rho2)
    b_rms = max(rms_bandwidth_hz, 1.0)
    return 1.0 / (2 * math.pi * b_rms * math.sqrt(2 * samples * snr_eff))


def rms_bandwidth_fallback_hz(occupied_bandwidth_hz: float) -> float:
    """RMS bandwidth of a flat band as wide as the occupied one: B / sqrt(12).

    Only when the correlation gave no measured RMS bandwidth; optimistic for signals
    whose power is concentrated near their carrier (FM: about 1.5x).
    """
    return occupied_bandwidth_hz / math.sqrt(12)


def pair_sigma_s(lag: TdoaLag, occupied_bandwidth_hz: float) -> float:
    """A pair's own delay sigma (s), before the receivers' timing sigmas are added.

    The correlation's delay error, never below what the pair's windows scatter by
    (fading, interference). ``occupied_bandwidth_hz`` stands in for the RMS bandwidth
    when the lag measured none.

    Not in it: ``TdoaLag.echo_bias_bound_s``, the bound on an unresolved echo's shift
    measured from the pair. Added in quadrature it made the realistic benchmark no better
    (docs/localization.md, "Multipath and the pair sigma"): at 12 kHz the echoes that
    move lags by ~1 us bend the band too little to be seen, and the few it sees are not
    the pairs that err. Their share stays with the calibration's timing sigma.
    """
    rms_bandwidth_hz = lag.rms_bandwidth_hz or rms_bandwidth_fallback_hz(occupied_bandwidth_hz)
    samples = round(lag.overlap_s * lag.sample_rate_hz)
    sigma_s = correlation_sigma_s(lag.peak_correlation, samples, rms_bandwidth_hz)
    if lag.empirical_sigma_s is not None:
        sigma_s = max(sigma_s, lag.empirical_sigma_s)
    return sigma_s


@dataclass(frozen=True, slots=True)
class TimedRecording:
    """One GPS-timed receiver's recording with what its measurement said of it."""

    station: Receiver
    capture: IQCapture
    snr_db: float
    #: As ``dsp.measure`` measured it; None when the row has none.
    occupied_bandwidth_hz: float | None


def usable_for_tdoa(
    recordings: list[TimedRecording],
    skipped: list[str] | None = None,
    left_out: dict[str, str] | None = None,
) -> list[TimedRecording]:
    """The recordings on their stamp-fitted clocks; those whose stamps cannot time them
    are left out, and why is appended to ``skipped`` ("<id>: <why>") and set in
    ``left_out`` (id -> why; ``receivers.gps_stamps``)."""
    usable = []
    # One after the other: a fit is ~0.5 ms of small numpy calls that hold the GIL
    # between them, so threads only convoyed on it (docs/BENCHMARKS.md, issue 13).
    cleaned = [clean_capture(r.capture) for r in recordings]
    for recording, (capture, fit) in zip(recordings, cleaned, strict=True):
        if fit.usable:
            usable.append(dataclass_replace(recording, capture=capture))
            continue
        if skipped is not None:
            skipped.append(f"{recording.station.id}: {fit.reason}")
        if left_out is not None:
            left_out[recording.station.id] = fit.reason or "its stamps cannot time it"
    return usable


#: Partners a receiver whose pair with the reference is unusable is tried against
#: (receivers already tied to the reference, strongest first), before it is given up.
MAX_FALLBACK_PARTNERS = 2
#: Below this median occupied bandwidth the signal carries no arrival time worth the
#: name: an unmodulated carrier measures as a spectral line (its occupied bandwidth is
#: the measurement's resolution bandwidth, ~140 Hz at 12 kHz), whose delay is only a
#: phase. Its pairs' lags then time whatever else correlates in the band (an interferer
#: heard by both receivers, impulses), and on the realistic benchmark such pairs passed
#: the quality gate with 1.5-17 us sigmas and pulled carriers' fused fixes off their
#: ellipses. No pair is formed; the power readings locate it.
MIN_TIMING_BANDWIDTH_HZ = 1_000.0


def median_bandwidth_hz(recordings: list[TimedRecording]) -> float | None:
    """Median measured occupied bandwidth of the recordings (None: none was measured)."""
    known = [r.occupied_bandwidth_hz for r in recordings if r.occupied_bandwidth_hz is not None]
    return float(np.median(known)) if known else None


@dataclass(frozen=True, slots=True)
class _Pair:
    """One correlated pair as an observation, or why it could not be one."""

    other: TimedRecording
    partner: TimedRecording
    observation: TdoaObservation | None
    reason: str | None = None
    #: Below the quality gate: the signal correlates flat (a carrier), not a bad partner.
    flat: bool = False

    @property
    def usable(self) -> bool:
        return self.observation is not None and self.observation.sigma_s < UNUSABLE_SIGMA_S


def _pair(other: TimedRecording, partner: TimedRecording, lag: TdoaLag | str) -> _Pair:
    """The observation ``arrival(other) - arrival(partner)`` of a lag, with its sigma."""
    pair_name = f"{other.station.id}-{partner.station.id}"
    if isinstance(lag, str):  # the pair could not be correlated at all
        return _Pair(other, partner, None, f"{pair_name}: {lag}")
    bandwidths_hz = [
        b for b in (partner.occupied_bandwidth_hz, other.occupied_bandwidth_hz) if b is not None
    ]
    sigma_s = pair_sigma_s(lag, min(bandwidths_hz, default=1.0))
    reason = None
    flat = lag.quality_db < MIN_TDOA_QUALITY_DB
    if flat:
        sigma_s = UNUSABLE_SIGMA_S
        reason = f"{pair_name}: correlation quality {lag.quality_db:.1f} dB"
    elif lag.windows and 2 * lag.windows_agreeing < lag.windows:
        sigma_s = UNUSABLE_SIGMA_S
        reason = (
            f"{pair_name}: only {lag.windows_agreeing} of {lag.windows} windows agree on one lag"
        )
    observation = TdoaObservation(
        receiver_i=other.station.id,
        receiver_j=partner.station.id,
        time_difference_s=lag.lag_s,  # arrival(other) - arrival(partner)
        sigma_s=sigma_s,
        quality=float(np.clip(lag.quality_db / 20.0, 0.0, 1.0)),
    )
    return _Pair(other, partner, observation, reason, flat)


#: A reference with at least this many partners has half of them correlated in the lag
#: process (``lag_process``); fewer are not worth the captures' crossing.
MIN_PARTNERS_TO_SPLIT = 4


def reference_lags(
    reference: PreparedCapture, partners: list[IQCapture], max_lags_s: list[float]
) -> list[TdoaLag | ValueError]:
    """``tdoa_lags`` of a reference's partners, the pairs going through each stage
    together as rows of batched FFTs; the second half of a large star in the lag process
    meanwhile, on the other core. The same results either way, to float rounding (a
    batch's FFT may round a row differently by its size: lags within ~1e-11 s), and a
    busy or dead lag process leaves its half here.
    """
    split = len(partners) // 2 if len(partners) >= MIN_PARTNERS_TO_SPLIT else len(partners)
    elsewhere = None
    if split < len(partners):
        try:
            # The reference's own FFTs are redone there: only captures cross.
            elsewhere = lag_process().send(
                partial(
                    tdoa_lags,
                    max_lags_s=max_lags_s[split:],
                    max_frequency_offset_hz=TDOA_FREQUENCY_SEARCH_HZ,
                ),
                reference.capture,
                partners[split:],
            )
        except CallProcessUnavailable:
            split = len(partners)

    def here(start: int, stop: int) -> list[TdoaLag | ValueError]:
        return tdoa_lags(
            reference,
            partners[start:stop],
            max_lags_s=max_lags_s[start:stop],
            max_frequency_offset_hz=TDOA_FREQUENCY_SEARCH_HZ,
        )

    try:
        lags = here(0, split)
    except BaseException:
        if elsewhere is not None:  # its answer read, so that the child is free again
            with contextlib.suppress(Exception):
                elsewhere()
        raise
    if elsewhere is None:
        return lags
    try:
        return lags + elsewhere()
    except CallProcessUnavailable:  # gone, or too slow: its half is done here
        return lags + here(split, len(partners))


def tdoa_observations_from_recordings(
    recordings: list[TimedRecording],
    *,
    window_s: float,
    skipped: list[str] | None = None,
    left_out: dict[str, str] | None = None,
) -> list[TdoaObservation]:
    """Arrival-time differences forming a tree over the receivers: N-1 pairs, most against
    the strongest receiver.

    Each is correlated over the central ``window_s`` seconds of the recordings (the
    localization's ``Settings.tdoa_window_s``, or the training's
    ``Settings.training_window_s``; all of a shorter recording).

    Each pair's sigma is ``pair_sigma_s``; the receivers' clock errors belong to the
    calibration (``Calibration.timing_sigma_s``), which ``localize`` adds, and
    ``localization.tdoa.pair_whitening`` models the pairs' shared receivers (exact for a
    tree). One reference cannot spoil every pair (issue 15):

    * when fewer than half of the pairs against the strongest receiver are usable, its
      two strongest partners among the failures and their own pair is usable (the
      reference's interference, a capture of its own that correlates badly), the next
      strongest is tried as the reference, and the star with more usable pairs is kept;
    * a receiver whose pair with the reference is unusable, and which is no weaker than
      every receiver that paired (else its own weakness is the likely cause), is tried
      against up to ``MAX_FALLBACK_PARTNERS`` receivers already tied to the reference
      (strongest first): the first usable pair replaces it, and the set stays a tree.

    None at all for a signal narrower than ``MIN_TIMING_BANDWIDTH_HZ`` (median over the
    receivers' measurements): a carrier has no arrival time to find, and ``skipped``
    says so.

    A pair still unusable is passed on with ``UNUSABLE_SIGMA_S`` (the result lists it);
    one that cannot be correlated (captures not overlapping in time) is left out. Why is
    appended to ``skipped`` when given. ``left_out``, when given, gets each receiver in
    no usable pair, with why (its stamps, its pair's correlation, the signal). All
    N(N-1)/2 pairs would cost three times the correlations for 7 receivers and carry no
    more information on the receivers' own errors (their closure cancels them); these
    cost extra correlations only on failure.
    """
    bandwidth_hz = median_bandwidth_hz(recordings)
    if bandwidth_hz is not None and bandwidth_hz < MIN_TIMING_BANDWIDTH_HZ:
        reason = (
            f"no TDOA: the signal's median occupied bandwidth is {bandwidth_hz:.0f} Hz "
            f"(< {MIN_TIMING_BANDWIDTH_HZ:.0f} Hz), an unmodulated carrier carries no "
            "arrival time"
        )
        if skipped is not None:
            skipped.append(reason)
        if left_out is not None:
            left_out.update((r.station.id, reason) for r in recordings)
        return []
    recordings = usable_for_tdoa(recordings, skipped, left_out)
    if len(recordings) < 2:
        if left_out is not None:
            left_out.update((r.station.id, "no other receiver to pair with") for r in recordings)
        return []
    by_strength = sorted(recordings, key=lambda r: r.snr_db, reverse=True)
    # The strongest receiver's window cut to the span every partner covers
    # (``common_window``), and the partners' windows covering it.
    reference_window = common_window(
        by_strength[0].capture, [r.capture for r in by_strength[1:]], window_s
    )
    windows = {id(r): window_covering(r.capture, reference_window) for r in recordings}
    windows[id(by_strength[0])] = reference_window
    prepared: dict[int, PreparedCapture] = {}

    def correlate_all(partner: TimedRecording, others: list[TimedRecording]) -> list[_Pair]:
        if id(partner) not in prepared:  # its FFTs and carrier fit serve all its pairs
            prepared[id(partner)] = PreparedCapture(windows[id(partner)])
        lags = reference_lags(
            prepared[id(partner)],
            [windows[id(other)] for other in others],
            [baseline_s(partner.station, other.station) + 1e-4 for other in others],
        )
        # A ValueError: the pair cannot be correlated (e.g. recordings made at different times).
        return [
            _pair(other, partner, str(lag) if isinstance(lag, ValueError) else lag)
            for other, lag in zip(others, lags, strict=True)
        ]

    def correlate(other: TimedRecording, partner: TimedRecording) -> _Pair:
        return correlate_all(partner, [other])[0]

    def star(reference: TimedRecording) -> list[_Pair]:
        return correlate_all(reference, [r for r in recordings if r is not reference])

    pairs = star(by_strength[0])
    # The reference is suspect only when its two strongest partners both failed with it
    # and one pair without it, those two, is usable: weak partners fail with anyone.
    failed = {id(p.other) for p in pairs if not p.usable}
    if (
        len(recordings) >= 3
        and 2 * sum(p.usable for p in pairs) < len(pairs)
        and {id(by_strength[1]), id(by_strength[2])} <= failed
        and correlate(by_strength[2], by_strength[1]).usable
    ):
        second = star(by_strength[1])
        if sum(p.usable for p in second) > sum(p.usable for p in pairs):
            if skipped is not None:
                skipped.append(
                    f"{by_strength[0].station.id} as reference: "
                    f"{sum(p.usable for p in pairs)} of {len(pairs)} pairs usable; "
                    f"{by_strength[1].station.id} is the reference instead"
                )
            pairs = second
    tied = [p.other for p in pairs if p.usable]
    tied.sort(key=lambda r: r.snr_db, reverse=True)
    # A receiver weaker than every one that paired with the reference most likely failed
    # for its own weakness, which no partner mends; one stronger than some of them
    # failed for the pair (the reference's interference, an echo, a wrong peak).
    weakest_tied_db = min((r.snr_db for r in tied), default=math.inf)
    observations = []
    final: list[_Pair] = []
    for pair in pairs:
        if not pair.usable and pair.other.snr_db >= weakest_tied_db:
            for partner in tied[:MAX_FALLBACK_PARTNERS]:
                fallback = correlate(pair.other, partner)
                if fallback.usable:
                    if skipped is not None:
                        skipped.append(f"{pair.reason}; paired with {partner.station.id} instead")
                    pair = fallback
                    break
        # A flat correlation is passed on unusable and listed by the estimator, as before.
        if pair.reason is not None and not pair.usable and not pair.flat and skipped is not None:
            skipped.append(pair.reason)
        if pair.observation is not None:
            observations.append(pair.observation)
        final.append(pair)
    if left_out is not None:
        left_out.update(_without_usable_pair(recordings, final))
    return observations


def _without_usable_pair(recordings: list[TimedRecording], pairs: list[_Pair]) -> dict[str, str]:
    """Receiver id -> why it is in no usable pair of the tree (its last pair's reason)."""
    paired = {r.station.id for p in pairs if p.usable for r in (p.other, p.partner)}
    reasons = {
        p.other.station.id: p.reason or "unusable"
        for p in pairs
        if p.other.station.id not in paired
    }
    return {
        r.station.id: reasons.get(r.station.id, "none of its pairs is usable")
        for r in recordings
        if r.station.id not in paired
    }
