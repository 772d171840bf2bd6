"""The localization entry point: receivers and observations in, position with uncertainty out.

``localize`` picks the usable models and builds one joint objective (``assembly``, the
objective itself in ``fusion``), searches a coarse grid over the network's region,
refines the best grid peaks with robust least squares, and reports the fix with its 95 %
ellipse, GDOP, per-receiver residuals and the likelihood surface. When the data cannot
support a fix it returns a result with ``status="insufficient_receivers"`` instead of a
guess.

Minimum receivers, and why:

* RSS: 3 receivers with a power reading. ``P0`` is unknown, so three readings give two
  independent power ratios for two coordinates: exactly determined, no residual check
  (the ellipse then rests on the calibrated shadowing sigma alone).
* TDOA alone: 3 receivers with GPS time in informative pairs: two hyperbolas. When they
  cross twice both crossings fit exactly; both are kept (the second as a rival, listed
  in ``diagnostics["rival_solutions"]``, and the ellipse widened to cover it). Three
  leave no residual to reveal a wrong sigma, so such an ellipse rests on the pair
  sigmas alone: the correlation's, and each receiver's timing sigma (fitted, or the
  band's floor and delay spread over the path: ``propagation.timing_sigma_s``). Four
  make it overdetermined.
* Fused: the RSS minimum plus at least one informative TDOA pair; even one hyperbola
  sharpens a power-based fix, and the powers resolve a hyperbola's ambiguity.

A TDOA pair whose sigma exceeds ``max_tdoa_sigma_s`` (e.g. a pure carrier, whose
correlation peak is flat) carries no usable timing and is left out, listed in the
diagnostics; it can never make a fix look more certain than the rest of the data.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.localization.assembly import (
    MIN_RSS_RECEIVERS,
    Assembled,
    assemble_problem,
    choose_method,
    select_inputs,
)
from heimdall.localization.calibration import Calibration
from heimdall.localization.fusion import (
    Grid,
    Problem,
    gaussian_grid_log_likelihood,
    grid_log_likelihood,
    leave_one_out_chi_square,
    normalised_residuals,
    power_exclusion_chi_square_drops,
    residual_jacobian,
    search_margin_m,
)
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.observations import (
    Method,
    NotHeardObservation,
    PowerObservation,
    Receiver,
    TdoaObservation,
)
from heimdall.localization.propagation import (
    PropagationChoice,
    PropagationModelName,
    propagation_model_for,
)
from heimdall.localization.refinement import Solution, grid_peaks, initial_parameters, refine
from heimdall.localization.uncertainty import (
    CHI2_2DOF_95,
    confidence_ellipse,
    estimated_scale_inflation,
    grid_spread_covariance,
    horizontal_dilution_of_precision,
    likelihood_surface_geojson,
    loewner_max,
    mixture_covariance,
    plane_to_true_north,
    position_covariance,
)

#: The search region extends beyond the receivers' bounding box by half the network's
#: extent, and by at least this (see ``search_margin_m``).
MIN_GRID_MARGIN_M = 75_000.0
_OUTLIER_CHI2_DROP = 10.83  # chi-square, 1 dof, 99.9 %
#: Power-only fixes refine only the grid peaks whose log-likelihood is within this of the
#: best. The power likelihood is smooth at the grid's scale (cells of a few km, spread of
#: tens of km): on the accuracy benchmark a peak's refined cost stays within ~0.4 of its
#: grid value, so a peak further down than a rival's limit (chi-square 2 dof 95 % / 2)
#: plus a margin can neither win nor be a rival. Most of those would refine onto the best
#: solution anyway, after a walk of 10-30 Newton steps each.
_POWER_PEAK_WINDOW = CHI2_2DOF_95 / 2 + 1.0
#: Refined costs are compared to this many decimals (a likelihood ratio of 1 + 1e-9).
_COST_TIE_DECIMALS = 9

FloatArray = npt.NDArray[np.float64]


class ConfidenceEllipse(BaseModel):
    semi_major_m: float
    semi_minor_m: float
    orientation_deg: float = Field(description="azimuth of the major axis from true north")
    confidence: float = 0.95


class Residual(BaseModel):
    kind: Literal["power", "tdoa"]
    receiver_ids: list[str]
    residual: float = Field(description="observed - predicted, in `unit`")
    unit: Literal["dB", "ns"]
    normalised: float = Field(description="residual / the sigma the fit used")


class LocalizationResult(BaseModel):
    status: Literal["ok", "insufficient_receivers"]
    method: Method | None
    message: str = ""
    latitude: float | None = None
    longitude: float | None = None
    altitude_m: float | None = Field(default=None, description="assumed transmitter height")
    ellipse: ConfidenceEllipse | None = None
    covariance_en_m2: list[list[float]] | None = Field(
        default=None, description="east/north position covariance at the fix, metres"
    )
    gdop: float | None = None
    residuals: list[Residual] = Field(default_factory=list)
    surface_geojson: dict[str, Any] | None = None
    n_receivers_used: int = 0
    calibration_version: str
    propagation_model: PropagationModelName | None = Field(
        default=None,
        description="line_of_sight (VHF and up) or ground_wave (LF/MF/HF): how ranges "
        "and arrival times were modelled",
    )
    diagnostics: dict[str, Any] = Field(default_factory=dict)


def _insufficient(
    message: str, method: Method | None, calibration: Calibration, counts: dict[str, Any]
) -> LocalizationResult:
    return LocalizationResult(
        status="insufficient_receivers",
        method=method,
        message=message,
        calibration_version=calibration.version,
        diagnostics=counts,
    )


def localize(
    receivers: list[Receiver],
    power_observations: list[PowerObservation],
    tdoa_observations: list[TdoaObservation],
    calibration: Calibration | None = None,
    *,
    method: Literal["auto", "rss", "tdoa", "fused"] = "auto",
    transmitter_altitude_m: float | None = None,
    frequency_hz: float | None = None,
    propagation: PropagationChoice = "auto",
    grid_margin_m: float = MIN_GRID_MARGIN_M,
    grid_cells_per_side: int = 64,
    max_tdoa_sigma_s: float = 20e-6,
    min_tdoa_quality: float = 0.0,
    surface_threshold: float = 1e-3,
    exclude_power_outliers: bool = True,
    not_heard: Sequence[NotHeardObservation] = (),
) -> LocalizationResult:
    """Locate one transmitter; see the module docstring for the rules.

    ``transmitter_altitude_m`` defaults to the median height of the receivers in use
    (the estimate is 2-D; the height only enters the slant ranges).

    ``frequency_hz`` picks the propagation model (``propagation``: ground wave below
    30 MHz, line of sight above or when unknown; ``propagation`` forces one) and the
    timing sigma of receivers without a fitted one. ``grid_margin_m`` is the
    search region's smallest margin beyond the receivers (``search_margin_m``).

    ``not_heard``: receivers out of earshot, as ceilings on the power fit (ignored for a
    receiver that also has a power reading, and when there is no power fit). They leave
    the frame, the search region and the receiver count as the readings make them.
    """
    started_s = time.perf_counter()
    calibration = calibration or Calibration()
    model = propagation_model_for(frequency_hz, propagation)
    by_id = {receiver.id: receiver for receiver in receivers}
    inputs = select_inputs(
        by_id,
        power_observations,
        tdoa_observations,
        not_heard,
        max_tdoa_sigma_s=max_tdoa_sigma_s,
        min_tdoa_quality=min_tdoa_quality,
    )
    counts = inputs.counts(model, frequency_hz)
    chosen, insufficient = choose_method(method, inputs)
    if insufficient is not None or chosen is None:
        return _insufficient(insufficient or "", chosen, calibration, counts)

    assembled = assemble_problem(
        by_id, inputs, chosen, calibration, model, frequency_hz, transmitter_altitude_m
    )
    problem = assembled.problem
    frame, altitude_m = problem.frame, problem.transmitter_altitude_m
    rss_block = problem.rss
    used_ids, ceiling_ids = assembled.used_ids, assembled.ceiling_ids
    receivers_x_m, receivers_y_m = assembled.receivers_plane_m
    grid = Grid.covering(
        receivers_x_m,
        receivers_y_m,
        search_margin_m(receivers_x_m, receivers_y_m, grid_margin_m),
        grid_cells_per_side,
    )
    leave_one_out = None
    if exclude_power_outliers and rss_block is not None:
        # Fault detection and exclusion: the robust loss limits an outlier's pull, but a
        # +30 dB reading can still drag a power fix by tens of km. Leave each reading out
        # on the grid; if one is rejected at 99.9 % (chi-square 1 dof), refit without it.
        leave_one_out = leave_one_out_chi_square(problem, grid)
        drops = power_exclusion_chi_square_drops(leave_one_out)
        worst = int(np.argmax(drops))
        if drops[worst] > _OUTLIER_CHI2_DROP and len(inputs.power_by_id) > MIN_RSS_RECEIVERS + 1:
            outlier_id = used_ids[rss_block.receiver_indices[worst]]
            retry = localize(
                receivers,
                [o for o in power_observations if o.receiver_id != outlier_id],
                tdoa_observations,
                calibration,
                method=method,
                transmitter_altitude_m=transmitter_altitude_m,
                frequency_hz=frequency_hz,
                propagation=propagation,
                grid_margin_m=grid_margin_m,
                grid_cells_per_side=grid_cells_per_side,
                max_tdoa_sigma_s=max_tdoa_sigma_s,
                min_tdoa_quality=min_tdoa_quality,
                surface_threshold=surface_threshold,
                exclude_power_outliers=False,
                not_heard=not_heard,
            )
            retry.diagnostics["excluded_power_outliers"] = [outlier_id]
            retry.diagnostics["outlier_chi_square_drop"] = float(drops[worst])
            retry.diagnostics["elapsed_ms"] = 1e3 * (time.perf_counter() - started_s)
            return retry
    problem, log_likelihood, solutions = _solve(problem, grid, assembled, model)
    best = solutions[0]

    fit = _fit_statistics(problem, grid, solutions, leave_one_out)

    x_m, y_m = float(best.parameters[0]), float(best.parameters[1])
    latitude, longitude = frame.plane_to_geodetic(x_m, y_m)
    # Reported in local east/north at the fix (true north), wherever it is.
    covariance_m2 = plane_to_true_north(fit.covariance_m2, frame.true_north_azimuth_deg(x_m, y_m))
    ellipse = confidence_ellipse(covariance_m2)
    transmitter_enu_m = frame.plane_to_enu(x_m, y_m, altitude_m)
    gdop = horizontal_dilution_of_precision(transmitter_enu_m[:2], assembled.receivers_enu_m[:, :2])
    diagnostics = {
        **counts,
        "chi_square": fit.chi_square,
        "degrees_of_freedom": fit.dof,
        "covariance_inflation": fit.inflation,
        "ambiguous_solutions": len(fit.rivals),
        "rival_solutions": _rival_report(frame, best, fit.rivals),
        "grid_cell_m": grid.cell_size_m,
        "grid_shape": list(log_likelihood.shape),
        "source_power_dbm": float(best.parameters[2]) if rss_block is not None else None,
        "not_heard_ceilings": _ceiling_report(problem, ceiling_ids, best),
        "elapsed_ms": 1e3 * (time.perf_counter() - started_s),
    }
    result = LocalizationResult(
        status="ok",
        method=chosen,
        latitude=float(latitude),
        longitude=float(longitude),
        altitude_m=altitude_m,
        ellipse=ConfidenceEllipse(
            semi_major_m=ellipse.semi_major_m,
            semi_minor_m=ellipse.semi_minor_m,
            orientation_deg=ellipse.orientation_deg,
            confidence=ellipse.confidence,
        ),
        covariance_en_m2=covariance_m2.tolist(),
        gdop=gdop if np.isfinite(gdop) else None,
        residuals=_residual_report(problem, used_ids, fit.normalised_residuals),
        surface_geojson=likelihood_surface_geojson(
            frame, grid.x_m, grid.y_m, log_likelihood, surface_threshold
        ),
        n_receivers_used=len(used_ids),
        calibration_version=calibration.version,
        propagation_model=model,
        diagnostics=diagnostics,
    )
    return result


def _solve(
    problem: Problem, grid: Grid, assembled: Assembled, model: PropagationModelName
) -> tuple[Problem, FloatArray, list[Solution]]:
    """The grid's log-likelihood and the distinct refined solutions, best first.

    The best grid peaks are refined (``refinement.refine``). On a ground wave the pairs are
    then weighed again from the fix and everything refined once more: the problem returned
    is the one the solutions minimise.
    """
    log_likelihood = grid_log_likelihood(problem, grid)
    peaks = grid_peaks(
        log_likelihood,
        grid,
        max_peaks=3,
        min_relative_likelihood=np.exp(-_POWER_PEAK_WINDOW) if problem.tdoa is None else 1e-6,
    )
    solutions: list[Solution] = []
    for x, y in peaks:
        solutions.append(refine(problem, initial_parameters(problem, x, y), grid, solutions))
    # Costs equal to rounding (e.g. both mirror solutions of 3 power readings fit
    # exactly) keep the grid's order: which one wins must not hang on the solver's noise.
    solutions = _distinct(
        sorted(solutions, key=lambda s: round(s.robust_cost, _COST_TIE_DECIMALS)),
        grid.cell_size_m,
    )
    tdoa_block = problem.tdoa
    if tdoa_block is not None and assembled.timing is not None and model == "ground_wave":
        # An uncalibrated receiver's ground-wave sigma grows with its path: weigh the
        # pairs again with the paths from the fix, and refine from there.
        best = solutions[0].parameters
        fix_lat, fix_lon = problem.frame.plane_to_geodetic(best[0], best[1])
        sigmas_m, receiver_sigmas_m = assembled.timing.at(
            np.array([float(fix_lat), float(fix_lon)])
        )
        tdoa_block = replace(tdoa_block, sigmas_m=sigmas_m, receiver_sigmas_m=receiver_sigmas_m)
        problem = replace(problem, tdoa=tdoa_block)
        solutions = _distinct(
            sorted(
                [refine(problem, s.parameters, grid) for s in solutions],
                key=lambda s: round(s.robust_cost, _COST_TIE_DECIMALS),
            ),
            grid.cell_size_m,
        )
    return problem, log_likelihood, solutions


@dataclass(frozen=True, slots=True)
class _FitStatistics:
    """The fix's goodness of fit and its position covariance in the map plane."""

    covariance_m2: FloatArray
    normalised_residuals: FloatArray
    chi_square: float
    dof: int
    inflation: float
    #: Other solutions that fit almost as well (the ellipse is widened to cover them).
    rivals: list[Solution]


