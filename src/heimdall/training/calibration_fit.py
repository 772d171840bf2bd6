"""Fit the localization calibration from approved sessions of known sources (pure).

Numpy in, numpy out; no database, no storage. ``fit_calibration`` turns sessions into
the rows of two independent fits and assembles a ``Calibration`` with a JSON-safe
report:

* power (``power_fit``): per-receiver gain offsets, the path-loss exponent, the
  reference loss (only when some session's EIRP is known) and the shadowing sigma;
* timing (``timing_fit``): per-receiver clock bias (``clock_offsets_ns``) and timing
  sigma (``timing_sigmas_ns``).

Gauge: gains and biases are identifiable only up to a common constant; both are fitted
with mean zero over the receivers they were fitted for (``reference_loss_db`` is then
the loss relative to that mean gain). A receiver in fewer than
``min_sessions_per_receiver`` sessions keeps the prior's values; so does one whose TDOA
pairs do not connect it to the others. ``default_timing_sigma_ns``,
``reference_distance_m`` and ``full_scale_dbm`` are the prior's: a network default
timing sigma would only serve receivers the fit had no data for, whose clocks it knows
nothing about.

``cross_validate`` (held-out metrics, folds by site) lives here too; evaluation and the
activation rule are in ``training.evaluation``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.localization.calibration import Calibration
from heimdall.localization.horizon import (
    HORIZON_FIT_TRANSITION_M,
    horizon_features,
    radio_horizon_m,
)
from heimdall.localization.rss import path_loss_db
from heimdall.training.evaluation import (
    compare_calibrations,
    evaluate_calibration,
    merge_evaluations,
)
from heimdall.training.fit_data import (
    CalibrationFit,
    FitOptions,
    KnownSourceSession,
    NotEnoughData,
    receiver_ranges_m,
    site_keys,
    stable_fold,
)
from heimdall.training.fit_report import PowerPart, TimingPart, build_report
from heimdall.training.power_fit import PowerData, PowerFit, fit_power
from heimdall.training.timing_fit import TimingData, TimingFit, fit_timing

__all__ = [
    "CalibrationFit",
    "FitOptions",
    "KnownSourceSession",
    "NotEnoughData",
    "compare_calibrations",
    "cross_validate",
    "evaluate_calibration",
    "fit_calibration",
]

_PATH_LOSS_EXPONENT_RANGE = (0.51, 8.0)  # what Calibration accepts
#: The horizon loss's step and slope are fitted only from this many readings past the
#: horizon (and as many within it): fewer cannot separate them from the exponent.
MIN_BEYOND_HORIZON_READINGS = 10
#: A horizon term is kept when its estimate is at least this many standard errors above
#: zero: diffraction only adds loss, and a term the data cannot tell from zero would only
#: bend the model (a clean-world fit found a spurious 3 dB step).
MIN_HORIZON_TERM_Z = 3.0


def _select_receivers(
    rows: list[tuple[int, str]], min_sessions: int, min_rows_per_session: dict[int, int]
) -> tuple[set[str], set[int], dict[str, int]]:
    """Receivers seen in enough sessions, and sessions left with enough of their readings.

    Dropping a receiver can leave a session short, which can drop another receiver
    below the minimum: repeat until nothing changes.
    """
    receivers = {r for _, r in rows}
    sessions = {s for s, _ in rows}
    while True:
        per_receiver: dict[str, set[int]] = defaultdict(set)
        per_session: dict[int, int] = defaultdict(int)
        for s, r in rows:
            if r in receivers and s in sessions:
                per_receiver[r].add(s)
                per_session[s] += 1
        kept_receivers = {r for r in receivers if len(per_receiver[r]) >= min_sessions}
        kept_sessions = {s for s in sessions if per_session[s] >= min_rows_per_session[s]}
        if kept_receivers == receivers and kept_sessions == sessions:
            return receivers, sessions, {r: len(v) for r, v in per_receiver.items()}
        receivers, sessions = kept_receivers, kept_sessions


def _power_rows(
    sessions: Sequence[KnownSourceSession], prior: Calibration, ranges: list[dict[str, float]]
) -> list[tuple[int, str, float, float, float]]:
    """(session, receiver, power dBm, measurement sigma dB, distance m) of every usable reading."""
    rows = []
    for index, session in enumerate(sessions):
        seen: set[str] = set()
        for observation in session.powers:
            receiver_id = observation.receiver_id
            if receiver_id not in ranges[index] or receiver_id in seen:
                continue
            power = (
                observation.power
                if observation.unit == "dBm"
                else prior.dbfs_to_dbm(receiver_id, observation.power)
            )
            if np.isfinite(power):
                seen.add(receiver_id)
                rows.append(
                    (
                        index,
                        receiver_id,
                        power,
                        observation.sigma_db or 0.0,
                        ranges[index][receiver_id],
                    )
                )
    return rows


def _fit_power_with_horizon(
    data: PowerData, *, start_sigma_db: float, min_sigma_db: float
) -> PowerFit:
    """``fit_power`` with the horizon terms (step, slope) that are positive and significant.

    The least significant term below ``MIN_HORIZON_TERM_Z`` leaves the model and the rest
    is refitted, until every term left passes (or none is left).
    """
    features = data.horizon_features
    terms: tuple[int, ...] = (0, 1) if features is not None else ()
    while True:
        trial = dataclasses.replace(
            data,
            horizon_features=None if features is None or not terms else features[:, terms],
            horizon_terms=terms,
        )
        fit = fit_power(trial, start_sigma_db=start_sigma_db, min_sigma_db=min_sigma_db)
        if not terms or fit.beyond_horizon is None or fit.beyond_horizon_se is None:
            return fit
        z = [fit.beyond_horizon[t] / max(fit.beyond_horizon_se[t], 1e-12) for t in terms]
        weakest = int(np.argmin(z))
        if z[weakest] >= MIN_HORIZON_TERM_Z:
            return fit
        terms = tuple(t for k, t in enumerate(terms) if k != weakest)


def _horizon_features(
    sessions: Sequence[KnownSourceSession], rows: list[tuple[int, str, float, float, float]]
) -> np.ndarray | None:
    """Each reading's horizon features (``localization.horizon``), from the known source's
    height and the receiver's registered one; None with too few readings on either side."""
    heights_m = [{r.id: r.altitude_m for r in session.receivers} for session in sessions]
    horizons_m = np.array(
        [
            radio_horizon_m(sessions[s].source_altitude_m, np.array([heights_m[s][r]]))[0]
            for s, r, *_ in rows
        ]
    )
    # The known source's height is known: its horizon is sharp (HORIZON_FIT_TRANSITION_M).
    features = horizon_features(
        np.array([row[4] for row in rows]), horizons_m, HORIZON_FIT_TRANSITION_M
    )
    beyond = int(np.count_nonzero(features[:, 0] > 0.5))
    if min(beyond, len(rows) - beyond) < MIN_BEYOND_HORIZON_READINGS:
        return None
    return np.asarray(features, dtype=np.float64)


