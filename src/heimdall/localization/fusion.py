"""Joint objective of the RSS and TDOA models: grid search, then robust least squares.

Both models are written as normalised residuals ``z`` (observed minus predicted, over
sigma); the log-likelihood of a candidate is ``-1/2 sum soft_l1(z^2)`` over every
residual of the models in use, so fusing is adding the two sums on the same grid, and
the refinement minimises the same sum with ``scipy.optimize.least_squares``.

Parameters of the refinement: ``(x_m, y_m)`` in the map plane, plus ``P0`` (dBm) when
the RSS model is in use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import numpy.typing as npt
from scipy.ndimage import maximum_filter
from scipy.optimize import least_squares

from heimdall.localization.geodesy import LocalFrame, slant_ranges_m
from heimdall.localization.rss import (
    path_loss_db,
    robust_source_power_dbm,
    rss_normalised_residuals,
    soft_l1,
)
from heimdall.localization.tdoa import pair_whitening, tdoa_normalised_residuals

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class RssBlock:
    """Power observations, aligned with ``receiver_indices`` into the problem's receivers."""

    receiver_indices: IndexArray
    powers_dbm: FloatArray
    sigmas_db: FloatArray
    gains_db: FloatArray
    path_loss_exponent: float
    reference_distance_m: float


@dataclass(frozen=True)
class TdoaBlock:
    """Pairwise range differences (``c * dt``) with their (inflated) sigmas, in metres."""

    first: IndexArray
    second: IndexArray
    range_differences_m: FloatArray
    sigmas_m: FloatArray

    def whitening_per_m(self, extra_sigma_m: float = 0.0) -> FloatArray:
        """Whitening of the pair residuals, sigmas widened by ``extra_sigma_m`` in quadrature."""
        if extra_sigma_m == 0.0:
            return self._whitening_per_m
        return pair_whitening(self.first, self.second, np.hypot(self.sigmas_m, extra_sigma_m))

    @cached_property
    def _whitening_per_m(self) -> FloatArray:
        # The refinement evaluates residuals and Jacobian dozens of times: factor once.
        return pair_whitening(self.first, self.second, self.sigmas_m)


