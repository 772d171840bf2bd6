"""From a grid peak to a fix: the refinement of the joint objective (``fusion``).

With TDOA, ``scipy.optimize.least_squares`` fits every parameter (position and, with
power readings, ``P0``) on the soft-L1 loss. A power-only fix is refined in ``(x_m,
y_m)`` alone, ``P0`` taking its own best value at each candidate (``power_cost``; see
``refine`` for why). ``grid_peaks`` gives the starting points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter
from scipy.optimize import OptimizeResult, least_squares, minimize

from heimdall.localization.fusion import (
    FloatArray,
    Grid,
    Problem,
    normalised_residuals,
    ranges_at,
    residual_jacobian,
)
from heimdall.localization.rss import (
    implied_source_powers_dbm,
    robust_source_power_dbm,
    soft_l1,
    soft_l1_source_power_dbm,
)

#: Central differences of this half-step give the map plane's derivative in ENU; their
#: truncation and PROJ's rounding both stay below 1e-9 of it.
_PLANE_STEP_M = 10.0
_PLANE_STEPS_M = _PLANE_STEP_M * np.array(
    [[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]
)
#: Power-only refinement stops once the next Newton step would move the fix by less
#: than this many of its own standard deviations (the Newton decrement sqrt(g^T H^-1 g),
#: the cost's Hessian standing for the information); convergence is quadratic by then.
_NEWTON_TOLERANCE_SIGMAS = 1e-6
_NEWTON_MAX_STEPS = 100


def initial_parameters(problem: Problem, x_m: float, y_m: float) -> FloatArray:
    """Start vector for the refinement: the position and, for RSS, its profiled ``P0``."""
    if problem.rss is None:
        return np.array([x_m, y_m], dtype=np.float64)
    rss = problem.rss
    ranges_m = ranges_at(problem, x_m, y_m)[rss.receiver_indices]
    source_power_dbm = robust_source_power_dbm(
        ranges_m,
        rss.line_of_sight_powers_dbm(ranges_m),
        rss.sigmas_db,
        rss.gains_db,
        rss.path_loss_exponent,
        rss.reference_distance_m,
    )
    return np.array([x_m, y_m, float(source_power_dbm)], dtype=np.float64)


@dataclass(frozen=True)
class PowerCost:
    """A power-only problem's robust cost at one map-plane point, ``P0`` at its best there.

    The cost is ``1/2 sum soft_l1(z^2)``. ``P0`` sits where the cost is stationary in it,
    so the gradient is the cost's partial one, and eliminating ``P0`` from the joint
    Hessian (a Schur complement) gives the profiled cost's exact second derivative. The
    map plane's own curvature (~1e-7 per metre, against ~1e-5 from the ranges) is left
    out of the Hessian only.
    """

    cost: float
    gradient_per_m: FloatArray
    hessian_per_m2: FloatArray
    source_power_dbm: float


def _enu_and_plane_derivative(
    problem: Problem, x_m: float, y_m: float
) -> tuple[FloatArray, FloatArray]:
    """ENU of a candidate ``(3,)`` and its derivative in the map plane ``(3, 2)``.

    ``residual_jacobian`` takes the plane's axes for ENU's, off by ~1e-4 near the network
    and ~3e-3 at 500 km: fine for a covariance, but Newton stops where its gradient
    vanishes, and that approximation would move a power fix by tens of metres. One PROJ
    call evaluates the point and its four neighbours.
    """
    points_enu_m = problem.frame.plane_to_enu(
        x_m + _PLANE_STEPS_M[:, 0], y_m + _PLANE_STEPS_M[:, 1], problem.transmitter_altitude_m
    )
    # Rows 1 and 3 step +x and +y, rows 2 and 4 step back.
    derivative = (points_enu_m[1::2] - points_enu_m[2::2]).T / (2.0 * _PLANE_STEP_M)
    return points_enu_m[0], derivative


def power_cost(
    problem: Problem, x_m: float, y_m: float, source_power_start_dbm: float
) -> PowerCost:
    """Cost, gradient and Hessian at ``(x_m, y_m)`` of a power-only problem (``PowerCost``).

    The cost is written in the slant ranges first, then the chain rule goes through the
    ranges' own derivatives in the map plane. ``source_power_start_dbm`` only seeds the
    search for ``P0`` (a nearby point's answer saves Newton steps).
    """
    rss = problem.rss
    assert rss is not None and problem.tdoa is None
    transmitter_enu_m, plane_derivative = _enu_and_plane_derivative(problem, x_m, y_m)
    if not math.isfinite(transmitter_enu_m.sum() + plane_derivative.sum()):
        # Where PROJ gives up, the trust region shrinks back from an infinite cost.
        return PowerCost(math.inf, np.zeros(2), np.zeros((2, 2)), source_power_start_dbm)
    offsets_m = transmitter_enu_m - problem.receivers_enu_m[rss.receiver_indices]
    ranges_m = np.maximum(np.sqrt(np.einsum("ij,ij->i", offsets_m, offsets_m)), 1e-3)
    implied_dbm = implied_source_powers_dbm(
        ranges_m,
        rss.line_of_sight_powers_dbm(ranges_m),
        rss.gains_db,
        rss.path_loss_exponent,
        rss.reference_distance_m,
    )
    source_power_dbm = soft_l1_source_power_dbm(implied_dbm, rss.sigmas_db, source_power_start_dbm)
    inverse_sigmas = 1.0 / rss.sigmas_db
    z = (implied_dbm - source_power_dbm) * inverse_sigmas
    one_plus_z_squared = 1.0 + np.square(z)
    root = np.sqrt(one_plus_z_squared)
    # sqrt(1 + z^2) - 1 (1/2 soft_l1), its first and second derivatives in z.
    cost = float((root - 1.0).sum())
    influence = z / root
    steepness = 1.0 / (one_plus_z_squared * root)
    # dz/d(range): the path loss is 10 n log10(d / d0) beyond d0 and flat inside it; the
    # horizon loss adds its own slope and bend (zero while the horizon model is off).
    log_slopes = np.where(
        ranges_m > rss.reference_distance_m,
        (10.0 * rss.path_loss_exponent / np.log(10.0)) * inverse_sigmas / ranges_m,
        0.0,
    )
    horizon_slopes_db_per_m, horizon_bends_db_per_m2 = rss.horizon.derivatives(
        ranges_m, rss.horizons_m
    )
    z_slopes = log_slopes + horizon_slopes_db_per_m * inverse_sigmas
    range_slopes = influence * z_slopes  # d(cost)/d(range)
    # d(range_i) = g_i . d(position), g_i the unit vector's image in the map plane.
    range_gradients = (offsets_m / ranges_m[:, np.newaxis]) @ plane_derivative
    # In the ranges the Hessian is diagonal (steepness * slope^2, plus the path loss's
    # own bend: the log term's second derivative is -slope / range, the horizon's its
    # own) until P0, shared by all, is eliminated: minus coupling coupling^T /
    # (d2 cost / dP0^2). Each range bends too, its second derivative being
    # (D^T D - g_i g_i^T) / range_i with D the plane's derivative in ENU (D^T D ~ identity).
    bends = range_slopes / ranges_m
    own_bends = influence * (horizon_bends_db_per_m2 * inverse_sigmas - log_slopes / ranges_m)
    diagonal = steepness * np.square(z_slopes) + own_bends - bends
    coupling = (steepness * z_slopes * inverse_sigmas) @ range_gradients
    hessian = (
        range_gradients.T @ (range_gradients * diagonal[:, np.newaxis])
        - np.outer(coupling, coupling / float(steepness @ np.square(inverse_sigmas)))
        + float(bends.sum()) * (plane_derivative.T @ plane_derivative)
    )
    return PowerCost(cost, range_slopes @ range_gradients, hessian, source_power_dbm)


@dataclass(frozen=True)
class Solution:
    parameters: FloatArray
    robust_cost: float
    #: False when the refinement ran off and ``parameters`` is just its grid peak.
    local_minimum: bool = True


def _newton_power_refinement(
    problem: Problem, start: FloatArray, grid: Grid, refined: Sequence[Solution]
) -> Solution:
    """Trust-region Newton on ``power_cost`` (in grid cells): ``(x_m, y_m, P0_dbm)``.

    A walk that comes within half a cell of a ``refined`` minimum, no lower than it, is
    in its basin (the grid cannot tell the two apart): it stops there and returns that
    minimum instead of retracing its last steps.
    """
    cell_m = grid.cell_size_m
    reach_cells = max(np.ptp(grid.x_m), np.ptp(grid.y_m)) / cell_m
    minima = [solution for solution in refined if solution.local_minimum]
    merged_into: list[Solution] = []
    last: dict[tuple[float, float], PowerCost] = {}
    source_power_start_dbm = [float(start[2])]

    def at(position_cells: FloatArray) -> PowerCost:
        # scipy asks for cost, gradient and Hessian at the same point: evaluate once.
        key = (float(position_cells[0]) * cell_m, float(position_cells[1]) * cell_m)
        if key not in last:
            last.clear()
            last[key] = power_cost(problem, *key, source_power_start_dbm[0])
            source_power_start_dbm[0] = last[key].source_power_dbm
        return last[key]

    def stop_when_converged(intermediate_result: OptimizeResult) -> None:
        here = at(intermediate_result.x)
        x_m, y_m = (intermediate_result.x * cell_m).tolist()
        for minimum in minima:
            offset_m = math.hypot(x_m - minimum.parameters[0], y_m - minimum.parameters[1])
            if offset_m < 0.5 * cell_m and here.cost >= minimum.robust_cost:
                merged_into.append(minimum)
                raise StopIteration
        # The Newton decrement sqrt(g^T H^-1 g), in closed form for 2x2 (np.linalg would
        # cost more than the rest of an iteration's bookkeeping). Only where the cost is
        # convex does the Newton step tell the distance left.
        (h_xx, h_xy), (_, h_yy) = here.hessian_per_m2.tolist()
        g_x, g_y = here.gradient_per_m.tolist()
        determinant = h_xx * h_yy - h_xy * h_xy
        if h_xx > 0.0 and determinant > 0.0:
            decrement_squared = (
                h_yy * g_x * g_x - 2.0 * h_xy * g_x * g_y + h_xx * g_y * g_y
            ) / determinant
            if decrement_squared < _NEWTON_TOLERANCE_SIGMAS**2:
                raise StopIteration

    result = minimize(
        lambda position_cells: at(position_cells).cost,
        start[:2] / cell_m,
        jac=lambda position_cells: at(position_cells).gradient_per_m * cell_m,
        hess=lambda position_cells: at(position_cells).hessian_per_m2 * cell_m**2,
        method="trust-ncg",
        callback=stop_when_converged,
        options={
            "gtol": 0.0,  # stop_when_converged decides
            "maxiter": _NEWTON_MAX_STEPS,
            # Walks from secondary peaks run for hundreds of km: let the first step go
            # as far as the model says (a bad one costs one evaluation to shrink).
            "initial_trust_radius": 0.5 * reach_cells,
            "max_trust_radius": reach_cells,
        },
    )
    if merged_into:
        return merged_into[0]
    solution = at(result.x)
    return Solution(np.append(result.x * cell_m, solution.source_power_dbm), solution.cost)


class _BasinWatch:
    """``least_squares`` callback: stop a walk that enters an already refined minimum's basin.

    Secondary grid peaks of a TDOA or fused problem mostly lead back to the best one,
    tens of evaluations later, and ``estimate._distinct`` then drops the copy. A walk
    within half a cell of a ``refined`` minimum and no lower than it is taken to be
    there (as ``_newton_power_refinement`` does): the result is that minimum itself.
    """

    def __init__(self, refined: Sequence[Solution], cell_m: float) -> None:
        self.minima = [solution for solution in refined if solution.local_minimum]
        self.cell_m = cell_m
        self.minimum: Solution | None = None

    def __call__(self, intermediate_result: OptimizeResult) -> None:
        x_m, y_m = float(intermediate_result.x[0]), float(intermediate_result.x[1])
        for minimum in self.minima:
            offset_m = math.hypot(x_m - minimum.parameters[0], y_m - minimum.parameters[1])
            if offset_m < 0.5 * self.cell_m and intermediate_result.cost >= minimum.robust_cost:
                self.minimum = minimum
                raise StopIteration


def refine(
    problem: Problem, start: FloatArray, grid: Grid, refined: Sequence[Solution] = ()
) -> Solution:
    """Minimise the robust cost from ``start`` (``initial_parameters``).

    ``refined``: solutions from other grid peaks of the same problem, in case this one
    leads to one of them: the walk stops there (``_newton_power_refinement``, ``_BasinWatch``).

    Gauss-Newton (``least_squares``) leaves out each residual's own curvature. That is
    harmless for TDOA, whose residuals are tens of metres against ranges of tens of km,
    but for power readings (residuals of order one sigma, a log-distance model) the
    left-out part is as large as what is kept: it crept along the power likelihood's flat
    valley, up to ~70 evaluations per peak. Power-only problems therefore take trust-region
    Newton with the exact Hessian and ``P0`` profiled out (``power_cost``): 2-4 steps
    from the best grid peak, a median of 13 from a secondary one. With ceilings (receivers
    that do not hear it) ``P0`` is no longer the readings' alone, and the power fit goes
    the general way too: slower, but only when some receiver is out of earshot.

    Unbounded: the grid already placed ``start`` in the right basin, and the bounded
    solver costs twice the time. A fix that runs off far beyond the search region is
    pulled back to the region's edge, where its large ellipse tells the story.
    """
    if problem.tdoa is None and not (problem.rss is not None and len(problem.rss.ceiling_indices)):
        solution = _newton_power_refinement(problem, start, grid, refined)
    else:
        watch = _BasinWatch(refined, grid.cell_size_m)
        result = least_squares(
            lambda parameters: normalised_residuals(problem, parameters),
            start,
            jac=lambda parameters: residual_jacobian(problem, parameters),
            loss="soft_l1",
            f_scale=1.0,
            x_scale=np.array([grid.cell_size_m, grid.cell_size_m, 1.0])[: len(start)],
            xtol=1e-7,
            ftol=1e-8,
            max_nfev=100,
            callback=watch,
        )
        if watch.minimum is not None:
            return watch.minimum
        solution = Solution(np.asarray(result.x, dtype=np.float64), float(result.cost))
    reach_m = max(np.ptp(grid.x_m), np.ptp(grid.y_m))
    centre_m = np.array([np.mean(grid.x_m), np.mean(grid.y_m)])
    if np.hypot(*(solution.parameters[:2] - centre_m)) > reach_m:
        return Solution(
            start,
            0.5 * float(np.sum(soft_l1(np.square(normalised_residuals(problem, start))))),
            local_minimum=False,
        )
    return solution


def grid_peaks(
    log_likelihood: FloatArray, grid: Grid, max_peaks: int, min_relative_likelihood: float
) -> list[tuple[float, float]]:
    """Map-plane positions of the strongest local maxima, best first."""
    is_peak = log_likelihood == maximum_filter(log_likelihood, size=3, mode="nearest")
    floor = float(np.max(log_likelihood)) + np.log(min_relative_likelihood)
    rows, columns = np.nonzero(is_peak & (log_likelihood >= floor))
    order = np.argsort(log_likelihood[rows, columns])[::-1][:max_peaks]
    return [(float(grid.x_m[columns[k]]), float(grid.y_m[rows[k]])) for k in order]
