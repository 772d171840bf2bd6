"""Uncertainty of a position fix: covariance, 95 % ellipse, GDOP, likelihood surface, CRB.

Covariance: the Gauss-Newton inverse Fisher information ``(J^T J)^-1`` of the normalised
residuals at the solution (``J`` analytic, nuisance ``P0`` marginalised by
taking the position block of the full inverse). When the residuals are larger than the
model's sigmas claim, the covariance grows (``estimated_scale_inflation``): the scale
the residuals estimate, with the F quantile that a scale estimated from ``dof``
residuals calls for, whenever that region is the larger of the two.
A weak prior as wide as the search region keeps a degenerate geometry finite (a huge
ellipse, not an infinity or a crash). When the grid shows a second explanation of the
data that a 95 % likelihood-ratio test cannot reject (a mirror position, say), the
covariance is widened to cover both. For a power-only fix, whose likelihood is broad and
bent (a banana outside the network), the covariance is instead the second moment of the
grid likelihood about the fix (times the same chi-square inflation); TDOA surfaces are narrower than a grid cell, so
there the local curvature is the better description.

The ellipse is the 95 % contour of that bivariate normal: semi-axes
``sqrt(5.991 * eigenvalue)``, 5.991 being the 95 % quantile of chi-square with 2 degrees
of freedom, orientation as the azimuth of the major axis from true north.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2, f

from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.rss import rss_fisher_information
from heimdall.localization.tdoa import tdoa_fisher_information

FloatArray = npt.NDArray[np.float64]

CHI2_2DOF_95 = float(chi2.ppf(0.95, 2))  # 5.991


@lru_cache(maxsize=256)
def chi2_quantile(confidence: float, dof: int) -> float:
    """``chi2.ppf``, remembered: scipy's generic quantile costs ~0.15 ms a call, and a
    localization asks for the same few (confidence, dof) every time."""
    return float(chi2.ppf(confidence, dof))


@lru_cache(maxsize=256)
def f_quantile(confidence: float, dfn: int, dfd: int) -> float:
    """``f.ppf``, remembered (as ``chi2_quantile``)."""
    return float(f.ppf(confidence, dfn, dfd))


def estimated_scale_inflation(chi_square: float, dof: int, confidence: float = 0.95) -> float:
    """Factor on the model's covariance: ``max(1, (chi2 / dof) q_F / q_chi2)``.

    The residuals estimate the noise scale as ``s^2 = chi2 / dof``; a position error
    whose covariance is ``s^2 C`` with ``s^2`` so estimated has its region at
    ``2 F(2, dof)`` (Hotelling), not at the chi-square(2) quantile, which holds only for
    a known scale. With 3-4 residuals (a power fix of 6-7 readings) ``2 F`` is 2.3-3.2
    times the chi-square's. The factor folds that quantile into the covariance, so its
    chi-square contour is the F region; it stays 1 while the model's own sigmas give the
    larger region (small residuals do not shrink the ellipse). ``dof <= 0``: nothing to
    estimate from, 1.

    Example:
        >>> round(estimated_scale_inflation(8.0, 4), 2)  # s^2 = 2, 2 F(2, 4) / 5.99 = 2.32
        4.64
        >>> estimated_scale_inflation(1.0, 4), estimated_scale_inflation(5.0, 0)
        (1.0, 1.0)
    """
    if dof <= 0:
        return 1.0
    quantile_ratio = 2.0 * f_quantile(confidence, 2, dof) / chi2_quantile(confidence, 2)
    return max(1.0, chi_square / dof * quantile_ratio)


@dataclass(frozen=True)
class Ellipse:
    """A confidence ellipse in ground metres; orientation of the major axis from true north."""

    semi_major_m: float
    semi_minor_m: float
    orientation_deg: float
    confidence: float


def position_covariance(jacobian: FloatArray, prior_sigma_m: float) -> FloatArray:
    """Position block (2x2) of the inverse Fisher information, with a weak position prior."""
    information = jacobian.T @ jacobian
    information[0, 0] += prior_sigma_m**-2
    information[1, 1] += prior_sigma_m**-2
    return np.asarray(np.linalg.inv(information)[:2, :2], dtype=np.float64)


def loewner_max(first: FloatArray, second: FloatArray) -> FloatArray:
    """A covariance at least as large as both in every direction (first + positive part)."""
    eigenvalues, eigenvectors = np.linalg.eigh(second - first)
    excess = (eigenvectors * np.maximum(eigenvalues, 0.0)) @ eigenvectors.T
    return np.asarray(first + excess, dtype=np.float64)


def mixture_covariance(
    positions_m: FloatArray, covariances_m2: FloatArray, log_weights: FloatArray
) -> FloatArray:
    """Covariance about the first position of a Gaussian mixture (spread between modes)."""
    weights = np.exp(log_weights - np.max(log_weights))
    weights /= np.sum(weights)
    offsets_m = positions_m - positions_m[0]
    spread = np.einsum("k,ki,kj->ij", weights, offsets_m, offsets_m)
    within = np.einsum("k,kij->ij", weights, covariances_m2)
    return np.asarray(spread + within, dtype=np.float64)


def grid_spread_covariance(
    x_centres_m: FloatArray,
    y_centres_m: FloatArray,
    log_likelihood: FloatArray,
    centre_m: FloatArray,
) -> FloatArray:
    """Covariance of the grid likelihood about ``centre_m`` (the fix), sized to its 95 % mass.

    Unlike the local curvature it sees a banana-shaped or skewed likelihood, and the bias
    of the fix against the bulk of the likelihood.
    """
    weights = np.exp(log_likelihood - np.max(log_likelihood))
    weights /= np.sum(weights)
    x_m, y_m = np.meshgrid(x_centres_m - centre_m[0], y_centres_m - centre_m[1])
    offsets_m = np.stack([x_m.ravel(), y_m.ravel()], axis=-1)
    flat_weights = weights.ravel()
    spread = np.einsum("k,ki,kj->ij", flat_weights, offsets_m, offsets_m)
    # Heavy tails inflate a second moment; rescale so the 95 % ellipse holds 95 % of the
    # likelihood mass, which is what the ellipse is meant to say.
    mahalanobis_squared = np.einsum("ki,ij,kj->k", offsets_m, np.linalg.pinv(spread), offsets_m)
    order = np.argsort(mahalanobis_squared)
    cumulative = np.cumsum(flat_weights[order])
    quantile = mahalanobis_squared[order][np.searchsorted(cumulative, 0.95)]
    return np.asarray(spread * quantile / CHI2_2DOF_95, dtype=np.float64)


def confidence_ellipse(
    covariance_m2: FloatArray, true_north_azimuth_deg: float = 0.0, confidence: float = 0.95
) -> Ellipse:
    """Ellipse of a 2-D normal covariance given in map-plane (east, north) metres.

    Example:
        >>> e = confidence_ellipse(np.diag([100.0**2, 400.0**2]))
        >>> round(e.semi_major_m), round(e.semi_minor_m), round(e.orientation_deg)
        (979, 245, 0)
    """
    scale = chi2_quantile(confidence, 2)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance_m2)
    major = eigenvectors[:, 1]
    # Azimuth in the plane, then corrected for the plane's meridian convergence; axial, so mod 180.
    azimuth_deg = np.degrees(np.arctan2(major[0], major[1])) - true_north_azimuth_deg
    return Ellipse(
        semi_major_m=float(np.sqrt(scale * max(eigenvalues[1], 0.0))),
        semi_minor_m=float(np.sqrt(scale * max(eigenvalues[0], 0.0))),
        orientation_deg=float(np.mod(azimuth_deg, 180.0)),
        confidence=confidence,
    )


def plane_to_true_north(covariance_m2: FloatArray, true_north_azimuth_deg: float) -> FloatArray:
    """A map-plane covariance turned into local east/north axes at the point.

    ``true_north_azimuth_deg``: where true north points in the plane there
    (``LocalFrame.true_north_azimuth_deg``). Near the plane's centre the two agree; a fix
    300 km east or west of it at 48 N sees them ~3 degrees apart, more towards the poles.

    Example:
        >>> c = plane_to_true_north(np.diag([4.0, 1.0]), 90.0)  # plane x is true south
        >>> np.round(c, 9).tolist()
        [[1.0, 0.0], [0.0, 4.0]]
    """
    angle = np.radians(true_north_azimuth_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.asarray(rotation @ covariance_m2 @ rotation.T, dtype=np.float64)


def horizontal_dilution_of_precision(
    transmitter_en_m: FloatArray, receivers_en_m: FloatArray
) -> float:
    """GDOP of the geometry: pseudo-range HDOP with one unknown common offset.

    Rows ``[u_i, 1]`` with ``u_i`` the unit vector from receiver to transmitter. Both
    models have this structure (TDOA: unknown emission time; RSS: unknown ``P0``, a
    common offset in log-range), so one figure describes the geometry for either. It is
    ``inf`` when the directions cannot separate the two horizontal axes.
    """
    offsets_m = transmitter_en_m - receivers_en_m
    ranges_m = np.maximum(np.linalg.norm(offsets_m, axis=-1), 1.0)
    design = np.column_stack([offsets_m / ranges_m[:, np.newaxis], np.ones(len(offsets_m))])
    information = design.T @ design
    if np.linalg.cond(information) > 1e12:
        return float("inf")
    return float(np.sqrt(np.trace(np.linalg.inv(information)[:2, :2])))


def _pool_pairs(values: FloatArray, axis: int) -> FloatArray:
    # Sum neighbouring pairs along one axis (an odd last cell stays on its own).
    count = values.shape[axis]
    even = np.take(values, np.arange(0, count - 1, 2), axis=axis) + np.take(
        values, np.arange(1, count, 2), axis=axis
    )
    if count % 2:
        even = np.concatenate([even, np.take(values, [count - 1], axis=axis)], axis=axis)
    return np.asarray(even, dtype=np.float64)


def likelihood_surface_geojson(
    frame: LocalFrame,
    x_centres_m: FloatArray,
    y_centres_m: FloatArray,
    log_likelihood: FloatArray,
    threshold: float = 1e-3,
    max_features: int = 400,
) -> dict[str, Any]:
    """Grid cells whose likelihood is above ``threshold`` of the peak, as lon/lat polygons.

    Each feature carries ``likelihood`` normalised to 1 at the peak. A broad surface is
    pooled into 2x2 blocks until at most ``max_features`` cells remain, so the payload
    stays small whatever the spread.
    """
    likelihood = np.exp(log_likelihood - np.max(log_likelihood))
    x_m, y_m = np.asarray(x_centres_m, dtype=np.float64), np.asarray(y_centres_m, dtype=np.float64)
    cell_m = float(x_m[1] - x_m[0])
    while np.count_nonzero(likelihood >= threshold * np.max(likelihood)) > max_features:
        likelihood = _pool_pairs(_pool_pairs(likelihood, 0), 1)
        # A pooled cell is centred half an old cell further on; an odd last cell keeps its centre.
        x_m = _pool_pairs(x_m, 0) / _pool_pairs(np.ones_like(x_m), 0)
        y_m = _pool_pairs(y_m, 0) / _pool_pairs(np.ones_like(y_m), 0)
        cell_m *= 2.0
    relative = likelihood / np.max(likelihood)
    rows, columns = np.nonzero(relative >= threshold)
    half_m = 0.5 * cell_m
    corner_dx = np.array([-1.0, 1.0, 1.0, -1.0, -1.0]) * half_m
    corner_dy = np.array([-1.0, -1.0, 1.0, 1.0, -1.0]) * half_m
    corner_x_m = x_m[columns][:, np.newaxis] + corner_dx
    corner_y_m = y_m[rows][:, np.newaxis] + corner_dy
    corner_lat_deg, corner_lon_deg = frame.plane_to_geodetic(corner_x_m, corner_y_m)
    corner_lon_deg = np.round(corner_lon_deg, 6).tolist()
    corner_lat_deg = np.round(corner_lat_deg, 6).tolist()
    # Up to max_features x 5 corners in Python: from lists, not numpy scalars.
    features = [
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[lon, lat] for lon, lat in zip(lons, lats, strict=True)]],
            },
            "properties": {"likelihood": round(value, 6)},
        }
        for lons, lats, value in zip(
            corner_lon_deg, corner_lat_deg, relative[rows, columns].tolist(), strict=True
        )
    ]
    return {
        "type": "FeatureCollection",
        "properties": {"cell_size_m": cell_m, "threshold": threshold},
        "features": features,
    }


@dataclass(frozen=True)
class CramerRaoBound:
    """Lower bound on the position error covariance of any unbiased estimator."""

    covariance_m2: FloatArray
    rms_error_m: float


def _position_information(fisher: FloatArray) -> FloatArray:
    # Schur complement: position information left after the nuisance parameter is estimated.
    nuisance = fisher[2:, 2:]
    if nuisance[0, 0] <= 0.0:
        return np.asarray(fisher[:2, :2], dtype=np.float64)
    return np.asarray(
        fisher[:2, :2] - fisher[:2, 2:] @ np.linalg.inv(nuisance) @ fisher[2:, :2],
        dtype=np.float64,
    )


def cramer_rao_bound(
    transmitter_en_m: FloatArray,
    *,
    rss_receivers_en_m: FloatArray | None = None,
    rss_sigmas_db: FloatArray | None = None,
    path_loss_exponent: float = 2.0,
    tdoa_receivers_en_m: FloatArray | None = None,
    tdoa_arrival_sigmas_s: FloatArray | None = None,
) -> CramerRaoBound:
    """CRB of the horizontal position for RSS, TDOA, or both (the informations add).

    RSS: log-distance model with unknown ``P0``; TDOA: independent per-receiver arrival
    time errors with unknown emission time. Each nuisance is eliminated before adding,
    as the two models share only the position.
    """
    information = np.zeros((2, 2), dtype=np.float64)
    if rss_receivers_en_m is not None and rss_sigmas_db is not None:
        information += _position_information(
            rss_fisher_information(
                transmitter_en_m, rss_receivers_en_m, rss_sigmas_db, path_loss_exponent
            )
        )
    if tdoa_receivers_en_m is not None and tdoa_arrival_sigmas_s is not None:
        information += _position_information(
            tdoa_fisher_information(transmitter_en_m, tdoa_receivers_en_m, tdoa_arrival_sigmas_s)
        )
    if np.linalg.cond(information) > 1e15:
        return CramerRaoBound(np.full((2, 2), np.inf), float("inf"))
    covariance_m2 = np.asarray(np.linalg.inv(information), dtype=np.float64)
    return CramerRaoBound(covariance_m2, float(np.sqrt(np.trace(covariance_m2))))