@dataclass(frozen=True)
class Problem:
    """Everything the objective needs: geometry, assumed transmitter height, model blocks."""

    frame: LocalFrame
    receivers_enu_m: FloatArray
    transmitter_altitude_m: float
    rss: RssBlock | None
    tdoa: TdoaBlock | None
    _last_point: dict[tuple[float, float], FloatArray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def transmitter_enu_m(self, x_m: float, y_m: float) -> FloatArray:
        """ENU of a map-plane candidate at the assumed height, shape ``(3,)``.

        The solver asks for the residuals and the Jacobian at the same point, and one
        PROJ call costs more than both: the last point is kept.
        """
        key = (float(x_m), float(y_m))
        if key not in self._last_point:
            self._last_point.clear()
            self._last_point[key] = self.frame.plane_to_enu(*key, self.transmitter_altitude_m)
        return self._last_point[key]

    @property
    def n_parameters(self) -> int:
        return 3 if self.rss is not None else 2

    @property
    def n_observations(self) -> int:
        """Independent observations: powers, plus one fewer than the TDOA receivers."""
        count = 0 if self.rss is None else len(self.rss.powers_dbm)
        if self.tdoa is not None:
            count += len(np.union1d(self.tdoa.first, self.tdoa.second)) - 1
        return count


@dataclass(frozen=True)
class Grid:
    """A regular map-plane grid: cell centres ``x_m`` (columns) and ``y_m`` (rows)."""

    x_m: FloatArray
    y_m: FloatArray

    @property
    def cell_size_m(self) -> float:
        return float(self.x_m[1] - self.x_m[0])

    @classmethod
    def covering(
        cls, x_m: FloatArray, y_m: FloatArray, margin_m: float, cells_per_side: int
    ) -> Grid:
        """Square cells over the bounding box of the points, extended by ``margin_m``."""
        x_min, x_max = float(np.min(x_m)) - margin_m, float(np.max(x_m)) + margin_m
        y_min, y_max = float(np.min(y_m)) - margin_m, float(np.max(y_m)) + margin_m
        cell_m = max(x_max - x_min, y_max - y_min) / cells_per_side
        n_x = int(np.ceil((x_max - x_min) / cell_m))
        n_y = int(np.ceil((y_max - y_min) / cell_m))
        x_centres = x_min + cell_m * (np.arange(n_x, dtype=np.float64) + 0.5)
        y_centres = y_min + cell_m * (np.arange(n_y, dtype=np.float64) + 0.5)
        return cls(x_centres, y_centres)


@lru_cache(maxsize=16)
def _cell_enu_m(
    frame: LocalFrame, altitude_m: float, x_m: tuple[float, ...], y_m: tuple[float, ...]
) -> FloatArray:
    # One PROJ pass over every cell costs milliseconds, and the same grid recurs: the
    # outlier test, the Gaussian surface, and every acquisition of the same network.
    x_grid_m, y_grid_m = np.meshgrid(x_m, y_m)
    cells_enu_m = frame.plane_to_enu(x_grid_m, y_grid_m, altitude_m)
    cells_enu_m.flags.writeable = False
    return cells_enu_m


def _grid_ranges_m(problem: Problem, grid: Grid) -> FloatArray:
    """Slant ranges from every cell to every receiver, shape ``(n_y, n_x, n_receivers)``."""
    cells_enu_m = _cell_enu_m(
        problem.frame,
        float(problem.transmitter_altitude_m),
        tuple(grid.x_m.tolist()),
        tuple(grid.y_m.tolist()),
    )
    return slant_ranges_m(cells_enu_m, problem.receivers_enu_m)


def _ranges_at(problem: Problem, x_m: float, y_m: float) -> FloatArray:
    return slant_ranges_m(problem.transmitter_enu_m(x_m, y_m), problem.receivers_enu_m)


def grid_log_likelihood(problem: Problem, grid: Grid) -> FloatArray:
    """Robust log-likelihood on every cell, shape ``(n_y, n_x)``; ``P0`` profiled out.

    TDOA sigmas get the cell size added in quadrature: a hyperbola a few hundred metres
    wide would otherwise fall between cell centres and the true cell would score no
    better than a wrong one.
    """
    ranges_m = _grid_ranges_m(problem, grid)
    log_likelihood = np.zeros(ranges_m.shape[:-1], dtype=np.float64)
    if problem.rss is not None:
        rss = problem.rss
        rss_ranges_m = ranges_m[..., rss.receiver_indices]
        model = (rss.powers_dbm, rss.sigmas_db, rss.gains_db)
        source_power_dbm = robust_source_power_dbm(
            rss_ranges_m, *model, rss.path_loss_exponent, rss.reference_distance_m
        )
        z = rss_normalised_residuals(
            rss_ranges_m,
            source_power_dbm,
            *model,
            rss.path_loss_exponent,
            rss.reference_distance_m,
        )
        log_likelihood -= 0.5 * np.sum(soft_l1(np.square(z)), axis=-1)
    if problem.tdoa is not None:
        z = _tdoa_grid_residuals(problem.tdoa, ranges_m, grid)
        log_likelihood -= 0.5 * np.sum(soft_l1(np.square(z)), axis=-1)
    return log_likelihood


def _tdoa_grid_residuals(tdoa: TdoaBlock, ranges_m: FloatArray, grid: Grid) -> FloatArray:
    """Whitened TDOA residuals on every grid cell."""
    return tdoa_normalised_residuals(
        ranges_m,
        tdoa.first,
        tdoa.second,
        tdoa.range_differences_m,
        tdoa.whitening_per_m(grid.cell_size_m),
    )


def leave_one_out_chi_square(problem: Problem, grid: Grid) -> FloatArray:
    """Gaussian chi-square on every cell, shape ``(n_rss + 1, n_cells)``.

    Row ``k < n_rss`` leaves power reading ``k`` out; the last row keeps them all.
    ``P0`` is profiled out in closed form (the inverse-variance weighted mean).
    """
    assert problem.rss is not None
    rss = problem.rss
    ranges_m = _grid_ranges_m(problem, grid).reshape(-1, len(problem.receivers_enu_m))
    implied_p0_dbm = (
        rss.powers_dbm
        - rss.gains_db
        + path_loss_db(
            ranges_m[:, rss.receiver_indices], rss.path_loss_exponent, rss.reference_distance_m
        )
    )
    n_rss = len(rss.powers_dbm)
    keep = np.vstack([1.0 - np.eye(n_rss), np.ones((1, n_rss))])
    weights = keep[:, np.newaxis, :] / np.square(rss.sigmas_db)
    p0_dbm = np.sum(weights * implied_p0_dbm, axis=-1) / np.sum(weights, axis=-1)
    chi_square = np.sum(weights * np.square(implied_p0_dbm - p0_dbm[..., np.newaxis]), axis=-1)
    if problem.tdoa is not None:
        z = _tdoa_grid_residuals(problem.tdoa, ranges_m, grid)
        chi_square = chi_square + np.sum(np.square(z), axis=-1)
    return np.asarray(chi_square, dtype=np.float64)


def power_exclusion_chi_square_drops(leave_one_out: FloatArray) -> FloatArray:
    """How much the best grid chi-square falls when each power reading is left out.

    ``leave_one_out`` is ``leave_one_out_chi_square``'s table. One entry per RSS
    receiver: a reading that the rest of the network contradicts shows a drop far above
    the ~1 expected from removing one honest residual.
    """
    best = np.min(leave_one_out, axis=-1)
    return np.asarray(best[-1] - best[:-1], dtype=np.float64)


def gaussian_grid_log_likelihood(
    problem: Problem, grid: Grid, leave_one_out: FloatArray | None = None
) -> FloatArray:
    """Plain Gaussian log-likelihood (``-chi2 / 2``) on the grid, shape ``(n_y, n_x)``.

    Its chi-square is the last row of ``leave_one_out_chi_square``: pass that table when
    the outlier test already computed it for this problem and grid.
    """
    if leave_one_out is None:
        leave_one_out = leave_one_out_chi_square(problem, grid)
    chi_square = leave_one_out[-1]
    return np.asarray(-0.5 * chi_square.reshape(len(grid.y_m), len(grid.x_m)), dtype=np.float64)


def normalised_residuals(problem: Problem, parameters: FloatArray) -> FloatArray:
    """Stacked residuals (RSS first, then TDOA) at ``(x_m, y_m[, P0_dbm])``."""
    ranges_m = _ranges_at(problem, parameters[0], parameters[1])
    blocks: list[FloatArray] = []
    if problem.rss is not None:
        rss = problem.rss
        blocks.append(
            rss_normalised_residuals(
                ranges_m[rss.receiver_indices],
                parameters[2],
                rss.powers_dbm,
                rss.sigmas_db,
                rss.gains_db,
                rss.path_loss_exponent,
                rss.reference_distance_m,
            )
        )
    if problem.tdoa is not None:
        tdoa = problem.tdoa
        blocks.append(
            tdoa_normalised_residuals(
                ranges_m, tdoa.first, tdoa.second, tdoa.range_differences_m, tdoa.whitening_per_m()
            )
        )
    return np.concatenate(blocks)


def residual_jacobian(problem: Problem, parameters: FloatArray) -> FloatArray:
    """Analytic Jacobian of ``normalised_residuals``, shape ``(n_residuals, n_parameters)``.

    The range gradient is the horizontal unit vector from the receiver in the ENU frame;
    the map plane and ENU axes agree to ~1e-4 over the region, far below what matters
    for a search direction or a covariance.
    """
    transmitter_enu_m = problem.transmitter_enu_m(parameters[0], parameters[1])
    offsets_m = transmitter_enu_m - problem.receivers_enu_m
    ranges_m = np.maximum(np.linalg.norm(offsets_m, axis=-1), 1e-3)
    range_gradients = offsets_m[:, :2] / ranges_m[:, np.newaxis]
    rows: list[FloatArray] = []
    if problem.rss is not None:
        rss = problem.rss
        indices = rss.receiver_indices
        # Beyond the reference distance, d(predicted dBm)/d(range) = -10 n / (ln 10 * d).
        slope_db_per_m = np.where(
            ranges_m[indices] > rss.reference_distance_m,
            10.0 * rss.path_loss_exponent / (np.log(10.0) * ranges_m[indices]),
            0.0,
        )
        position = range_gradients[indices] * (slope_db_per_m / rss.sigmas_db)[:, np.newaxis]
        rows.append(np.column_stack([position, -1.0 / rss.sigmas_db]))
    if problem.tdoa is not None:
        tdoa = problem.tdoa
        position = -tdoa.whitening_per_m() @ (
            range_gradients[tdoa.first] - range_gradients[tdoa.second]
        )
        if problem.rss is not None:
            position = np.column_stack([position, np.zeros(len(position))])
        rows.append(position)
    return np.asarray(np.vstack(rows), dtype=np.float64)


def initial_parameters(problem: Problem, x_m: float, y_m: float) -> FloatArray:
    """Start vector for the refinement: the position and, for RSS, its profiled ``P0``."""
    if problem.rss is None:
        return np.array([x_m, y_m], dtype=np.float64)
    rss = problem.rss
    ranges_m = _ranges_at(problem, x_m, y_m)[rss.receiver_indices]
    source_power_dbm = robust_source_power_dbm(
        ranges_m,
        rss.powers_dbm,
        rss.sigmas_db,
        rss.gains_db,
        rss.path_loss_exponent,
        rss.reference_distance_m,
    )
    return np.array([x_m, y_m, float(source_power_dbm)], dtype=np.float64)


@dataclass(frozen=True)
class Solution:
    parameters: FloatArray
    robust_cost: float


def refine(problem: Problem, start: FloatArray, grid: Grid) -> Solution:
    """Robust (soft-L1) least squares from ``start``.

    Unbounded: the grid already placed ``start`` in the right basin, and the bounded
    solver costs twice the time. A fix that runs off far beyond the search region is
    pulled back to the region's edge, where its large ellipse tells the story.
    """
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
    )
    parameters = np.asarray(result.x, dtype=np.float64)
    reach_m = max(np.ptp(grid.x_m), np.ptp(grid.y_m))
    centre_m = np.array([np.mean(grid.x_m), np.mean(grid.y_m)])
    if np.hypot(*(parameters[:2] - centre_m)) > reach_m:
        parameters = start
        return Solution(
            parameters,
            0.5 * float(np.sum(soft_l1(np.square(normalised_residuals(problem, parameters))))),
        )
    return Solution(parameters, float(result.cost))


def grid_peaks(
    log_likelihood: FloatArray, grid: Grid, max_peaks: int, min_relative_likelihood: float
) -> list[tuple[float, float]]:
    """Map-plane positions of the strongest local maxima, best first."""
    is_peak = log_likelihood == maximum_filter(log_likelihood, size=3, mode="nearest")
    floor = float(np.max(log_likelihood)) + np.log(min_relative_likelihood)
    rows, columns = np.nonzero(is_peak & (log_likelihood >= floor))
    order = np.argsort(log_likelihood[rows, columns])[::-1][:max_peaks]
    return [(float(grid.x_m[columns[k]]), float(grid.y_m[rows[k]])) for k in order]
