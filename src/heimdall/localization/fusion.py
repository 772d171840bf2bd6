"""Joint objective of the RSS and TDOA models: grid search, then robust least squares.

Both models are written as normalised residuals ``z`` (observed minus predicted, over
sigma); the log-likelihood of a candidate is ``-1/2 sum soft_l1(z^2)`` over every
residual of the models in use, so fusing is adding the two sums on the same grid, and
the refinement minimises the same sum.

Ranges follow the propagation model (``localization.propagation``): slant ranges in the
exact ENU frame for line of sight, geodesic distances on the ellipsoid for a ground
wave (``Problem.surface_paths``), whose TDOA block also carries the ground wave's
nominal delay as a range scale.

Parameters of a solution: ``(x_m, y_m)`` in the map plane, plus ``P0`` (dBm) when the
RSS model is in use. ``localization.refinement`` takes a grid peak to a fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import numpy.typing as npt

from heimdall.localization.geodesy import LocalFrame, geodesic_distances_m, slant_ranges_m
from heimdall.localization.horizon import HorizonLoss
from heimdall.localization.rss import (
    ceiling_excesses,
    implied_source_powers_dbm,
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
    #: Receivers that do not hear the transmitter: their received power was not above
    #: ``ceilings_dbm`` (one-sided, censored readings; ``rss.ceiling_excesses``). They
    #: are neither readings nor degrees of freedom, and no outlier test looks at them.
    ceiling_indices: IndexArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    ceilings_dbm: FloatArray = field(default_factory=lambda: np.zeros(0))
    ceiling_sigmas_db: FloatArray = field(default_factory=lambda: np.zeros(0))
    ceiling_gains_db: FloatArray = field(default_factory=lambda: np.zeros(0))
    #: Loss past the radio horizon (``localization.horizon``), and each reading's and
    #: ceiling's horizon distance for the assumed transmitter height. Readings enter the
    #: log-distance functions as the power they would have had on a line-of-sight path.
    horizon: HorizonLoss = HorizonLoss()
    horizons_m: FloatArray = field(default_factory=lambda: np.zeros(0))
    ceiling_horizons_m: FloatArray = field(default_factory=lambda: np.zeros(0))

    def line_of_sight_powers_dbm(self, ranges_m: FloatArray) -> FloatArray:
        """Each reading plus the horizon loss at ``ranges_m`` (to the readings, ``(..., n_rss)``)."""
        return np.asarray(
            self.powers_dbm + self.horizon.loss_db(ranges_m, self.horizons_m), dtype=np.float64
        )

    def ceiling_excesses(
        self, ranges_m: FloatArray, source_power_dbm: FloatArray | float
    ) -> FloatArray:
        """Hinge residuals of the ceilings, ``ranges_m`` being to every receiver ``(..., n)``."""
        ceiling_ranges_m = ranges_m[..., self.ceiling_indices]
        return ceiling_excesses(
            ceiling_ranges_m,
            source_power_dbm,
            self.ceilings_dbm + self.horizon.loss_db(ceiling_ranges_m, self.ceiling_horizons_m),
            self.ceiling_sigmas_db,
            self.ceiling_gains_db,
            self.path_loss_exponent,
            self.reference_distance_m,
        )


@dataclass(frozen=True)
class TdoaBlock:
    """Pairwise range differences (``c * dt``) with their (inflated) sigmas, in metres."""

    first: IndexArray
    second: IndexArray
    range_differences_m: FloatArray
    sigmas_m: FloatArray
    #: Each receiver's own timing sigma in metres, by receiver index (as ``first`` and
    #: ``second``): the part of its pairs' sigmas they share (``tdoa.pair_whitening``).
    receiver_sigmas_m: FloatArray
    #: Light-time range per metre of path: 1, or more for a ground wave's slower group
    #: velocity (``propagation.tdoa_range_scale``).
    range_scale: float = 1.0

    def whitening_per_m(self, extra_sigma_m: float = 0.0) -> FloatArray:
        """Whitening of the pair residuals, sigmas widened by ``extra_sigma_m`` in quadrature.

        The widening is the grid's: a candidate off its cell's centre by ``delta`` moves
        each receiver's range by ``u_k . delta``, so it belongs to the receivers (half
        of it to each of a pair's two), shared by their pairs as their timing sigmas are.
        """
        if extra_sigma_m == 0.0:
            return self._whitening_per_m
        return pair_whitening(
            self.first,
            self.second,
            np.hypot(self.sigmas_m, extra_sigma_m),
            np.hypot(self.receiver_sigmas_m, extra_sigma_m / np.sqrt(2.0)),
        )

    @cached_property
    def _whitening_per_m(self) -> FloatArray:
        # The refinement evaluates residuals and Jacobian dozens of times: factor once.
        return pair_whitening(self.first, self.second, self.sigmas_m, self.receiver_sigmas_m)


@dataclass(frozen=True)
class Problem:
    """Everything the objective needs: geometry, assumed transmitter height, model blocks."""

    frame: LocalFrame
    receivers_enu_m: FloatArray
    transmitter_altitude_m: float
    rss: RssBlock | None
    tdoa: TdoaBlock | None
    #: Ground wave: ranges are geodesic distances on the ellipsoid from the candidate's
    #: latitude and longitude to ``receivers_lat_lon_deg`` (heights left out).
    surface_paths: bool = False
    receivers_lat_lon_deg: FloatArray | None = None
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

    def surface_ranges_m(self, x_m: FloatArray, y_m: FloatArray) -> FloatArray:
        """Geodesic distances from map-plane points to every receiver, ``(..., n)``."""
        assert self.receivers_lat_lon_deg is not None
        latitudes, longitudes = self.frame.plane_to_geodetic(x_m, y_m)
        return geodesic_distances_m(
            latitudes[..., np.newaxis],
            longitudes[..., np.newaxis],
            self.receivers_lat_lon_deg[:, 0],
            self.receivers_lat_lon_deg[:, 1],
        )

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


def search_margin_m(receivers_x_m: np.ndarray, receivers_y_m: np.ndarray, floor_m: float) -> float:
    """How far beyond the receivers' bounding box the grid reaches: half the network's extent.

    Further out than that, every hyperbola is close to its asymptote and every power ratio
    close to 1: a fix there is little more than a bearing, and the likelihood is flat
    across it. The floor keeps a compact network's region as wide as a VHF transmitter is
    heard (75 km for the NW Italy network, 144 km across).

    Example:
        >>> import numpy as np
        >>> search_margin_m(np.array([0.0, 500e3]), np.array([0.0, 300e3]), 75e3)
        250000.0
        >>> search_margin_m(np.array([0.0, 100e3]), np.array([0.0, 50e3]), 75e3)
        75000.0
    """
    extent_m = max(float(np.ptp(receivers_x_m)), float(np.ptp(receivers_y_m)))
    return max(floor_m, 0.5 * extent_m)


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


@lru_cache(maxsize=16)
def _cell_ranges_m(
    frame: LocalFrame,
    altitude_m: float,
    x_m: tuple[float, ...],
    y_m: tuple[float, ...],
    receivers_enu_m: tuple[float, ...],
    receivers_lat_lon_deg: tuple[float, ...] | None = None,
) -> FloatArray:
    # ~1 ms each, and needed by the outlier test and the likelihood surface of every
    # acquisition of the same network, like the cells themselves. Ground-wave paths take
    # ~1 us per geodesic: ~25 ms for 64 x 64 cells and six receivers.
    if receivers_lat_lon_deg is not None:
        x_grid_m, y_grid_m = np.meshgrid(x_m, y_m)
        latitudes, longitudes = frame.plane_to_geodetic(x_grid_m, y_grid_m)
        sites = np.reshape(receivers_lat_lon_deg, (-1, 2))
        ranges_m = geodesic_distances_m(
            latitudes[..., np.newaxis], longitudes[..., np.newaxis], sites[:, 0], sites[:, 1]
        )
        ranges_m.flags.writeable = False
        return ranges_m
    ranges_m = slant_ranges_m(
        _cell_enu_m(frame, altitude_m, x_m, y_m), np.reshape(receivers_enu_m, (-1, 3))
    )
    ranges_m.flags.writeable = False
    return ranges_m


def _grid_ranges_m(problem: Problem, grid: Grid) -> FloatArray:
    """Slant ranges from every cell to every receiver, shape ``(n_y, n_x, n_receivers)``."""
    return _cell_ranges_m(
        problem.frame,
        float(problem.transmitter_altitude_m),
        tuple(grid.x_m.tolist()),
        tuple(grid.y_m.tolist()),
        tuple(problem.receivers_enu_m.ravel().tolist()),
        (
            tuple(problem.receivers_lat_lon_deg.ravel().tolist())
            if problem.surface_paths and problem.receivers_lat_lon_deg is not None
            else None
        ),
    )


def ranges_at(problem: Problem, x_m: float, y_m: float) -> FloatArray:
    if problem.surface_paths:
        return problem.surface_ranges_m(np.asarray(x_m), np.asarray(y_m))
    return slant_ranges_m(problem.transmitter_enu_m(x_m, y_m), problem.receivers_enu_m)


#: Half-step of the central differences of geodesic ranges in the map plane (their
#: truncation error is ~(step / range)^2, below 1e-8 of the gradient).
_SURFACE_STEP_M = 10.0


def _surface_range_gradients(problem: Problem, x_m: float, y_m: float) -> FloatArray:
    """d(geodesic range)/d(map-plane x, y) for every receiver, ``(n, 2)``: one PROJ call."""
    steps_m = _SURFACE_STEP_M * np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    ranges_m = problem.surface_ranges_m(x_m + steps_m[:, 0], y_m + steps_m[:, 1])
    return np.column_stack([ranges_m[0] - ranges_m[1], ranges_m[2] - ranges_m[3]]) / (
        2.0 * _SURFACE_STEP_M
    )


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
        model = (rss.line_of_sight_powers_dbm(rss_ranges_m), rss.sigmas_db, rss.gains_db)
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
        # P0 is the readings' own: a ceiling only penalises the cells where that source
        # would have been heard (the joint P0 is the refinement's).
        excess = rss.ceiling_excesses(ranges_m, source_power_dbm)
        log_likelihood -= 0.5 * np.sum(soft_l1(np.square(excess)), axis=-1)
    if problem.tdoa is not None:
        z = _tdoa_grid_residuals(problem.tdoa, ranges_m, grid)
        log_likelihood -= 0.5 * np.sum(soft_l1(np.square(z)), axis=-1)
    return log_likelihood


def _tdoa_grid_residuals(tdoa: TdoaBlock, ranges_m: FloatArray, grid: Grid) -> FloatArray:
    """Whitened TDOA residuals on every grid cell."""
    return tdoa_normalised_residuals(
        tdoa.range_scale * ranges_m,
        tdoa.first,
        tdoa.second,
        tdoa.range_differences_m,
        tdoa.whitening_per_m(grid.cell_size_m),
    )


def _cell_implied_source_powers_dbm(
    problem: Problem, rss: RssBlock, grid: Grid
) -> tuple[FloatArray, FloatArray]:
    """Ranges from every cell to every receiver ``(n_cells, n)``, and each reading's ``P0``."""
    ranges_m = _grid_ranges_m(problem, grid).reshape(-1, len(problem.receivers_enu_m))
    rss_ranges_m = ranges_m[:, rss.receiver_indices]
    return ranges_m, implied_source_powers_dbm(
        rss_ranges_m,
        rss.line_of_sight_powers_dbm(rss_ranges_m),
        rss.gains_db,
        rss.path_loss_exponent,
        rss.reference_distance_m,
    )


