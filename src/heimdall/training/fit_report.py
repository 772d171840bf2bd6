"""The calibration fit's JSON-safe report: estimates with intervals, counts, residuals, why.

Shape (every number a plain float, rounded):

* ``gauge``: how the common constant of gains and biases was fixed;
* ``parameters``: path-loss exponent, reference loss, shadowing sigma, each
  ``{"value", "se", "ci"}`` (or the prior's value with ``"source": "prior"`` and why);
* ``receivers``: per receiver id: gain, clock offset and timing sigma with intervals
  (and ``timing_sigma_used_ns``, what the calibration stores: the sigma combined with
  the fitted offset's standard error; likewise ``shadowing_sigma_used_db``),
  ``power_sessions`` / ``timing_sessions`` (sessions that contributed), status
  ``"fitted"`` or ``"prior"`` per part with the reason, residual summaries;
* ``kept_at_prior``: the receivers (and parts) that kept the prior's values, and why;
* ``sessions``: per session: site, power residuals (dB) and weights per receiver,
  TDOA residuals (ns, after the fitted biases) per pair, the session weights and
  chi-squares; ``outlier_sessions``: those down-weighted below one half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.localization.calibration import Calibration
from heimdall.training.fit_data import FitOptions, KnownSourceSession
from heimdall.training.power_fit import PowerData, PowerFit
from heimdall.training.robust import interval
from heimdall.training.timing_fit import TimingData, TimingFit

GAUGE = (
    "gains and clock biases are identifiable only up to a common constant: both have "
    "mean zero over the receivers fitted in this run (reference_loss_db is relative to "
    "that mean gain); only differences between receivers are physical"
)
_OUTLIER_WEIGHT = 0.5


@dataclass(frozen=True)
class PowerPart:
    fit: PowerFit | None
    data: PowerData | None
    problem: str
    sessions: dict[str, int]  # receiver id -> sessions with a usable reading


@dataclass(frozen=True)
class TimingPart:
    fit: TimingFit | None
    data: TimingData | None
    problem: str
    sessions: dict[str, int]  # receiver id -> sessions with an informative pair


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _receiver_report(
    receiver_id: str,
    prior: Calibration,
    calibration: Calibration,
    options: FitOptions,
    power: PowerPart,
    timing: TimingPart,
) -> dict[str, Any]:
    minimum = options.min_sessions_per_receiver
    entry: dict[str, Any] = {
        "power_sessions": power.sessions.get(receiver_id, 0),
        "timing_sessions": timing.sessions.get(receiver_id, 0),
    }
    power_ids = power.data.receiver_ids if power.fit is not None and power.data else ()
    if receiver_id in power_ids and power.fit is not None and power.data is not None:
        k = power_ids.index(receiver_id)
        rows = power.data.receiver == k
        residuals = power.fit.residuals_db[rows]
        entry["gain_offset_db"] = interval(
            power.fit.gains_db[k], power.fit.gain_se_db[k], options.confidence
        ) | {"source": "fit"}
        entry["power_residual_median_db"] = _r(np.median(residuals), 3)
        entry["power_readings_used"] = int(np.sum(power.fit.observation_weights[rows] > 0))
    else:
        reason = power.problem or (
            f"power readings in {entry['power_sessions']} session(s), fewer than {minimum}"
        )
        entry["gain_offset_db"] = {
            "value": _r(prior.gain_offset_db(receiver_id)),
            "source": "prior",
            "reason": reason,
        }
    timing_ids = timing.data.receiver_ids if timing.fit is not None and timing.data else ()
    if receiver_id in timing_ids and timing.fit is not None and timing.data is not None:
        k = timing_ids.index(receiver_id)
        entry["clock_offset_ns"] = interval(
            timing.fit.biases_ns[k], timing.fit.bias_se_ns[k], options.confidence
        ) | {"source": "fit"}
        sigma: dict[str, Any] = interval(
            timing.fit.sigmas_ns[k], timing.fit.sigma_log_se[k], options.confidence, log_scale=True
        )
        if timing.fit.at_floor[k]:
            sigma["floor_ns"] = options.min_timing_sigma_ns
            sigma["note"] = "at the floor: the data show no timing error above it"
        entry["timing_sigma_ns"] = sigma | {"source": "fit"}
        entry["timing_sigma_used_ns"] = _r(calibration.timing_sigmas_ns[receiver_id], 3)
    else:
        reason = timing.problem or (
            f"informative TDOA pairs in {entry['timing_sessions']} session(s), fewer than "
            f"{minimum}, or not connected by pairs to the fitted receivers"
        )
        entry["clock_offset_ns"] = {
            "value": _r(prior.clock_offsets_ns.get(receiver_id, 0.0)),
            "source": "prior",
            "reason": reason,
        }
        entry["timing_sigma_ns"] = {
            "value": _r(1e9 * prior.timing_sigma_s(receiver_id)),
            "source": "prior",
            "reason": reason,
        }
    return entry


def _global_parameters(
    prior: Calibration, calibration: Calibration, options: FitOptions, power: PowerPart
) -> dict[str, Any]:
    fit = power.fit
    if fit is None:
        reason = power.problem
        return {
            name: {"value": value, "source": "prior", "reason": reason}
            for name, value in (
                ("path_loss_exponent", prior.path_loss_exponent),
                ("shadowing_sigma_db", prior.shadowing_sigma_db),
                ("reference_loss_db", prior.reference_loss_db),
            )
        } | {"reference_distance_m": prior.reference_distance_m}
    parameters: dict[str, Any] = {
        "path_loss_exponent": interval(
            fit.path_loss_exponent, fit.path_loss_exponent_se, options.confidence
        )
        | {"source": "fit"},
        "shadowing_sigma_db": interval(
            fit.shadowing_sigma_db, fit.shadowing_log_se, options.confidence, log_scale=True
        )
        | {"source": "fit", "dof": _r(fit.dof, 1)},
        # What localize gets: the shadowing and the fitted gains' own error combined.
        "shadowing_sigma_used_db": _r(calibration.shadowing_sigma_db, 4),
        "reference_distance_m": prior.reference_distance_m,
    }
    if fit.reference_loss_db is not None and fit.reference_loss_se_db is not None:
        parameters["reference_loss_db"] = interval(
            fit.reference_loss_db, fit.reference_loss_se_db, options.confidence
        ) | {"source": "fit"}
    else:
        parameters["reference_loss_db"] = {
            "value": prior.reference_loss_db,
            "source": "prior",
            "reason": "no session with a known EIRP: the reference loss is not identifiable",
        }
    # Loss past the radio horizon: what the fit kept (0 = a term left out as not
    # significant, or no links past the horizon) and, for a kept term, its error.
    step_se, slope_se = fit.beyond_horizon_se or (0.0, 0.0)
    parameters["beyond_horizon_db"] = {
        "value": _r(calibration.beyond_horizon_db, 3),
        "se": _r(step_se, 3),
    }
    parameters["beyond_horizon_db_per_km"] = {
        "value": _r(calibration.beyond_horizon_db_per_km, 4),
        "se": _r(1e3 * slope_se, 4),
    }
    return parameters


def _session_reports(
    sessions: Sequence[KnownSourceSession],
    site_keys: list[str],
    power: PowerPart,
    timing: TimingPart,
) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = [
        {"task_id": s.task_id, "site": key} for s, key in zip(sessions, site_keys, strict=True)
    ]
    if power.fit is not None and power.data is not None:
        fit, data = power.fit, power.data
        for row in range(len(data.session)):
            entry = reports[int(data.session[row])].setdefault(
                "power", {"residuals_db": {}, "weights": {}}
            )
            receiver_id = data.receiver_ids[int(data.receiver[row])]
            entry["residuals_db"][receiver_id] = _r(fit.residuals_db[row], 2)
            entry["weights"][receiver_id] = _r(fit.observation_weights[row], 3)
        for s, report in enumerate(reports):
            if "power" in report:
                report["power"] |= {
                    "session_weight": _r(fit.session_weights[s], 3),
                    "chi_square": _r(fit.session_chi_square[s], 2),
                    "dof": _r(fit.session_dof[s], 2),
                }
    if timing.fit is not None and timing.data is not None:
        fit_t, data_t = timing.fit, timing.data
        for row in range(len(data_t.session)):
            entry = reports[int(data_t.session[row])].setdefault(
                "timing", {"residuals_ns": {}, "excluded_pairs": []}
            )
            name = (
                f"{data_t.receiver_ids[int(data_t.first[row])]}-"
                f"{data_t.receiver_ids[int(data_t.second[row])]}"
            )
            entry["residuals_ns"][name] = _r(fit_t.pair_residuals_ns[row], 1)
            if not fit_t.pair_used[row]:
                entry["excluded_pairs"].append(name)
        for s, report in enumerate(reports):
            if "timing" in report:
                report["timing"] |= {
                    "session_weight": _r(fit_t.session_weights[s], 3),
                    "chi_square": _r(fit_t.session_chi_square[s], 2),
                    "dof": _r(fit_t.session_dof[s], 1),
                }
    return reports


def build_report(
    sessions: Sequence[KnownSourceSession],
    site_keys: list[str],
    prior: Calibration,
    options: FitOptions,
    calibration: Calibration,
    power: PowerPart,
    timing: TimingPart,
) -> dict[str, Any]:
    """The fit's report (see the module docstring)."""
    receiver_ids = sorted(
        {r.id for s in sessions for r in s.receivers} | set(power.sessions) | set(timing.sessions)
    )
    receivers = {
        r: _receiver_report(r, prior, calibration, options, power, timing) for r in receiver_ids
    }
    kept = []
    for receiver_id, entry in receivers.items():
        parts = [
            name
            for name in ("gain_offset_db", "clock_offset_ns", "timing_sigma_ns")
            if entry[name]["source"] == "prior"
        ]
        if parts:
            kept.append(
                {
                    "receiver_id": receiver_id,
                    "parameters": parts,
                    "reasons": sorted({entry[name]["reason"] for name in parts}),
                }
            )
    session_reports = _session_reports(sessions, site_keys, power, timing)
    outliers = sorted(
        report["task_id"]
        for report in session_reports
        if any(
            report.get(part, {}).get("session_weight", 1.0) < _OUTLIER_WEIGHT
            for part in ("power", "timing")
        )
        or report.get("timing", {}).get("excluded_pairs")
    )
    return {
        "version": calibration.version,
        "prior_version": prior.version,
        "gauge": GAUGE,
        "sessions_total": len(sessions),
        "sites": len(set(site_keys)),
        "sessions_used": {
            "power": int(np.unique(power.data.session).size) if power.fit and power.data else 0,
            "timing": int(np.unique(timing.data.session).size) if timing.fit and timing.data else 0,
        },
        "parameters": _global_parameters(prior, calibration, options, power),
        "default_timing_sigma_ns": {
            "value": prior.default_timing_sigma_ns,
            "source": "prior",
            "reason": "serves only receivers without fitted sigmas, whose clocks the fit never saw",
        },
        "receivers": receivers,
        "kept_at_prior": kept,
        "outlier_sessions": outliers,
        "sessions": session_reports,
        "options": {
            "min_sessions_per_receiver": options.min_sessions_per_receiver,
            "same_site_m": options.same_site_m,
            "max_pair_sigma_s": options.max_pair_sigma_s,
            "min_timing_sigma_ns": options.min_timing_sigma_ns,
            "min_shadowing_sigma_db": options.min_shadowing_sigma_db,
            "confidence": options.confidence,
        },
    }