def _timing_rows(
    sessions: Sequence[KnownSourceSession], options: FitOptions, ranges: list[dict[str, float]]
) -> list[tuple[int, str, str, float, float]]:
    """(session, i, j, residual ns, correlation sigma ns) of every informative pair."""
    rows = []
    for index, session in enumerate(sessions):
        for pair in session.pairs:
            i, j = pair.receiver_i, pair.receiver_j
            if i == j or i not in ranges[index] or j not in ranges[index]:
                continue
            if not (
                np.isfinite(pair.time_difference_s) and pair.sigma_s <= options.max_pair_sigma_s
            ):
                continue
            geometric_s = (ranges[index][i] - ranges[index][j]) / SPEED_OF_LIGHT_M_PER_S
            rows.append(
                (index, i, j, 1e9 * (pair.time_difference_s - geometric_s), 1e9 * pair.sigma_s)
            )
    return rows


def _largest_component(pairs: list[tuple[str, str]]) -> set[str]:
    """Receivers of the largest set connected by pairs (biases across sets are unknowable)."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for i, j in pairs:
        parent[root(i)] = root(j)
    groups: dict[str, set[str]] = defaultdict(set)
    for node in list(parent):
        groups[root(node)].add(node)
    return max(groups.values(), key=lambda g: (len(g), sorted(g)), default=set())


def fit_calibration(
    sessions: Sequence[KnownSourceSession],
    *,
    version: str,
    prior: Calibration,
    options: FitOptions = FitOptions(),
) -> CalibrationFit:
    """Fit gains, exponent, reference loss, shadowing sigma, clock biases and timing sigmas.

    Raises ``NotEnoughData`` when neither the power nor the timing fit has data.
    See the module docstring for the model, the gauge and what keeps the prior's values.
    """
    if not sessions:
        raise NotEnoughData("no sessions of known sources to fit a calibration from")
    ranges = [receiver_ranges_m(s) for s in sessions]
    keys = site_keys(sessions, options.same_site_m)
    site_index = {key: k for k, key in enumerate(sorted(set(keys)))}
    sites = np.array([site_index[key] for key in keys], dtype=np.intp)
    power = _power_part(sessions, ranges, sites, prior, options)
    timing = _timing_part(sessions, ranges, sites, prior, options)
    if power.fit is None and timing.fit is None:
        raise NotEnoughData(
            f"no usable data in {len(sessions)} session(s): power: {power.problem}; "
            f"timing: {timing.problem} (a receiver needs >= "
            f"{options.min_sessions_per_receiver} sessions)"
        )
    calibration = _calibration(version, prior, power, timing)
    report = build_report(sessions, keys, prior, options, calibration, power, timing)
    return CalibrationFit(calibration=calibration, report=report)


def _power_part(
    sessions: Sequence[KnownSourceSession],
    ranges: list[dict[str, float]],
    sites: np.ndarray,
    prior: Calibration,
    options: FitOptions,
) -> PowerPart:
    rows = _power_rows(sessions, prior, ranges)
    needed = {k: 1 if s.source_eirp_dbm is not None else 2 for k, s in enumerate(sessions)}
    receivers, kept_sessions, counts = _select_receivers(
        [(s, r) for s, r, *_ in rows], options.min_sessions_per_receiver, needed
    )
    seen = _sessions_per_receiver([(s, r) for s, r, *_ in rows])
    if not receivers or not kept_sessions:
        return PowerPart(None, None, "no receiver has power readings in enough sessions", seen)
    receiver_ids = tuple(sorted(receivers))
    index_of = {r: k for k, r in enumerate(receiver_ids)}
    used = [row for row in rows if row[1] in index_of and row[0] in kept_sessions]
    data = PowerData(
        session=np.array([row[0] for row in used], dtype=np.intp),
        receiver=np.array([index_of[row[1]] for row in used], dtype=np.intp),
        power_dbm=np.array([row[2] for row in used], dtype=np.float64),
        measurement_sigma_db=np.array([row[3] for row in used], dtype=np.float64),
        log_distance_db=path_loss_db(
            np.array([row[4] for row in used], dtype=np.float64), 1.0, prior.reference_distance_m
        ),
        eirp_dbm=np.array(
            [np.nan if s.source_eirp_dbm is None else s.source_eirp_dbm for s in sessions],
            dtype=np.float64,
        ),
        site=sites,
        receiver_ids=receiver_ids,
        horizon_features=_horizon_features(sessions, used),
    )
    try:
        fit = _fit_power_with_horizon(
            data,
            start_sigma_db=prior.shadowing_sigma_db,
            min_sigma_db=options.min_shadowing_sigma_db,
        )
    except (ValueError, np.linalg.LinAlgError) as error:
        return PowerPart(None, None, f"power fit failed: {error}", seen)
    low, high = _PATH_LOSS_EXPONENT_RANGE
    if not low <= fit.path_loss_exponent <= high:
        problem = (
            f"fitted path-loss exponent {fit.path_loss_exponent:.2f} is outside {low}-{high}: "
            "the sessions' powers do not follow the log-distance model"
        )
        return PowerPart(None, None, problem, seen)
    return PowerPart(fit, data, "", seen | counts)


def _timing_part(
    sessions: Sequence[KnownSourceSession],
    ranges: list[dict[str, float]],
    sites: np.ndarray,
    prior: Calibration,
    options: FitOptions,
) -> TimingPart:
    rows = _timing_rows(sessions, options, ranges)
    membership = [(s, r) for s, i, j, *_ in rows for r in (i, j)]
    seen = _sessions_per_receiver(membership)
    receivers, _, _ = _select_receivers(
        membership, options.min_sessions_per_receiver, defaultdict(lambda: 1)
    )
    usable = [row for row in rows if row[1] in receivers and row[2] in receivers]
    connected = _largest_component([(i, j) for _, i, j, *_ in usable])
    usable = [row for row in usable if row[1] in connected]
    if len(connected) < 2 or not usable:
        problem = "fewer than two receivers share informative TDOA pairs in enough sessions"
        return TimingPart(None, None, problem, seen)
    receiver_ids = tuple(sorted(connected))
    index_of = {r: k for k, r in enumerate(receiver_ids)}
    data = TimingData(
        session=np.array([row[0] for row in usable], dtype=np.intp),
        first=np.array([index_of[row[1]] for row in usable], dtype=np.intp),
        second=np.array([index_of[row[2]] for row in usable], dtype=np.intp),
        residual_ns=np.array([row[3] for row in usable], dtype=np.float64),
        correlation_sigma_ns=np.array([row[4] for row in usable], dtype=np.float64),
        site=sites,
        receiver_ids=receiver_ids,
        sessions=len(sites),
    )
    start_ns = float(np.median([1e9 * prior.timing_sigma_s(r) for r in receiver_ids]))
    try:
        fit = fit_timing(data, start_sigma_ns=start_ns, min_sigma_ns=options.min_timing_sigma_ns)
    except (ValueError, np.linalg.LinAlgError) as error:
        return TimingPart(None, None, f"timing fit failed: {error}", seen)
    members = np.concatenate([data.first, data.second])
    sessions_of = np.concatenate([data.session, data.session])
    used = _sessions_per_receiver(
        [(int(s), receiver_ids[int(r)]) for s, r in zip(sessions_of, members, strict=True)]
    )
    return TimingPart(fit, data, "", seen | used)


def _sessions_per_receiver(rows: list[tuple[int, str]]) -> dict[str, int]:
    sessions: dict[str, set[int]] = defaultdict(set)
    for s, r in rows:
        sessions[r].add(s)
    return {r: len(v) for r, v in sessions.items()}


def predictive_shadowing_sigma_db(fit: PowerFit) -> float:
    """The sigma ``localize`` should use: shadowing plus the fitted gains' own error.

    A reading corrected with a fitted gain is off by the shadowing and by that gain's
    estimation error; one network sigma carries the mean of the latter.
    """
    return float(np.sqrt(fit.shadowing_sigma_db**2 + np.mean(np.square(fit.gain_se_db))))


def predictive_timing_sigmas_ns(fit: TimingFit) -> np.ndarray:
    """Per receiver: its timing sigma combined with its fitted bias's standard error.

    After the fitted clock offset is subtracted, a capture's timestamp is off by the
    receiver's timing error and by the offset's own error, which is the same in every
    capture and so not averaged away by more pairs. Without it the ellipses of fixes
    made with a 40-session fit covered the truth 2-3 % less often than the oracle's.
    """
    return np.sqrt(np.square(fit.sigmas_ns) + np.square(fit.bias_se_ns))


def _calibration(
    version: str, prior: Calibration, power: PowerPart, timing: TimingPart
) -> Calibration:
    """The prior with every fitted value replaced; unfitted receivers keep the prior's."""
    gains = dict(prior.gain_offsets_db)
    clock_offsets = dict(prior.clock_offsets_ns)
    timing_sigmas = dict(prior.timing_sigmas_ns)
    update: dict[str, Any] = {"version": version}
    if power.fit is not None and power.data is not None:
        ids = power.data.receiver_ids
        gains.update({r: float(g) for r, g in zip(ids, power.fit.gains_db, strict=True)})
        update["path_loss_exponent"] = power.fit.path_loss_exponent
        update["shadowing_sigma_db"] = predictive_shadowing_sigma_db(power.fit)
        if power.fit.reference_loss_db is not None:
            update["reference_loss_db"] = power.fit.reference_loss_db
        if power.fit.beyond_horizon is not None:
            # Only positive, significant terms are left in (``_fit_power_with_horizon``).
            step_db, slope_db_per_m = power.fit.beyond_horizon
            update["beyond_horizon_db"] = step_db
            update["beyond_horizon_db_per_km"] = 1e3 * slope_db_per_m
    if timing.fit is not None and timing.data is not None:
        ids = timing.data.receiver_ids
        clock_offsets.update({r: float(b) for r, b in zip(ids, timing.fit.biases_ns, strict=True)})
        timing_sigmas.update(
            {r: float(s) for r, s in zip(ids, predictive_timing_sigmas_ns(timing.fit), strict=True)}
        )
    update |= {
        "gain_offsets_db": gains,
        "clock_offsets_ns": clock_offsets,
        "timing_sigmas_ns": timing_sigmas,
    }
    return Calibration.model_validate(prior.model_dump() | update)


