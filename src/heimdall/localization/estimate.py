"""The localization entry point: receivers and observations in, position with uncertainty out.

``localize`` picks the usable models, builds one joint objective (see ``fusion``),
searches a coarse grid over the network's region, refines the best grid peaks with
robust least squares, and reports the fix with its 95 % ellipse, GDOP, per-receiver
residuals and the likelihood surface. When the data cannot support a fix it returns a
result with ``status="insufficient_receivers"`` instead of a guess.

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
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.localization.calibration import Calibration
from heimdall.localization.fusion import (
    Grid,
    Problem,
    RssBlock,
    TdoaBlock,
    gaussian_grid_log_likelihood,
    grid_log_likelihood,
    leave_one_out_chi_square,
    normalised_residuals,
    power_exclusion_chi_square_drops,
    residual_jacobian,
    search_margin_m,
)
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.horizon import HorizonLoss, radio_horizon_m
from heimdall.localization.propagation import (
    PropagationChoice,
    PropagationModelName,
    band_of,
    pair_sigmas_from_timing_m,
    propagation_model_for,
    receiver_timing_sigmas_s,
    tdoa_range_scale,
    timing_sigma_s,
)
from heimdall.localization.refinement import Solution, grid_peaks, initial_parameters, refine
from heimdall.localization.tdoa import pair_variance_scale
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

Method = Literal["rss", "tdoa", "fused"]

MIN_RSS_RECEIVERS = 3
MIN_TDOA_RECEIVERS = 3
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


class Receiver(BaseModel):
    """A receiver site; ``altitude_m`` is taken as the height above the WGS84 ellipsoid."""

    model_config = ConfigDict(frozen=True)

    id: str
    latitude: float = Field(ge=-90.0, le=90.0)
    longitude: float = Field(ge=-180.0, le=180.0)
    altitude_m: float = 0.0


class PowerObservation(BaseModel):
    """A received power at one receiver; ``sigma_db`` is the measurement's own error."""

    model_config = ConfigDict(frozen=True)

    receiver_id: str
    power: float
    unit: Literal["dBm", "dBFS"] = "dBm"
    sigma_db: float | None = Field(default=None, ge=0.0)


class NotHeardObservation(BaseModel):
    """A receiver that did not hear the transmitter: its power was not above ``ceiling_dbm``.

    A one-sided (censored) reading on the network's dBm scale: the fit pays only where the
    source it proposes would have been heard there (``rss.ceiling_excesses``). It is used
    with power readings only, is no degree of freedom and never an outlier.
    """

    model_config = ConfigDict(frozen=True)

    receiver_id: str
    ceiling_dbm: float


class TdoaObservation(BaseModel):
    """``time_difference_s = arrival at receiver_i - arrival at receiver_j``.

    ``sigma_s`` is the measurement's own error (the correlation's); the receivers' clock
    errors are the calibration's ``timing_sigma_s`` and are added by ``localize``.
    """

    model_config = ConfigDict(frozen=True)

    receiver_i: str
    receiver_j: str
    time_difference_s: float
    sigma_s: float = Field(gt=0.0)
    quality: float = Field(default=1.0, ge=0.0, le=1.0)


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


