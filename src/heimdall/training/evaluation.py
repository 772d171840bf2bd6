"""How well a calibration localizes known sources, and whether a new fit beats the active one.

``evaluate_calibration`` localizes every session with ``localize`` (methods rss, tdoa
and fused, the transmitter height left to the estimator as in production) and scores
each fix against the known position: the error, and whether the fix's 95 % ellipse
holds the truth. Metrics per method: fixes, median / 68 % / 95 % error, coverage with
its Wilson interval; and the per-session records, so two calibrations can be compared
session by session.

``compare_calibrations`` is the activation rule (``ACTIVATION_RULE``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyproj
from scipy.stats import binom, binomtest

from heimdall.localization.calibration import Calibration
from heimdall.localization.estimate import LocalizationResult, localize
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.uncertainty import CHI2_2DOF_95
from heimdall.training.fit_data import KnownSourceSession

METHODS = ("rss", "tdoa", "fused")
#: The metrics the activation rule compares: power-based and TDOA median errors.
COMPARED_METHODS = ("rss", "tdoa")
#: Fewer sessions located by both calibrations than this: the method is not compared.
MIN_PAIRED_SESSIONS = 5
ACTIVATION_RULE = (
    "per method (rss = power-based, tdoa), over the held-out sessions both calibrations "
    "located: the median of the per-session error ratios candidate/active with its 95 % "
    "sign-test (distribution-free) interval. 'better' if the interval lies below 1, "
    "'worse' if above 1, else 'no significant change'. Without common sessions, the "
    "candidate's median error is compared with the 95 % order-statistic interval of the "
    "active one's median. The candidate beats the active calibration when neither "
    f"method is worse and at least one is better; a method with fewer than "
    f"{MIN_PAIRED_SESSIONS} comparable sessions is not compared."
)
_GEOD = pyproj.Geod(ellps="WGS84")


def truth_in_ellipse(result: LocalizationResult, latitude: float, longitude: float) -> bool:
    """Whether the truth lies inside the fix's 95 % ellipse (Mahalanobis test).

    Done in a plane centred on the truth: its axes differ from the fix's plane by well
    under a degree over the distances involved.
    """
    if result.latitude is None or result.longitude is None or result.covariance_en_m2 is None:
        return False
    frame = LocalFrame(latitude, longitude, 0.0)
    east_m, north_m = frame.geodetic_to_plane(result.latitude, result.longitude)
    offset = np.array([float(east_m), float(north_m)])
    covariance = np.array(result.covariance_en_m2, dtype=np.float64)
    return float(offset @ np.linalg.solve(covariance, offset)) <= CHI2_2DOF_95


def error_m(result: LocalizationResult, latitude: float, longitude: float) -> float:
    """Geodesic distance from the known position to the fix."""
    assert result.latitude is not None and result.longitude is not None
    return float(_GEOD.inv(longitude, latitude, result.longitude, result.latitude)[2])


def wilson_interval(successes: int, trials: int) -> list[float] | None:
    """95 % Wilson score interval of a proportion, or None without trials.

    Example:
        >>> [round(v, 3) for v in wilson_interval(95, 100)]
        [0.888, 0.978]
    """
    if trials == 0:
        return None
    result = binomtest(successes, trials).proportion_ci(method="wilson")
    return [float(result.low), float(result.high)]


def summarise(records: Sequence[dict[str, Any]], method: str) -> dict[str, Any]:
    """Fixes, error percentiles and ellipse coverage of one method over session records."""
    attempted = [r for r in records if method in r["methods"]]
    located = [r["methods"][method] for r in attempted if r["methods"][method]["located"]]
    errors = np.array([m["error_m"] for m in located], dtype=np.float64)
    covered = sum(bool(m["covered"]) for m in located)
    summary: dict[str, Any] = {
        "sessions": len(attempted),
        "located": len(located),
        "median_error_m": None,
        "p68_error_m": None,
        "p95_error_m": None,
        "coverage": None,
        "coverage_ci95": wilson_interval(covered, len(located)),
    }
    if len(located):
        q50, q68, q95 = np.percentile(errors, [50, 68, 95])
        summary |= {
            "median_error_m": round(float(q50), 1),
            "p68_error_m": round(float(q68), 1),
            "p95_error_m": round(float(q95), 1),
            "coverage": round(covered / len(located), 4),
        }
    return summary


def _localize_session(
    session: KnownSourceSession, calibration: Calibration, method: str
) -> dict[str, Any]:
    result = localize(
        list(session.receivers),
        list(session.powers),
        list(session.pairs),
        calibration,
        method=method,  # type: ignore[arg-type]
    )
    if result.status != "ok" or result.latitude is None:
        return {"located": False, "reason": result.message}
    lat, lon = session.source_latitude, session.source_longitude
    return {
        "located": True,
        "error_m": round(error_m(result, lat, lon), 1),
        "covered": truth_in_ellipse(result, lat, lon),
    }


def merge_evaluations(
    evaluations: Iterable[dict[str, Any]], *, calibration_version: str
) -> dict[str, Any]:
    """One evaluation from several (e.g. the folds of a cross-validation)."""
    records = [record for evaluation in evaluations for record in evaluation["sessions"]]
    return _evaluation(records, calibration_version)


def _evaluation(records: list[dict[str, Any]], calibration_version: str) -> dict[str, Any]:
    return {
        "calibration_version": calibration_version,
        "sessions_evaluated": len(records),
        "methods": {method: summarise(records, method) for method in METHODS},
        "sessions": records,
    }


def evaluate_calibration(
    sessions: Sequence[KnownSourceSession], calibration: Calibration
) -> dict[str, Any]:
    """Localize every session with ``calibration``; errors against the known positions.

    The transmitter height is not passed (``localize`` assumes the receivers' median
    height, as in production). ~20-40 ms per session and method.
    """
    records = [
        {
            "task_id": session.task_id,
            "methods": {m: _localize_session(session, calibration, m) for m in METHODS},
        }
        for session in sessions
    ]
    return _evaluation(records, calibration.version)


def _errors_by_session(metrics: dict[str, Any], method: str) -> dict[str, float]:
    errors = {}
    for record in metrics.get("sessions", []):
        outcome = record["methods"].get(method, {})
        if outcome.get("located"):
            errors[record["task_id"]] = float(outcome["error_m"])
    return errors


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Median and its 95 % distribution-free interval from order statistics (sign test):
    ``quantile_interval`` at 0.5.

    Example:
        >>> median_interval(list(range(1, 21)))
        (10.5, 6.0, 15.0)
    """
    return quantile_interval(values, 0.5)


