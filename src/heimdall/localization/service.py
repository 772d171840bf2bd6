"""Localize a finished acquisition from its stored measurements and recordings.

Power observations come from the measurement rows of every receiver, KiwiSDR
and OpenWebRX alike; TDOA observations are measured here from the stored SigMF
recordings of the GPS-timed receivers only (OpenWebRX has neither IQ nor GPS
time): N-1 pairs forming a tree, most against the strongest receiver (another reference
or partner where that one fails; ``tdoa_observations_from_recordings``). The result's
``detail.inputs`` says which receivers fed the power part and which the TDOA
part, and why any was left out. The caller owns the transaction: this module
flushes, never commits.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace

import numpy as np
import scipy.fft
from pyproj import Geod
from sqlalchemy import select
from sqlalchemy.orm import Session

from heimdall.acquisition.recording import load_recording
from heimdall.core import metrics
from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore
from heimdall.dsp.tdoa import (
    MIN_TDOA_QUALITY_DB,
    PreparedCapture,
    TdoaLag,
    capture_start_time_ns,
    tdoa_lag,
)
from heimdall.localization import repository
from heimdall.localization.calibration import Calibration
from heimdall.localization.estimate import (
    LocalizationResult,
    PowerObservation,
    Receiver,
    TdoaObservation,
    localize,
)
from heimdall.models import Acquisition, AcquisitionState, Localization, Measurement, WebSDRStation
from heimdall.receivers.capture import IQCapture
from heimdall.receivers.gps_stamps import clean_capture

# A pair whose lag is unusable is still passed on, with a sigma the estimator rejects,
# so that the result lists it instead of silently having fewer pairs.
UNUSABLE_SIGMA_S = 1e-3
# Pairs correlated at once (the service's machines have 2 cores).
TDOA_WORKERS = 2
#: Carrier offsets searched between two receivers: converters in front of KiwiSDRs put
#: the signal up to +-2 kHz off, so two receivers differ by up to 4 kHz (issue 15).
TDOA_FREQUENCY_SEARCH_HZ = 4_500.0
_GEOD = Geod(ellps="WGS84")


#: Recordings read back from S3 at once: each GET mostly waits on the store, not the CPU.
READ_WORKERS = 8

_pool_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def _named_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """A thread pool started once per process (a pool per localization spent about a
    millisecond starting and joining its threads)."""
    with _pool_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return pool


def _correlation_pool() -> ThreadPoolExecutor:
    """The threads pairs are correlated on."""
    return _named_pool("tdoa", TDOA_WORKERS)


def _read_pool() -> ThreadPoolExecutor:
    """The threads recordings are read back from the object store on."""
    return _named_pool("recording-read", READ_WORKERS)


def _forget_pool() -> None:
    """In a forked child (a prefork worker): the parent's pool objects came along, their
    threads did not, and the lock may have been held by one of them."""
    global _pools, _pool_lock
    _pools, _pool_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


class NotLocalizable(ValueError):
    """The acquisition does not exist or has not succeeded."""


def _fast_block_count(blocks: int, samples_per_block: int) -> int:
    """The first block count from ``blocks`` on whose sample count is a fast FFT length."""
    while scipy.fft.next_fast_len(blocks * samples_per_block) != blocks * samples_per_block:
        blocks += 1
    return blocks


def central_window(capture: IQCapture, duration_s: float) -> IQCapture:
    """The whole blocks of the capture's central ``duration_s`` (all of it if shorter).

    The block count is rounded up to one whose length factors into small primes (2 s
    at 12 kHz: 48 blocks, not 47 = a prime), the length at which a partner far off in
    sample rate is resampled (``dsp.tdoa.resample_to_rate``).
    """
    blocks = len(capture.block_start_index)
    block_length = capture.samples_per_block
    wanted = _fast_block_count(
        max(1, math.ceil(duration_s * capture.sample_rate_hz / block_length)), block_length
    )
    if wanted >= blocks:
        return capture
    return _blocks(capture, (blocks - wanted) // 2, wanted)


#: A partner covering less than this share of the reference's central window does not
#: shrink the span the others share (it is correlated over its own overlap instead):
#: one recording started late, or at another time, must not cut every pair short.
COMMON_SPAN_MIN_SHARE = 0.9


def _fast_block_count_below(blocks: int, samples_per_block: int) -> int:
    """The largest block count up to ``blocks`` whose sample count is a fast FFT length."""
    while blocks > 1 and scipy.fft.next_fast_len(blocks * samples_per_block) != (
        blocks * samples_per_block
    ):
        blocks -= 1
    return blocks


def common_window(reference: IQCapture, partners: list[IQCapture], duration_s: float) -> IQCapture:
    """``central_window`` of the reference, cut to the whole blocks every partner covers.

    The receivers start up to tens of milliseconds apart, and a 2 s window is a whole 2 s
    capture: each partner would overlap a different span of the reference, and each pair
    would cut, transform and carrier-fit the reference again. Cut to the span they all
    cover, every pair correlates this one window whole (``PreparedCapture`` shares its
    FFTs, drift moments and carrier fit). It costs the pairs the late starts' share of
    the overlap (~2 % of 2 s). Partners covering under ``COMMON_SPAN_MIN_SHARE`` of the
    central window keep their own (shorter) overlap and do not shrink the others'.
    The block count is rounded down to a fast FFT length, as ``central_window`` rounds up.
    """
    window = central_window(reference, duration_s)
    reference_ns = int(window.block_time_ns[0])
    window_start_ns = capture_start_time_ns(window, reference_ns)
    window_end_ns = window_start_ns + len(window.samples) * 1e9 / window.sample_rate_hz
    first_ns, last_ns = window_start_ns, window_end_ns
    for partner in partners:
        try:
            start_ns = capture_start_time_ns(partner, reference_ns)
        except ValueError:  # no GPS time: its own pair says why
            continue
        end_ns = start_ns + len(partner.samples) * 1e9 / partner.sample_rate_hz
        covered_ns = min(end_ns, window_end_ns) - max(start_ns, window_start_ns)
        if covered_ns >= COMMON_SPAN_MIN_SHARE * (window_end_ns - window_start_ns):
            first_ns, last_ns = max(first_ns, start_ns), min(last_ns, end_ns)
    if first_ns <= window_start_ns and last_ns >= window_end_ns:
        return window
    # Window blocks whose every sample lies in [first_ns, last_ns), one sample to spare
    # each side for the partners' sub-sample start offsets and clock rates.
    period_ns = 1e9 / window.sample_rate_hz
    sample_starts_ns = window_start_ns + window.block_start_index * period_ns
    sample_ends_ns = np.append(sample_starts_ns[1:], window_end_ns)
    inside = np.flatnonzero(
        (sample_starts_ns >= first_ns + period_ns) & (sample_ends_ns <= last_ns - period_ns)
    )
    if len(inside) == 0:
        return window
    count = _fast_block_count_below(len(inside), window.samples_per_block)
    # Centred in the covered blocks, which are consecutive.
    return _blocks(window, int(inside[0]) + (len(inside) - count) // 2, count)


def window_covering(capture: IQCapture, window: IQCapture) -> IQCapture:
    """The whole blocks of ``capture`` that cover ``window``'s GPS time span, plus one each side.

    Cut this way, every partner of the reference window overlaps all of it, so
    ``tdoa_lag`` correlates the same cut of the reference in every pair (and reuses its
    FFTs and carrier fit). The spare blocks absorb the partners' start offsets and
    rate differences; the count is rounded up to a fast FFT length.
    """
    reference_ns = int(window.block_time_ns[0])
    offset_ns = capture_start_time_ns(capture, reference_ns) - capture_start_time_ns(
        window, reference_ns
    )
    block_length = capture.samples_per_block
    block_s = block_length / capture.sample_rate_hz
    # Block k of capture starts offset + k * block_s after the window's first sample.
    first = max(0, math.floor(-offset_ns / 1e9 / block_s) - 1)
    window_end_s = len(window.samples) / window.sample_rate_hz
    stop = math.ceil((window_end_s - offset_ns / 1e9) / block_s) + 1
    blocks = len(capture.block_start_index)
    wanted = _fast_block_count(max(1, stop - first), block_length)
    if wanted >= blocks:
        return capture
    first = min(first, blocks - wanted)
    return _blocks(capture, first, wanted)


def _blocks(capture: IQCapture, first: int, count: int) -> IQCapture:
    """Blocks ``first`` .. ``first + count`` of the capture, with their metadata."""
    blocks = len(capture.block_start_index)
    last = first + count
    start = int(capture.block_start_index[first])
    stop = int(capture.block_start_index[last]) if last < blocks else len(capture.samples)
    return dataclass_replace(
        capture,
        samples=capture.samples[start:stop],
        block_start_index=capture.block_start_index[first:last] - start,
        block_time_ns=capture.block_time_ns[first:last],
        block_gps_status=capture.block_gps_status[first:last],
        rssi_dbm=capture.rssi_dbm[first:last],
    )


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
    occupied_bandwidth_hz: float


def usable_for_tdoa(
    recordings: list[TimedRecording], skipped: list[str] | None = None
) -> list[TimedRecording]:
    """The recordings on their stamp-fitted clocks; those whose stamps cannot time them
    are left out, and why is appended to ``skipped`` (``receivers.gps_stamps``)."""
    usable = []
    # Each capture's stamp fit is independent of the others': on the correlation threads.
    cleaned = _correlation_pool().map(clean_capture, [r.capture for r in recordings])
    for recording, (capture, fit) in zip(recordings, cleaned, strict=True):
        if fit.usable:
            usable.append(dataclass_replace(recording, capture=capture))
        elif skipped is not None:
            skipped.append(f"{recording.station.id}: {fit.reason}")
    return usable


#: Partners a receiver whose pair with the reference is unusable is tried against
#: (receivers already tied to the reference, strongest first), before it is given up.
MAX_FALLBACK_PARTNERS = 2
#: Below this median occupied bandwidth the signal has next to no timing (a carrier
#: measures ~140 Hz): another reference or partner would only add chances for a
#: spurious lag to pass the quality gate, and correlations, so none is tried.
MIN_FALLBACK_BANDWIDTH_HZ = 1_000.0


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
    sigma_s = pair_sigma_s(lag, min(partner.occupied_bandwidth_hz, other.occupied_bandwidth_hz))
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


def tdoa_observations_from_recordings(
    recordings: list[TimedRecording], *, window_s: float, skipped: list[str] | None = None
) -> list[TdoaObservation]:
    """Arrival-time differences forming a tree over the receivers: N-1 pairs, most against
    the strongest receiver.

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

    Neither for a signal narrower than ``MIN_FALLBACK_BANDWIDTH_HZ`` (median over the
    receivers' measurements), which has no timing to find.

    A pair still unusable is passed on with ``UNUSABLE_SIGMA_S`` (the result lists it);
    one that cannot be correlated (captures not overlapping in time) is left out. Why is
    appended to ``skipped`` when given. All N(N-1)/2 pairs would cost three times the
    correlations for 7 receivers and carry no more information on the receivers' own
    errors (their closure cancels them); these cost extra correlations only on failure.
    """
    recordings = usable_for_tdoa(recordings, skipped)
    if len(recordings) < 2:
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

    def correlate(other: TimedRecording, partner: TimedRecording) -> _Pair:
        if id(partner) not in prepared:  # its FFTs and carrier fit serve all its pairs
            prepared[id(partner)] = PreparedCapture(windows[id(partner)])
        max_lag_s = baseline_s(partner.station, other.station) + 1e-4
        try:
            lag: TdoaLag | str = tdoa_lag(
                prepared[id(partner)],
                windows[id(other)],
                max_lag_s=max_lag_s,
                max_frequency_offset_hz=TDOA_FREQUENCY_SEARCH_HZ,
            )
        except ValueError as exc:  # e.g. recordings made at different times
            lag = str(exc)
        return _pair(other, partner, lag)

    def star(reference: TimedRecording) -> list[_Pair]:
        others = [r for r in recordings if r is not reference]
        prepared.setdefault(id(reference), PreparedCapture(windows[id(reference)]))
        # numpy and scipy.fft release the GIL for the heavy parts: pairs overlap on cores.
        return list(_correlation_pool().map(lambda other: correlate(other, reference), others))

    pairs = star(by_strength[0])
    timed_signal = (
        float(np.median([r.occupied_bandwidth_hz for r in recordings])) >= MIN_FALLBACK_BANDWIDTH_HZ
    )
    # The reference is suspect only when its two strongest partners both failed with it
    # and one pair without it, those two, is usable: weak partners fail with anyone, and
    # a signal without timing (a carrier) correlates flat against everyone.
    failed = {id(p.other) for p in pairs if not p.usable}
    if (
        timed_signal
        and len(recordings) >= 3
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
    for pair in pairs:
        if timed_signal and not pair.usable and pair.other.snr_db >= weakest_tied_db:
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
    return observations


def tdoa_observations(
    store: ObjectStore,
    measurements: list[Measurement],
    receivers: dict[str, Receiver],
    settings: Settings,
    skipped: list[str] | None = None,
) -> list[TdoaObservation]:
    """TDOA pairs of the GPS-timed receivers, from their stored recordings."""
    timed = [m for m in measurements if m.gps_locked]
    # Two GETs per recording, each mostly a wait on the store: all of them at once (the
    # first failure is raised here, as a serial read would).
    captures = _read_pool().map(lambda m: load_recording(store, m.data_url, m.meta_url), timed)
    recordings = [
        TimedRecording(
            station=receivers[m.websdr_id],
            capture=capture,
            snr_db=m.snr,
            occupied_bandwidth_hz=m.occupied_bandwidth_hz or 1.0,
        )
        for m, capture in zip(timed, captures, strict=True)
    ]
    return tdoa_observations_from_recordings(
        recordings, window_s=settings.tdoa_window_s, skipped=skipped
    )


#: A measured SNR below this is a receiver hearing only noise: ``dsp.measure`` on noise
#: alone reads about -18 dB (the floor in one resolution bandwidth). Its "power" is a
#: noise estimate tens of dB under the floor, not the transmitter's: taken as a reading
#: it would pull the fix far away (issue 15: receivers that do not hear the transmitter).
NOT_HEARD_SNR_DB = -15.0


def not_heard(measurements: list[Measurement]) -> dict[str, str]:
    """Receivers whose measurement is not above the noise, and why they are left out."""
    return {
        m.websdr_id: f"not above the noise (SNR {m.snr:.1f} dB < {NOT_HEARD_SNR_DB:g} dB)"
        for m in measurements
        if m.snr is not None and m.snr < NOT_HEARD_SNR_DB
    }


def power_observations(measurements: list[Measurement]) -> list[PowerObservation]:
    """Power readings of the receivers that hear the signal (``not_heard`` are left out)."""
    observations = []
    for m in measurements:
        if m.snr is not None and m.snr < NOT_HEARD_SNR_DB:
            continue
        if m.power_dbm is not None:
            observations.append(PowerObservation(receiver_id=m.websdr_id, power=m.power_dbm))
        elif m.signal_power_dbfs is not None:
            observations.append(
                PowerObservation(receiver_id=m.websdr_id, power=m.signal_power_dbfs, unit="dBFS")
            )
    return observations


def on_network_scale(observation: PowerObservation, calibration: Calibration) -> bool:
    """A reading is on the network's common scale in dBm, or the calibration puts it there.

    dBm readings (KiwiSDR RSSI) are; a dBFS or S-meter reading (OpenWebRX) is only
    when the calibration has fitted that receiver's full scale or gain offset.
    """
    return (
        observation.unit == "dBm"
        or observation.receiver_id in calibration.full_scale_dbm
        or observation.receiver_id in calibration.gain_offsets_db
    )


def select_power_scales(
    observations: list[PowerObservation], calibration: Calibration
) -> tuple[list[PowerObservation], dict[str, str]]:
    """The power readings one fit can use together, and why the others were left out.

    Readings on receivers' own, uncalibrated scales (an S-meter's 0 dB is wherever its
    SDR's gain puts it) differ from one another by offsets the unknown transmitter power
    absorbs only in common, so they can make a fix among themselves; beside dBm readings
    they would be tens of dB off. They then wait for a calibration that fits them.
    """
    own_scale = [o for o in observations if not on_network_scale(o, calibration)]
    if not own_scale or len(own_scale) == len(observations):
        return observations, {}
    excluded = {
        o.receiver_id: "uncalibrated S-meter/dBFS reading beside dBm readings; a fitted "
        "calibration (gain offset or full scale) brings it in"
        for o in own_scale
    }
    return [o for o in observations if o.receiver_id not in excluded], excluded


def localization_inputs(
    result: LocalizationResult,
    measurements: list[Measurement],
    power_excluded: dict[str, str],
) -> dict[str, object]:
    """Which receivers fed the power part and which the TDOA part of a fix, and why not."""
    power = sorted({r.receiver_ids[0] for r in result.residuals if r.kind == "power"})
    tdoa = sorted({i for r in result.residuals if r.kind == "tdoa" for i in r.receiver_ids})
    outliers = result.diagnostics.get("excluded_power_outliers") or []
    excluded: dict[str, str] = dict(power_excluded)
    for receiver_id in outliers:
        excluded[receiver_id] = "power reading rejected as an outlier"
    return {
        "power": power,
        "tdoa": tdoa,
        "gps_timed": sorted(m.websdr_id for m in measurements if m.gps_locked),
        "no_gps_time": sorted(m.websdr_id for m in measurements if not m.gps_locked),
        "power_excluded": excluded,
    }


def default_calibration(settings: Settings) -> Calibration:
    """The untrained calibration, with the configured GPS timing sigma."""
    return Calibration(default_timing_sigma_ns=settings.gps_timing_sigma_ns)


def active_calibration(
    session: Session, settings: Settings
) -> tuple[Calibration, uuid.UUID | None]:
    """The active model's calibration and its id, or the default one and None."""
    model = repository.active_calibration(session)
    if model is None:
        return default_calibration(settings), None
    return Calibration.model_validate(model.parameters), model.id


def compute(
    session: Session,
    store: ObjectStore,
    settings: Settings,
    task_id: uuid.UUID,
    *,
    method: str = "auto",
) -> Localization:
    """Localize one successful acquisition and store the result (flushes, never commits)."""
    started = time.perf_counter()
    acquisition = session.get(Acquisition, task_id)
    if acquisition is None:
        raise NotLocalizable(f"no acquisition with task_id {task_id}")
    if acquisition.state is not AcquisitionState.SUCCESS:
        raise NotLocalizable(
            f"acquisition {task_id} is {acquisition.status}; only SUCCESS can be localized"
        )
    measurements = list(
        session.scalars(select(Measurement).where(Measurement.task_id == task_id)).all()
    )
    receivers = {
        s.id: Receiver(id=s.id, latitude=s.latitude, longitude=s.longitude, altitude_m=s.altitude_m)
        for s in session.scalars(
            select(WebSDRStation).where(WebSDRStation.id.in_([m.websdr_id for m in measurements]))
        ).all()
    }
    calibration, model_id = active_calibration(session, settings)
    skipped: list[str] = []
    try:
        # The lags are most of a localization's time: a power-only fix does not need them.
        pairs = (
            []
            if method == "rss"
            else tdoa_observations(store, measurements, receivers, settings, skipped)
        )
        powers, power_excluded = select_power_scales(power_observations(measurements), calibration)
        power_excluded = {**not_heard(measurements), **power_excluded}
        result: LocalizationResult = localize(
            list(receivers.values()),
            powers,
            pairs,
            calibration,
            method=method,  # type: ignore[arg-type]
            frequency_hz=acquisition.frequency_mhz * 1e6,
        )
    except Exception:
        metrics.observe_localization(method, "error", time.perf_counter() - started)
        raise
    metrics.observe_localization(
        result.method or method, result.status, time.perf_counter() - started
    )
    detail = {
        "calibration_version": result.calibration_version,
        "propagation_model": result.propagation_model,
        "altitude_m": result.altitude_m,
        "diagnostics": result.diagnostics,
        "inputs": localization_inputs(result, measurements, power_excluded),
        "latency_ms": round(1000 * (time.perf_counter() - started), 1),
        "tdoa_pairs_skipped": skipped,
    }
    message = result.message
    if skipped:
        message = "; ".join(
            [m for m in (message, "TDOA pairs left out: " + "; ".join(skipped)) if m]
        )
    localization = Localization(
        task_id=task_id,
        status=result.status,
        method=result.method,
        latitude=result.latitude,
        longitude=result.longitude,
        semi_major_m=result.ellipse.semi_major_m if result.ellipse else None,
        semi_minor_m=result.ellipse.semi_minor_m if result.ellipse else None,
        orientation_deg=result.ellipse.orientation_deg if result.ellipse else None,
        gdop=result.gdop,
        receivers_used=result.n_receivers_used,
        residuals={"items": [r.model_dump(mode="json") for r in result.residuals]},
        surface_geojson=result.surface_geojson,
        detail=json.loads(json.dumps(detail, default=str)),
        model_id=model_id,
        message=message or None,
    )
    repository.replace(session, localization)
    return localization