def leave_one_out_chi_square(problem: Problem, grid: Grid) -> FloatArray:
    """Gaussian chi-square on every cell, shape ``(n_rss + 1, n_cells)``.

    Row ``k < n_rss`` leaves power reading ``k`` out; the last row keeps them all.
    ``P0`` is profiled out in closed form (the inverse-variance weighted mean).
    """
    assert problem.rss is not None
    rss = problem.rss
    ranges_m, implied_p0_dbm = _cell_implied_source_powers_dbm(problem, rss, grid)
    n_rss = len(rss.powers_dbm)
    keep = np.vstack([1.0 - np.eye(n_rss), np.ones((1, n_rss))])
    weights = keep / np.square(rss.sigmas_db)  # one row per subset of readings
    # sum w (p - p0)^2 = sum w p^2 - (sum w p)^2 / sum w: two weighted sums per subset
    # instead of one (subsets, cells, readings) array per step. Centred per cell first,
    # so nothing large cancels. einsum, not a BLAS product that OpenBLAS may spread over
    # threads competing with the service's own work.
    centred_dbm = implied_p0_dbm - np.mean(implied_p0_dbm, axis=-1, keepdims=True)
    weighted_sums = np.einsum("ck,sk->sc", centred_dbm, weights)
    chi_square = np.maximum(
        np.einsum("ck,sk->sc", np.square(centred_dbm), weights)
        - np.square(weighted_sums) / np.sum(weights, axis=-1)[:, np.newaxis],
        0.0,
    )
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
    rss = problem.rss
    if rss is not None and len(rss.ceiling_indices):
        # The ceilings are out of the outlier test, not out of the fix's spread: P0 at
        # each cell is the readings' weighted mean, as in the chi-square.
        ranges_m, implied_p0_dbm = _cell_implied_source_powers_dbm(problem, rss, grid)
        weights = 1.0 / np.square(rss.sigmas_db)
        source_power_dbm = implied_p0_dbm @ weights / np.sum(weights)
        excess = rss.ceiling_excesses(ranges_m, source_power_dbm)
        chi_square = chi_square + np.sum(np.square(excess), axis=-1)
    return np.asarray(-0.5 * chi_square.reshape(len(grid.y_m), len(grid.x_m)), dtype=np.float64)