def _fit_statistics(
    problem: Problem,
    grid: Grid,
    solutions: list[Solution],
    leave_one_out: FloatArray | None,
) -> _FitStatistics:
    """The covariance of the best solution: the local curvature scaled by the residuals'
    own noise estimate, widened over rival solutions; a power-only fix takes the grid's
    second moment instead."""
    best = solutions[0]
    jacobian = residual_jacobian(problem, best.parameters)
    prior_sigma_m = float(max(np.ptp(grid.x_m), np.ptp(grid.y_m)))
    covariance_m2 = position_covariance(jacobian, prior_sigma_m)
    z = normalised_residuals(problem, best.parameters)
    chi_square = float(np.sum(np.square(z)))
    dof = problem.n_observations - problem.n_parameters
    # The scale estimated from the residuals, with its honest (F) quantile.
    scale = max(1.0, chi_square / dof) if dof > 0 else 1.0
    inflation = estimated_scale_inflation(chi_square, dof)
    covariance_m2 = covariance_m2 * inflation

    # Other grid peaks that fit almost as well: widen the ellipse to cover them.
    rivals = [s for s in solutions[1:] if 2 * (s.robust_cost - best.robust_cost) < CHI2_2DOF_95]
    if rivals:
        candidates = [best, *rivals]
        covariance_m2 = loewner_max(
            covariance_m2,
            mixture_covariance(
                np.array([s.parameters[:2] for s in candidates]),
                np.array([covariance_m2] * len(candidates)),
                -np.array([s.robust_cost for s in candidates]),
            ),
        )

    if problem.tdoa is None:
        # Power-only: the grid resolves the likelihood well (cells of a few km against
        # tens of km of spread), so its second moment replaces the local curvature. The
        # likelihood is taken on the noise scale the residuals estimate (tempered by it):
        # a second solution that the model's sigmas alone would reject keeps its share.
        covariance_m2 = (inflation / scale) * grid_spread_covariance(
            grid.x_m,
            grid.y_m,
            gaussian_grid_log_likelihood(problem, grid, leave_one_out) / scale,
            best.parameters[:2],
        )

    return _FitStatistics(covariance_m2, z, chi_square, dof, inflation, rivals)