@lru_cache(maxsize=32)
def _frame_for(sites: tuple[tuple[float, float, float], ...]) -> LocalFrame:
    # Building PROJ pipelines costs milliseconds; the receiver set rarely changes.
    latitudes, longitudes, altitudes = zip(*sites, strict=True)
    return LocalFrame.around(latitudes, longitudes, altitudes)


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
    dropped: list[str] = []

    power_by_id: dict[str, PowerObservation] = {}
    for observation in power_observations:
        if observation.receiver_id in by_id and np.isfinite(observation.power):
            power_by_id[observation.receiver_id] = observation
        else:
            dropped.append(f"power:{observation.receiver_id}")
    tdoa_kept: list[TdoaObservation] = []
    for pair in tdoa_observations:
        known = pair.receiver_i in by_id and pair.receiver_j in by_id
        informative = pair.sigma_s <= max_tdoa_sigma_s and pair.quality >= min_tdoa_quality
        if known and informative and pair.receiver_i != pair.receiver_j:
            tdoa_kept.append(pair)
        else:
            dropped.append(f"tdoa:{pair.receiver_i}-{pair.receiver_j}")
    tdoa_receiver_ids = sorted({r for p in tdoa_kept for r in (p.receiver_i, p.receiver_j)})
    ceiling_by_id = {
        o.receiver_id: o
        for o in not_heard
        if o.receiver_id in by_id
        and o.receiver_id not in power_by_id
        and np.isfinite(o.ceiling_dbm)
    }

    counts: dict[str, Any] = {
        "rss_receivers": len(power_by_id),
        "not_heard_receivers": len(ceiling_by_id),
        "tdoa_receivers": len(tdoa_receiver_ids),
        "tdoa_pairs": len(tdoa_kept),
        "dropped_observations": dropped,
        "propagation_model": model,
        "band": band_of(frequency_hz),
    }
    rss_usable = len(power_by_id) >= MIN_RSS_RECEIVERS
    tdoa_alone_usable = len(tdoa_receiver_ids) >= MIN_TDOA_RECEIVERS
    fused_usable = rss_usable and len(tdoa_kept) > 0
    chosen: Method
    if method == "auto":
        if fused_usable:
            chosen = "fused"
        elif rss_usable:
            chosen = "rss"
        elif tdoa_alone_usable:
            chosen = "tdoa"
        else:
            return _insufficient(
                f"need >= {MIN_RSS_RECEIVERS} receivers with power or >= {MIN_TDOA_RECEIVERS} "
                f"with GPS-timed TDOA; have {len(power_by_id)} and {len(tdoa_receiver_ids)}",
                None,
                calibration,
                counts,
            )
    else:
        chosen = method
        usable = {"rss": rss_usable, "tdoa": tdoa_alone_usable, "fused": fused_usable}[method]
        if not usable:
            return _insufficient(
                f"method {method!r} needs more receivers: {len(power_by_id)} with power, "
                f"{len(tdoa_receiver_ids)} in informative TDOA pairs",
                chosen,
                calibration,
                counts,
            )

    use_rss = chosen in ("rss", "fused")
    use_tdoa = chosen in ("tdoa", "fused")
    used_ids = sorted(set(power_by_id) if use_rss else set())
    if use_tdoa:
        used_ids = sorted(set(used_ids) | set(tdoa_receiver_ids))
    index_of = {receiver_id: k for k, receiver_id in enumerate(used_ids)}
    sites = tuple((by_id[r].latitude, by_id[r].longitude, by_id[r].altitude_m) for r in used_ids)
    frame = _frame_for(sites)
    latitudes = np.array([s[0] for s in sites])
    longitudes = np.array([s[1] for s in sites])
    altitudes_m = np.array([s[2] for s in sites])
    receivers_enu_m = np.column_stack(frame.geodetic_to_enu(latitudes, longitudes, altitudes_m))
    ceiling_ids = sorted(ceiling_by_id) if use_rss else []
    ceiling_sites = np.array(
        [(by_id[r].latitude, by_id[r].longitude, by_id[r].altitude_m) for r in ceiling_ids]
    ).reshape(-1, 3)
    # After the receivers in use, whose indices the residual report keeps.
    problem_enu_m = np.vstack(
        [receivers_enu_m, np.column_stack(frame.geodetic_to_enu(*ceiling_sites.T))]
    )
    altitude_m = (
        float(np.median(altitudes_m)) if transmitter_altitude_m is None else transmitter_altitude_m
    )

    rss_block = None
    if use_rss:
        rss_ids = sorted(power_by_id)
        observations = [power_by_id[r] for r in rss_ids]
        rss_block = RssBlock(
            receiver_indices=np.array([index_of[r] for r in rss_ids], dtype=np.intp),
            powers_dbm=np.array(
                [
                    o.power if o.unit == "dBm" else calibration.dbfs_to_dbm(o.receiver_id, o.power)
                    for o in observations
                ]
            ),
            sigmas_db=np.array(
                [np.hypot(calibration.shadowing_sigma_db, o.sigma_db or 0.0) for o in observations]
            ),
            gains_db=np.array([calibration.gain_offset_db(r) for r in rss_ids]),
            path_loss_exponent=calibration.path_loss_exponent,
            reference_distance_m=calibration.reference_distance_m,
            ceiling_indices=len(used_ids) + np.arange(len(ceiling_ids), dtype=np.intp),
            ceilings_dbm=np.array([ceiling_by_id[r].ceiling_dbm for r in ceiling_ids]),
            ceiling_sigmas_db=np.full(len(ceiling_ids), calibration.shadowing_sigma_db),
            ceiling_gains_db=np.array([calibration.gain_offset_db(r) for r in ceiling_ids]),
            # A ground wave follows the Earth's curve: no line-of-sight horizon applies.
            horizon=HorizonLoss(
                calibration.beyond_horizon_db, 1e-3 * calibration.beyond_horizon_db_per_km
            )
            if model == "line_of_sight"
            else HorizonLoss(),
            horizons_m=radio_horizon_m(
                altitude_m, np.array([by_id[r].altitude_m for r in rss_ids], dtype=np.float64)
            ),
            ceiling_horizons_m=radio_horizon_m(altitude_m, ceiling_sites[:, 2]),
        )
    tdoa_block = None
    if use_tdoa:
        variance_scale = pair_variance_scale(len(tdoa_kept), len(tdoa_receiver_ids))
        corrected_s = np.array(
            [
                p.time_difference_s
                - calibration.clock_offset_s(p.receiver_i)
                + calibration.clock_offset_s(p.receiver_j)
                for p in tdoa_kept
            ]
        )
        # Ground wave: the paths from the network's centre until there is a fix.
        sigmas_m, receiver_sigmas_m = _tdoa_sigmas_m(
            tdoa_kept,
            np.array([frame.origin_latitude_deg, frame.origin_longitude_deg]),
            lambda receiver_id, path_m: timing_sigma_s(
                calibration, receiver_id, model, frequency_hz, path_m
            ),
            {r: (by_id[r].latitude, by_id[r].longitude) for r in tdoa_receiver_ids},
            variance_scale,
            index_of,
        )
        tdoa_block = TdoaBlock(
            first=np.array([index_of[p.receiver_i] for p in tdoa_kept], dtype=np.intp),
            second=np.array([index_of[p.receiver_j] for p in tdoa_kept], dtype=np.intp),
            range_differences_m=SPEED_OF_LIGHT_M_PER_S * corrected_s,
            sigmas_m=sigmas_m,
            range_scale=tdoa_range_scale(model, frequency_hz),
            receiver_sigmas_m=receiver_sigmas_m,
        )
    problem = Problem(
        frame,
        problem_enu_m,
        altitude_m,
        rss_block,
        tdoa_block,
        surface_paths=model == "ground_wave",
        receivers_lat_lon_deg=np.vstack(
            [np.column_stack([latitudes, longitudes]), ceiling_sites[:, :2]]
        ),
    )

    receivers_x_m, receivers_y_m = frame.geodetic_to_plane(latitudes, longitudes)
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
        if drops[worst] > _OUTLIER_CHI2_DROP and len(power_by_id) > MIN_RSS_RECEIVERS + 1:
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
    log_likelihood = grid_log_likelihood(problem, grid)
    peaks = grid_peaks(
        log_likelihood,
        grid,
        max_peaks=3,
        min_relative_likelihood=np.exp(-_POWER_PEAK_WINDOW) if tdoa_block is None else 1e-6,
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
    best = solutions[0]
    if tdoa_block is not None and model == "ground_wave":
        # An uncalibrated receiver's ground-wave sigma grows with its path: weigh the
        # pairs again with the paths from the fix, and refine from there.
        fix_lat, fix_lon = frame.plane_to_geodetic(best.parameters[0], best.parameters[1])
        sigmas_m, receiver_sigmas_m = _tdoa_sigmas_m(
            tdoa_kept,
            np.array([float(fix_lat), float(fix_lon)]),
            lambda receiver_id, path_m: timing_sigma_s(
                calibration, receiver_id, model, frequency_hz, path_m
            ),
            {r: (by_id[r].latitude, by_id[r].longitude) for r in tdoa_receiver_ids},
            pair_variance_scale(len(tdoa_kept), len(tdoa_receiver_ids)),
            index_of,
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

    if tdoa_block is None:
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

    x_m, y_m = float(best.parameters[0]), float(best.parameters[1])
    latitude, longitude = frame.plane_to_geodetic(x_m, y_m)
    # Reported in local east/north at the fix (true north), wherever it is.
    covariance_m2 = plane_to_true_north(covariance_m2, frame.true_north_azimuth_deg(x_m, y_m))
    ellipse = confidence_ellipse(covariance_m2)
    transmitter_enu_m = frame.plane_to_enu(x_m, y_m, altitude_m)
    gdop = horizontal_dilution_of_precision(transmitter_enu_m[:2], receivers_enu_m[:, :2])
    diagnostics = {
        **counts,
        "chi_square": chi_square,
        "degrees_of_freedom": dof,
        "covariance_inflation": inflation,
        "ambiguous_solutions": len(rivals),
        "rival_solutions": _rival_report(frame, best, rivals),
        "grid_cell_m": grid.cell_size_m,
        "grid_shape": list(log_likelihood.shape),
        "source_power_dbm": float(best.parameters[2]) if use_rss else None,
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
        residuals=_residual_report(problem, used_ids, z),
        surface_geojson=likelihood_surface_geojson(
            frame, grid.x_m, grid.y_m, log_likelihood, surface_threshold
        ),
        n_receivers_used=len(used_ids),
        calibration_version=calibration.version,
        propagation_model=model,
        diagnostics=diagnostics,
    )
    return result


def _tdoa_sigmas_m(
    pairs: list[TdoaObservation],
    fix_lat_lon_deg: np.ndarray,
    receiver_timing_sigma_s: Callable[[str, float], float],
    sites: dict[str, tuple[float, float]],
    variance_scale: float,
    index_of: dict[str, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's range sigma (m), and each receiver's timing sigma (m) by its index in
    the problem (0 for a receiver without pairs): the part its pairs share, as the
    calibration's timing fit models it (``tdoa.pair_whitening``)."""
    timing_s = receiver_timing_sigmas_s(fix_lat_lon_deg, receiver_timing_sigma_s, sites)
    receiver_sigmas_m = np.zeros(len(index_of))
    for receiver_id, sigma_s in timing_s.items():
        receiver_sigmas_m[index_of[receiver_id]] = (
            SPEED_OF_LIGHT_M_PER_S * np.sqrt(variance_scale) * sigma_s
        )
    return pair_sigmas_from_timing_m(pairs, timing_s, variance_scale), receiver_sigmas_m


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