def normalised_residuals(problem: Problem, parameters: FloatArray) -> FloatArray:
    """Stacked residuals (RSS, then the ceilings' hinges, then TDOA) at ``(x_m, y_m[, P0_dbm])``."""
    ranges_m = ranges_at(problem, parameters[0], parameters[1])
    blocks: list[FloatArray] = []
    if problem.rss is not None:
        rss = problem.rss
        blocks.append(
            rss_normalised_residuals(
                ranges_m[rss.receiver_indices],
                parameters[2],
                rss.line_of_sight_powers_dbm(ranges_m[rss.receiver_indices]),
                rss.sigmas_db,
                rss.gains_db,
                rss.path_loss_exponent,
                rss.reference_distance_m,
            )
        )
        blocks.append(rss.ceiling_excesses(ranges_m, parameters[2]))
    if problem.tdoa is not None:
        tdoa = problem.tdoa
        blocks.append(
            tdoa_normalised_residuals(
                tdoa.range_scale * ranges_m,
                tdoa.first,
                tdoa.second,
                tdoa.range_differences_m,
                tdoa.whitening_per_m(),
            )
        )
    return np.concatenate(blocks)


def residual_jacobian(problem: Problem, parameters: FloatArray) -> FloatArray:
    """Analytic Jacobian of ``normalised_residuals``, shape ``(n_residuals, n_parameters)``.

    Line of sight: the range gradient is the horizontal unit vector from the receiver in
    the ENU frame; the map plane and ENU axes agree to ~1e-4 near the network (~3e-3 at
    500 km), far below what matters for a search direction or a covariance. Ground wave:
    central differences of the geodesic ranges in the map plane itself (exact, whatever
    the distance).
    """
    if problem.surface_paths:
        ranges_m = np.maximum(ranges_at(problem, parameters[0], parameters[1]), 1e-3)
        range_gradients = _surface_range_gradients(problem, parameters[0], parameters[1])
    else:
        transmitter_enu_m = problem.transmitter_enu_m(parameters[0], parameters[1])
        offsets_m = transmitter_enu_m - problem.receivers_enu_m
        ranges_m = np.maximum(np.linalg.norm(offsets_m, axis=-1), 1e-3)
        range_gradients = offsets_m[:, :2] / ranges_m[:, np.newaxis]
    rows: list[FloatArray] = []
    if problem.rss is not None:
        rss = problem.rss
        indices = rss.receiver_indices
        # Beyond the reference distance, d(predicted dBm)/d(range) = -10 n / (ln 10 * d),
        # and the horizon loss's slope takes off more.
        slope_db_per_m = (
            np.where(
                ranges_m[indices] > rss.reference_distance_m,
                10.0 * rss.path_loss_exponent / (np.log(10.0) * ranges_m[indices]),
                0.0,
            )
            + rss.horizon.derivatives(ranges_m[indices], rss.horizons_m)[0]
        )
        position = range_gradients[indices] * (slope_db_per_m / rss.sigmas_db)[:, np.newaxis]
        rows.append(np.column_stack([position, -1.0 / rss.sigmas_db]))
        # A ceiling's hinge is (predicted - ceiling) / sigma where it is active, the
        # reading's residual with the sign turned; flat (zero rows) where it is not.
        ceilings = rss.ceiling_indices
        active = rss.ceiling_excesses(ranges_m, parameters[2]) > 0.0
        ceiling_slopes_db_per_m = np.where(
            active,
            np.where(
                ranges_m[ceilings] > rss.reference_distance_m,
                10.0 * rss.path_loss_exponent / (np.log(10.0) * ranges_m[ceilings]),
                0.0,
            )
            + rss.horizon.derivatives(ranges_m[ceilings], rss.ceiling_horizons_m)[0],
            0.0,
        )
        position = (
            -range_gradients[ceilings]
            * (ceiling_slopes_db_per_m / rss.ceiling_sigmas_db)[:, np.newaxis]
        )
        rows.append(np.column_stack([position, active / rss.ceiling_sigmas_db]))
    if problem.tdoa is not None:
        tdoa = problem.tdoa
        position = (
            -tdoa.range_scale
            * tdoa.whitening_per_m()
            @ (range_gradients[tdoa.first] - range_gradients[tdoa.second])
        )
        if problem.rss is not None:
            position = np.column_stack([position, np.zeros(len(position))])
        rows.append(position)
    return np.asarray(np.vstack(rows), dtype=np.float64)