def _rival_report(
    frame: LocalFrame, best: Solution, rivals: list[Solution]
) -> list[dict[str, float]]:
    """Where the rival solutions are, and how much worse they fit (2 x cost difference)."""
    report = []
    for rival in rivals:
        latitude, longitude = frame.plane_to_geodetic(rival.parameters[0], rival.parameters[1])
        report.append(
            {
                "latitude": float(latitude),
                "longitude": float(longitude),
                "distance_m": float(np.hypot(*(rival.parameters[:2] - best.parameters[:2]))),
                "delta_chi_square": float(2.0 * (rival.robust_cost - best.robust_cost)),
            }
        )
    return report


def _distinct(solutions: list[Solution], min_separation_m: float) -> list[Solution]:
    """Drop refinements that converged onto an already-kept solution."""
    kept: list[Solution] = []
    for solution in solutions:
        if all(
            np.hypot(*(solution.parameters[:2] - other.parameters[:2])) > min_separation_m
            for other in kept
        ):
            kept.append(solution)
    return kept


def _ceiling_report(
    problem: Problem, ceiling_ids: list[str], best: Solution
) -> dict[str, dict[str, float]]:
    """Each not-hearing receiver's ceiling, the fix's predicted power there, the excess."""
    rss = problem.rss
    if rss is None or not ceiling_ids:
        return {}
    excess = normalised_residuals(problem, best.parameters)[
        len(rss.powers_dbm) : len(rss.powers_dbm) + len(ceiling_ids)
    ]
    return {
        receiver_id: {
            "ceiling_dbm": float(ceiling_dbm),
            "excess_sigmas": float(excess_sigmas),
        }
        for receiver_id, ceiling_dbm, excess_sigmas in zip(
            ceiling_ids, rss.ceilings_dbm, excess, strict=True
        )
    }