def quantile_interval(
    values: Sequence[float], quantile: float, confidence: float = 0.95
) -> tuple[float, float, float]:
    """The ``quantile`` (0-1) of ``values`` and its distribution-free ``confidence``
    interval from order statistics: [x_(l), x_(u)] with the count of values below the
    true quantile ~ Bin(n, quantile). Assumes independent values; an end the sample is
    too small to bound is the sample's extreme.

    Example:
        >>> [round(v, 2) for v in quantile_interval(list(range(1, 201)), 0.95)]
        [190.05, 184.0, 197.0]
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = len(ordered)
    tail = (1 - confidence) / 2
    # 1-based: P(B <= l - 1) < tail and P(B >= u) <= tail for B ~ Bin(n, quantile).
    lower = int(binom.ppf(tail, n, quantile))
    upper = int(binom.ppf(1 - tail, n, quantile)) + 1
    low = ordered[max(lower, 1) - 1]
    high = ordered[min(upper, n) - 1]
    return float(np.quantile(ordered, quantile)), float(low), float(high)


def _compare_method(
    candidate: dict[str, Any], active: dict[str, Any], method: str
) -> dict[str, Any]:
    cand_errors = _errors_by_session(candidate, method)
    active_errors = _errors_by_session(active, method)
    common = sorted(set(cand_errors) & set(active_errors))
    if len(common) >= MIN_PAIRED_SESSIONS:
        # +1 m on both: a fix exactly on the truth must not divide by zero.
        ratios = [(cand_errors[t] + 1.0) / (active_errors[t] + 1.0) for t in common]
        ratio, low, high = median_interval(ratios)
        verdict = "better" if high < 1.0 else "worse" if low > 1.0 else "no significant change"
        return {
            "paired_sessions": len(common),
            "median_error_ratio": round(ratio, 4),
            "ratio_ci95": [round(low, 4), round(high, 4)],
            "candidate_median_error_m": round(
                float(np.median([cand_errors[t] for t in common])), 1
            ),
            "active_median_error_m": round(float(np.median([active_errors[t] for t in common])), 1),
            "verdict": verdict,
        }
    if len(cand_errors) >= MIN_PAIRED_SESSIONS and len(active_errors) >= MIN_PAIRED_SESSIONS:
        cand_median = float(np.median(list(cand_errors.values())))
        active_median, low, high = median_interval(list(active_errors.values()))
        verdict = (
            "better"
            if cand_median < low
            else "worse"
            if cand_median > high
            else "no significant change"
        )
        return {
            "paired_sessions": 0,
            "candidate_median_error_m": round(cand_median, 1),
            "active_median_error_m": round(active_median, 1),
            "active_median_ci95_m": [round(low, 1), round(high, 1)],
            "verdict": verdict,
        }
    return {
        "paired_sessions": len(common),
        "verdict": "not compared",
        "reason": f"fewer than {MIN_PAIRED_SESSIONS} sessions located by both",
    }


def compare_calibrations(
    candidate_metrics: dict[str, Any], active_metrics: dict[str, Any]
) -> tuple[bool, dict[str, Any]]:
    """Whether the candidate's held-out metrics beat the active calibration's (see the rule).

    Both arguments are ``evaluate_calibration`` / ``cross_validate`` results, ideally over
    the same held-out sessions (then the comparison is paired, session by session).
    """
    per_method = {
        method: _compare_method(candidate_metrics, active_metrics, method)
        for method in COMPARED_METHODS
    }
    verdicts = [entry["verdict"] for entry in per_method.values()]
    beats = "worse" not in verdicts and "better" in verdicts
    summary = {
        method: {
            "candidate": candidate_metrics.get("methods", {}).get(method),
            "active": active_metrics.get("methods", {}).get(method),
        }
        for method in METHODS
    }
    return beats, {
        "beats": beats,
        "rule": ACTIVATION_RULE,
        "candidate_version": candidate_metrics.get("calibration_version"),
        "active_version": active_metrics.get("calibration_version"),
        "methods": per_method,
        "summaries": summary,
    }
