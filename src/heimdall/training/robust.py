"""Robust-regression pieces shared by the power and timing fits (pure numpy/scipy).

* M-estimation weights: Huber (convex, unique optimum, 95 % efficient at k = 1.345) to
  converge from anywhere, then Tukey's bisquare (redescending: a reading more than
  4.685 robust sigmas off gets no weight at all) from that start.
* A session-level weight from the session's chi-square, so a session bad as a whole
  (wrong known position, wrong EIRP) cannot pull the fit with all its readings.
* The gauge basis (gains and clock biases are known only up to a common constant) and
  confidence intervals from the larger of the model-based and the site-clustered
  (sandwich) standard errors.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import integrate, special, stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

HUBER_K = 1.345
BISQUARE_C = 4.685
#: A session whose chi-square exceeds this quantile of its distribution is down-weighted.
SESSION_CHI2_QUANTILE = 0.999
#: Median of |z| for a standard normal z: turns a median absolute residual into a sigma.
MEDIAN_ABS_NORMAL = float(stats.norm.ppf(0.75))


def huber_weights(z: FloatArray, k: float = HUBER_K) -> FloatArray:
    """IRLS weights of Huber's loss: 1 inside ``|z| <= k``, ``k / |z|`` outside.

    Example:
        >>> huber_weights(np.array([0.5, 2.69])).round(3).tolist()
        [1.0, 0.5]
    """
    magnitude = np.abs(z)
    return np.asarray(np.where(magnitude <= k, 1.0, k / np.maximum(magnitude, 1e-300)))


def bisquare_weights(z: FloatArray, c: float = BISQUARE_C) -> FloatArray:
    """IRLS weights of Tukey's bisquare: ``(1 - (z/c)^2)^2`` inside ``|z| < c``, else 0.

    Example:
        >>> bisquare_weights(np.array([0.0, 4.685, 10.0])).tolist()
        [1.0, 0.0, 0.0]
    """
    u = np.clip(np.abs(z) / c, 0.0, 1.0)
    return np.asarray(np.square(1.0 - np.square(u)), dtype=np.float64)


def bisquare_psi_derivative(z: FloatArray, c: float = BISQUARE_C) -> FloatArray:
    """d/dz of the bisquare's ``psi(z) = w(z) z``: ``(1 - u^2)(1 - 5 u^2)``, ``u = z / c``.

    Example:
        >>> bisquare_psi_derivative(np.array([0.0, 1.0, 10.0])).round(3).tolist()
        [1.0, 0.737, 0.0]
    """
    u2 = np.square(np.clip(np.abs(z) / c, 0.0, 1.0))
    return np.asarray((1.0 - u2) * (1.0 - 5.0 * u2) + 0.0, dtype=np.float64)


def _normal_expectation(function: object) -> float:
    value, _ = integrate.quad(
        lambda z: function(np.array([z]))[0] * stats.norm.pdf(z),  # type: ignore[operator]
        -BISQUARE_C,
        BISQUARE_C,
    )
    return float(value)


#: E[w z^2] / E[w] for a standard normal z under bisquare weights: makes the
#: bisquare-weighted variance a consistent estimate of sigma^2.
_E_W = _normal_expectation(bisquare_weights)
BISQUARE_KAPPA = _normal_expectation(lambda z: bisquare_weights(z) * z**2) / _E_W
#: sd of log(sigma) from ``bisquare_scale``, times sqrt(n): E[chi^2] / E[z chi'(z)]^2 with
#: ``chi(z) = w(z) (z^2 - kappa)`` (the scale's estimating function).
_E_CHI2 = _normal_expectation(lambda z: (bisquare_weights(z) * (z**2 - BISQUARE_KAPPA)) ** 2)
_E_Z_CHI_PRIME = _normal_expectation(
    lambda z: (
        z
        * (
            2.0 * z * bisquare_weights(z)
            - 4.0 * z / BISQUARE_C**2 * (1.0 - (z / BISQUARE_C) ** 2) * (z**2 - BISQUARE_KAPPA)
        )
    )
)
BISQUARE_LOG_SD_FACTOR = float(np.sqrt(_E_CHI2) / abs(_E_Z_CHI_PRIME))


def bisquare_scale(
    residuals: FloatArray, extra_variances: FloatArray, dof_fraction: float, floor: float
) -> float:
    """M-estimate of sigma: bisquare-weighted mean of ``z^2`` equals ``kappa (n - p) / n``.

    Starts from ``robust_sigma`` (the median absolute residual) and iterates; outliers
    beyond 4.685 sigma get no weight, and at the normal the estimate is far more
    efficient than the median's 37 %. ``z = r / sqrt(sigma^2 + m^2)``.

    Example:
        >>> rng = np.random.default_rng(2)
        >>> r = np.concatenate([3.0 * rng.standard_normal(5000), np.full(50, 60.0)])
        >>> round(float(bisquare_scale(r, np.zeros(r.size), 1.0, 0.1)), 1)
        3.0
    """
    sigma = robust_sigma(residuals, extra_variances, dof_fraction, floor)
    target = BISQUARE_KAPPA * max(dof_fraction, 1e-6)
    for _ in range(100):
        total = sigma**2 + extra_variances
        z2 = residuals**2 / total
        weights = bisquare_weights(np.sqrt(z2))
        ratio = float(np.sum(weights * z2) / max(np.sum(weights), 1e-300)) / target
        # Scale only sigma^2's share of each reading's variance.
        share = float(np.mean(sigma**2 / total)) if sigma > 0 else 1.0
        updated = max(floor, sigma * np.sqrt(max(1.0 + share * (ratio - 1.0), 1e-6)))
        if abs(updated - sigma) < 1e-9 * max(sigma, 1.0):
            return updated
        sigma = updated
    return sigma


def session_chi_square_limit(dof: float) -> float:
    """The ``SESSION_CHI2_QUANTILE`` quantile of a chi-square with ``dof`` (fast ufunc).

    Example:
        >>> round(session_chi_square_limit(6), 2)
        22.46
    """
    return float(special.chdtri(dof, 1.0 - SESSION_CHI2_QUANTILE))


def session_weight(chi_square: float, dof: float) -> float:
    """1 for a session that fits as the model says; ``q / chi_square`` beyond quantile ``q``.

    The influence of a session bad throughout is then bounded: its weighted chi-square
    never exceeds ``q``, however far off its known position or EIRP is.

    Example:
        >>> session_weight(3.0, 6), round(session_weight(225.0, 6), 3)
        (1.0, 0.1)
    """
    if dof <= 0 or not np.isfinite(chi_square):
        return 1.0 if np.isfinite(chi_square) else 0.0
    limit = session_chi_square_limit(dof)
    return 1.0 if chi_square <= limit else limit / chi_square


def gauge_basis(count: int) -> FloatArray:
    """Orthonormal columns spanning the vectors of length ``count`` that sum to zero.

    Parameters ``b = Z a`` then have mean zero whatever ``a`` is: the fit's gauge.
    (The Helmert contrasts.)

    Example:
        >>> basis = gauge_basis(4)
        >>> basis.shape, np.allclose(basis.sum(axis=0), 0), np.allclose(basis.T @ basis, np.eye(3))
        ((4, 3), True, True)
    """
    basis = np.zeros((count, max(count - 1, 0)))
    for k in range(1, count):
        norm = np.sqrt(k * (k + 1.0))
        basis[:k, k - 1] = 1.0 / norm
        basis[k, k - 1] = -k / norm
    return basis


def robust_sigma(
    residuals: FloatArray, extra_variances: FloatArray, dof_fraction: float, floor: float
) -> float:
    """Sigma ``s`` such that ``median(|r| / sqrt(s^2 + m^2)) = 0.6745 sqrt(dof / n)``.

    The median absolute residual (no outlier can move it) of residuals whose own
    measurement variances ``m^2`` are known; ``dof_fraction = (n - p) / n`` corrects for
    the ``p`` fitted parameters, which pull residuals towards zero.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> r = 4.0 * rng.standard_normal(4000)
        >>> round(float(robust_sigma(r, np.zeros(4000), 1.0, 0.1)), 1)
        4.0
    """
    magnitude = np.abs(residuals)
    if magnitude.size == 0:
        return floor
    target = MEDIAN_ABS_NORMAL * np.sqrt(max(dof_fraction, 1e-6))

    if not np.any(extra_variances):
        return float(max(floor, float(np.median(magnitude)) / target))

    def median_z(sigma: float) -> float:
        return float(np.median(magnitude / np.sqrt(sigma**2 + extra_variances + 1e-300)))

    if median_z(floor) <= target:
        return floor
    low, high = floor, max(2.0 * floor, float(np.median(magnitude)) / target + 1.0)
    while median_z(high) > target:
        high *= 2.0
    while high - low > 1e-9 * high:  # bisection: median_z falls monotonically with sigma
        middle = 0.5 * (low + high)
        if median_z(middle) > target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def cluster_covariance(
    bread: FloatArray, scores: FloatArray, clusters: IntArray, n_parameters: int
) -> FloatArray:
    """Sandwich covariance with per-row ``scores`` (n, k) summed within clusters (CR1).

    Zero with fewer than two clusters: callers take the larger of this and the
    model-based covariance, so the model-based one then stands alone.

    ``bread`` is the inverse information. Rows in one cluster (sessions of one site)
    may be correlated in any way; clusters are taken as independent.
    """
    labels = np.unique(clusters)
    groups = len(labels)
    if groups < 2:
        return np.zeros_like(bread)  # one cluster: nothing to compare, the model-based rules
    summed = np.zeros((groups, scores.shape[1]))
    np.add.at(summed, np.searchsorted(labels, clusters), scores)
    rows = len(scores)
    correction = groups / (groups - 1.0) * (rows - 1.0) / max(rows - n_parameters, 1.0)
    return np.asarray(correction * bread @ (summed.T @ summed) @ bread, dtype=np.float64)


def interval(
    value: float, standard_error: float, confidence: float, *, log_scale: bool = False
) -> dict[str, float | list[float] | None]:
    """A JSON-safe estimate with its two-sided normal confidence interval.

    With ``log_scale`` the standard error is that of ``log(value)`` (for sigmas).

    Example:
        >>> interval(2.0, 0.5, 0.95)["ci"]
        [1.02, 2.98]
    """
    quantile = float(stats.norm.ppf(0.5 + confidence / 2.0))
    if not np.isfinite(standard_error):
        return {"value": _round(value), "se_log" if log_scale else "se": None, "ci": None}
    if log_scale:
        low, high = (
            value * np.exp(-quantile * standard_error),
            value * np.exp(quantile * standard_error),
        )
    else:
        low, high = value - quantile * standard_error, value + quantile * standard_error
    return {
        "value": _round(value),
        "se_log" if log_scale else "se": _round(standard_error),
        "ci": [_round(low), _round(high)],
    }


def _round(value: float) -> float:
    return round(float(value), 4)