def _residual_report(problem: Problem, used_ids: list[str], z: np.ndarray) -> list[Residual]:
    residuals: list[Residual] = []
    offset = 0
    if problem.rss is not None:
        for index, sigma_db in zip(
            problem.rss.receiver_indices, problem.rss.sigmas_db, strict=True
        ):
            residuals.append(
                Residual(
                    kind="power",
                    receiver_ids=[used_ids[index]],
                    residual=float(z[offset] * sigma_db),
                    unit="dB",
                    normalised=float(z[offset]),
                )
            )
            offset += 1
        offset += len(problem.rss.ceiling_indices)  # the ceilings: ``_ceiling_report``
    if problem.tdoa is not None:
        tdoa = problem.tdoa
        # Undo the whitening: report each pair's own residual over its own sigma.
        residuals_m = np.linalg.solve(tdoa.whitening_per_m(), z[offset:])
        for first, second, sigma_m, residual_m in zip(
            tdoa.first, tdoa.second, tdoa.sigmas_m, residuals_m, strict=True
        ):
            residuals.append(
                Residual(
                    kind="tdoa",
                    receiver_ids=[used_ids[first], used_ids[second]],
                    residual=float(residual_m / SPEED_OF_LIGHT_M_PER_S * 1e9),
                    unit="ns",
                    normalised=float(residual_m / sigma_m),
                )
            )
    return residuals
