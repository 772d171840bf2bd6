"""Time-difference-of-arrival (TDOA) model: hyperbolic range differences.

An observation for the receiver pair ``(i, j)`` is ``dt_ij = t_i - t_j`` (seconds), the
arrival time at ``i`` minus the arrival time at ``j``, each corrected for the receiver's
calibrated clock offset. The model is ``c dt_ij = d_i - d_j + e_ij`` with
``e_ij ~ N(0, (c sigma_ij)^2)``: every candidate position lies on a hyperbola per pair.

Pairs built from the same receivers are not independent: with ``N`` receivers only
``N - 1`` differences are. When all ``N (N - 1) / 2`` pairs are supplied, treating them as
independent overstates the information by exactly ``N / 2`` (for equal per-receiver
timing noise), so each pair's variance is multiplied by ``n_pairs / (N - 1)``; for a set
of ``N - 1`` reference pairs the factor is 1. This keeps the ellipse honest without
needing the full pair covariance, which the correlator does not report.

All functions are pure numpy; ranges in metres, times in seconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

SPEED_OF_LIGHT_M_PER_S = 299_792_458.0


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


def tdoa_normalised_residuals(
    ranges_m: FloatArray,
    first: IndexArray,
    second: IndexArray,
    observed_range_differences_m: FloatArray,
    sigmas_m: FloatArray,
) -> FloatArray:
    """(observed - predicted range difference) / sigma, shape ``(..., n_pairs)``."""
    predicted_m = range_differences_m(ranges_m, first, second)
    return np.asarray((observed_range_differences_m - predicted_m) / sigmas_m, dtype=np.float64)


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