def cross_validate(
    sessions: Sequence[KnownSourceSession],
    *,
    prior: Calibration,
    folds: int = 5,
    options: FitOptions = FitOptions(),
) -> dict[str, Any]:
    """Held-out metrics of the fit: each fold localized with a fit of the other folds.

    Folds are whole sites (``FitOptions.same_site_m``), assigned by a stable hash of the
    site's key: sessions of one known source at one place share its shadowing, and a fit
    that saw one of them would predict the others too well. A fold whose complement
    cannot be fitted is listed in ``failed_folds`` and its sessions are not evaluated.
    The result has ``evaluate_calibration``'s shape plus the fold bookkeeping.
    """
    if folds < 2:
        raise ValueError("cross-validation needs at least two folds")
    if not sessions:
        raise NotEnoughData("no sessions of known sources to cross-validate")
    keys = site_keys(sessions, options.same_site_m)
    fold_of = [stable_fold(key, folds) for key in keys]
    evaluations = []
    failed: list[dict[str, Any]] = []
    sizes = []
    for fold in range(folds):
        held_out = [s for s, f in zip(sessions, fold_of, strict=True) if f == fold]
        training = [s for s, f in zip(sessions, fold_of, strict=True) if f != fold]
        sizes.append(len(held_out))
        if not held_out:
            continue
        try:
            fit = fit_calibration(
                training, version=f"{prior.version}+cv{fold}", prior=prior, options=options
            )
        except NotEnoughData as error:
            failed.append({"fold": fold, "sessions": len(held_out), "reason": str(error)})
            continue
        evaluations.append(evaluate_calibration(held_out, fit.calibration))
    merged = merge_evaluations(evaluations, calibration_version=f"{prior.version}+cv")
    return merged | {
        "folds": folds,
        "fold_sizes": sizes,
        "fold_of": {s.task_id: f for s, f in zip(sessions, fold_of, strict=True)},
        "failed_folds": failed,
    }
