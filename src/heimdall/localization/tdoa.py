"""Time-difference-of-arrival (TDOA) model: hyperbolic range differences.

An observation for the receiver pair ``(i, j)`` is ``dt_ij = t_i - t_j`` (seconds), the
arrival time at ``i`` minus the arrival time at ``j``, each corrected for the receiver's
calibrated clock offset. The model is ``c dt_ij = d_i - d_j + e_ij`` with
``e_ij ~ N(0, (c sigma_ij)^2)``: every candidate position lies on a hyperbola per pair.

Pairs built from the same receivers are not independent: with ``N`` receivers only
``N - 1`` differences are. When all ``N (N - 1) / 2`` pairs are supplied, treating them as
independent overstates the information by exactly ``N / 2`` (for equal per-receiver
timing noise), so each pair's variance is multiplied by ``n_pairs / (N - 1)``.

``N - 1`` pairs against one reference receiver (what the service forms) are independent
in number but still correlated: the reference's own timing error (its GPS stamp, its
correlation noise) shifts every pair alike. Treated as independent, that common shift
is under-weighted by ``N / 2`` in variance and the ellipse is too small in the direction
it moves the fix. ``pair_whitening`` rebuilds the pair covariance from per-receiver
variances and whitens the residuals with it. Given the receivers' own timing sigmas
(``localize`` passes the calibration's), the covariance is the one the calibration fitted
them under (``training.timing_fit``): ``diag(own^2) + M diag(s^2) M^T``, ``M`` the pairs'
+1/-1 incidence, a pair's own part what its sigma holds beyond its two receivers'.
Without them each receiver gets half the smallest variance of the pairs it is in, which
is exact only when the receivers' timing errors are alike: with fitted sigmas of
0.14-2.9 us it gave a noisy reference half its variance as common and half as each
pair's own, and a quiet one up to 3.7 times its sigma (docs/localization.md, "The pair
covariance the calibration was fitted under").

All functions are pure numpy; ranges in metres, times in seconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.linalg import solve_triangular

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


def pair_variance_scale(n_pairs: int, n_receivers: int) -> float:
    """Variance inflation for pairs that share receivers (see the module docstring).

    Example:
        >>> pair_variance_scale(21, 7)  # all pairs of seven receivers
        3.5
        >>> pair_variance_scale(6, 7)  # one reference receiver
        1.0
    """
    independent_pairs = max(n_receivers - 1, 1)
    return max(n_pairs / independent_pairs, 1.0)


def range_differences_m(ranges_m: FloatArray, first: IndexArray, second: IndexArray) -> FloatArray:
    """``d_first - d_second`` for every pair, shape ``(..., n_pairs)``."""
    return np.asarray(ranges_m[..., first] - ranges_m[..., second], dtype=np.float64)


def pair_whitening(
    first: IndexArray,
    second: IndexArray,
    sigmas_m: FloatArray,
    receiver_sigmas_m: FloatArray | None = None,
) -> FloatArray:
    """Matrix ``W`` such that ``W r`` has unit covariance for pair residuals ``r``.

    For ``N - 1`` pairs spanning ``N`` receivers the covariance is built from
    per-receiver variances (see the module docstring): ``receiver_sigmas_m[k]`` is
    receiver ``k``'s own sigma (indexed as ``first`` and ``second``), the part of a
    pair's sigma that every pair of that receiver shares; without it, each receiver
    gets half the smallest variance of its pairs. Otherwise (all pairs, whose
    covariance is singular and which ``pair_variance_scale`` handles) it is
    ``diag(1 / sigma)``.

    Example:
        >>> import numpy as np
        >>> w = pair_whitening(np.array([1, 2]), np.array([0, 0]), np.array([2.0, 2.0]))
        >>> np.round(np.linalg.inv(w.T @ w), 6).tolist()  # the pair covariance
        [[4.0, 2.0], [2.0, 4.0]]
        >>> w = pair_whitening(
        ...     np.array([1, 2]), np.array([0, 0]), np.array([2.0, 2.0]), np.array([1.5, 1.0, 1.0])
        ... )
        >>> np.round(np.linalg.inv(w.T @ w), 6).tolist()  # receiver 0 shares 1.5^2
        [[4.0, 2.25], [2.25, 4.0]]
    """
    sigmas_m = np.asarray(sigmas_m, dtype=np.float64)
    receivers = np.union1d(first, second)
    if len(sigmas_m) != len(receivers) - 1:
        return np.diag(1.0 / sigmas_m)
    column = {int(r): k for k, r in enumerate(receivers)}
    incidence = np.zeros((len(sigmas_m), len(receivers)))
    incidence[np.arange(len(sigmas_m)), [column[int(i)] for i in first]] = 1.0
    incidence[np.arange(len(sigmas_m)), [column[int(j)] for j in second]] = -1.0
    variances_m2 = np.square(sigmas_m)
    if receiver_sigmas_m is not None:
        receiver_variances_m2 = np.square(np.asarray(receiver_sigmas_m, dtype=np.float64))[
            receivers
        ]
    else:
        in_pair = incidence != 0.0
        receiver_variances_m2 = 0.5 * np.min(
            np.where(in_pair, variances_m2[:, np.newaxis], np.inf), axis=0
        )
    shared_m2 = (incidence * receiver_variances_m2) @ incidence.T
    # A pair's own part: never negative, should the receivers' sigmas exceed its own.
    own_m2 = np.maximum(variances_m2 - np.diag(shared_m2), 0.0)
    # A tiny ridge keeps the Cholesky factor defined if the pairs do not form a tree.
    covariance_m2 = shared_m2 + np.diag(own_m2 + 1e-9 * variances_m2)
    lower = np.linalg.cholesky(covariance_m2)
    return np.asarray(solve_triangular(lower, np.eye(len(sigmas_m)), lower=True), dtype=np.float64)


def tdoa_normalised_residuals(
    ranges_m: FloatArray,
    first: IndexArray,
    second: IndexArray,
    observed_range_differences_m: FloatArray,
    whitening_per_m: FloatArray,
) -> FloatArray:
    """Whitened (observed - predicted range difference), shape ``(..., n_pairs)``.

    ``whitening_per_m`` is ``pair_whitening``'s matrix; for independent pairs it is
    ``diag(1 / sigma)`` and this is the residual over its sigma.
    """
    predicted_m = range_differences_m(ranges_m, first, second)
    return np.asarray(
        (observed_range_differences_m - predicted_m) @ whitening_per_m.T, dtype=np.float64
    )


def tdoa_fisher_information(
    transmitter_en_m: FloatArray,
    receivers_en_m: FloatArray,
    arrival_sigmas_s: FloatArray,
) -> FloatArray:
    """Fisher information of (east, north, emission time) from arrival times, ``(3, 3)``.

    Arrival times ``t_i = t0 + d_i / c`` with independent errors per receiver carry the
    same information about the position as every pairwise difference used jointly, so
    this is the bound for TDOA however the pairs are formed.
    """
    offsets_m = transmitter_en_m - receivers_en_m
    ranges_m = np.maximum(np.linalg.norm(offsets_m, axis=-1), 1.0)
    unit_vectors = offsets_m / ranges_m[:, np.newaxis]
    gradients = np.column_stack([unit_vectors / SPEED_OF_LIGHT_M_PER_S, np.ones(len(offsets_m))])
    weights = 1.0 / np.square(arrival_sigmas_s)
    return np.asarray((gradients * weights[:, np.newaxis]).T @ gradients, dtype=np.float64)
