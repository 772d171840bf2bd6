"""Received-power (RSS) model: log-distance path loss with an unknown transmitter power.

Receiver ``i`` at slant range ``d_i`` sees

    P_i = P0 - 10 n log10(max(d_i, d0) / d0) + g_i + s_i,   s_i ~ N(0, sigma_i^2)

with ``P0`` the (unknown) power at the reference distance ``d0``, ``n`` the path-loss
exponent, ``g_i`` the receiver's gain offset and ``sigma_i^2`` the shadowing variance
plus the measurement variance. For a fixed candidate position the maximum-likelihood
``P0`` is the weighted mean of ``P_i - g_i + 10 n log10(d_i / d0)``; here the weights
are re-computed a few times with a soft-L1 influence so one faded or saturated
receiver does not set ``P0`` for everyone (iteratively reweighted least squares). The
refinement needs that robust ``P0`` exactly, not after a few passes:
``soft_l1_source_power_dbm`` solves for it at one position.

All functions are pure numpy: ranges in metres, powers in dBm, sigmas in dB.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# IRLS passes for the robust P0; three already bring a +30 dB outlier's pull below 1 dB.
_ROBUST_P0_PASSES = 3
# Exact robust P0: Newton stops after a step below this, which leaves an error below
# 1e-9 dB. The step cap only guards against a bracket that halves without end.
_SOURCE_POWER_STEP_TOLERANCE_DB = 1e-4
_SOURCE_POWER_MAX_STEPS = 60


def soft_l1(z_squared: FloatArray) -> FloatArray:
    """Soft-L1 loss ``2 (sqrt(1 + z^2) - 1)``: quadratic near zero, linear in the tails.

    It is scipy's ``soft_l1`` loss; using the same one on the grid and in the refinement
    keeps the two stages maximising the same objective.
    """
    return np.asarray(2.0 * (np.sqrt(1.0 + z_squared) - 1.0), dtype=np.float64)


def _soft_l1_weight(z_squared: FloatArray) -> FloatArray:
    # d(soft_l1)/d(z^2) / 1: the IRLS weight relative to plain least squares.
    return np.asarray(1.0 / np.sqrt(1.0 + z_squared), dtype=np.float64)


def path_loss_db(
    ranges_m: FloatArray, path_loss_exponent: float, reference_distance_m: float
) -> FloatArray:
    """Log-distance path loss relative to the reference distance, floored at 0 dB.

    Example:
        >>> float(path_loss_db(np.array([1000.0]), 2.0, 100.0)[0])
        20.0
        >>> float(path_loss_db(np.array([0.0]), 2.0, 100.0)[0])  # a receiver at the source
        0.0
    """
    floored_m = np.maximum(ranges_m, reference_distance_m)
    return np.asarray(
        10.0 * path_loss_exponent * np.log10(floored_m / reference_distance_m), dtype=np.float64
    )


def implied_source_powers_dbm(
    ranges_m: FloatArray,
    powers_dbm: FloatArray,
    gains_db: FloatArray,
    path_loss_exponent: float,
    reference_distance_m: float,
) -> FloatArray:
    """The ``P0`` each reading implies at these ranges: ``P_i - g_i + path loss``."""
    return np.asarray(
        powers_dbm - gains_db + path_loss_db(ranges_m, path_loss_exponent, reference_distance_m),
        dtype=np.float64,
    )


def robust_source_power_dbm(
    ranges_m: FloatArray,
    powers_dbm: FloatArray,
    sigmas_db: FloatArray,
    gains_db: FloatArray,
    path_loss_exponent: float,
    reference_distance_m: float,
) -> FloatArray:
    """Robust estimate of ``P0`` for each candidate position.

    ``ranges_m`` has shape ``(..., n_receivers)``; the result has shape ``(...)``.
    """
    implied_p0_dbm = implied_source_powers_dbm(
        ranges_m, powers_dbm, gains_db, path_loss_exponent, reference_distance_m
    )
    inverse_variance = 1.0 / np.square(sigmas_db)
    # Start from the median, which an outlier cannot drag, then reweight.
    p0_dbm = np.median(implied_p0_dbm, axis=-1)
    for _ in range(_ROBUST_P0_PASSES):
        z_squared = np.square(implied_p0_dbm - p0_dbm[..., np.newaxis]) * inverse_variance
        weights = inverse_variance * _soft_l1_weight(z_squared)
        p0_dbm = np.sum(weights * implied_p0_dbm, axis=-1) / np.sum(weights, axis=-1)
    return np.asarray(p0_dbm, dtype=np.float64)


def soft_l1_source_power_dbm(
    implied_p0_dbm: FloatArray, sigmas_db: FloatArray, start_dbm: float
) -> float:
    """The ``P0`` minimising ``sum soft_l1(((implied - P0) / sigma)^2)``, at one position.

    The sum is convex in ``P0`` and its minimum lies between the smallest and largest
    implied value: Newton steps from ``start_dbm`` (a nearby position's answer is a good
    one), with a bisection of that bracket whenever a step would leave it.

    Example:
        >>> implied_dbm = np.array([-50.0, -52.0, -20.0])
        >>> round(soft_l1_source_power_dbm(implied_dbm, np.full(3, 6.0), 0.0), 2)
        -47.53
        >>> round(float(np.mean(implied_dbm)), 2)  # the -20 dBm reading pulls a mean far more
        -40.67
    """
    inverse_sigmas = 1.0 / sigmas_db
    inverse_variances = np.square(inverse_sigmas)
    low_dbm, high_dbm = float(implied_p0_dbm.min()), float(implied_p0_dbm.max())
    p0_dbm = min(max(start_dbm, low_dbm), high_dbm)
    for _ in range(_SOURCE_POWER_MAX_STEPS):
        z = (implied_p0_dbm - p0_dbm) * inverse_sigmas
        one_plus_z_squared = 1.0 + np.square(z)
        weights = 1.0 / np.sqrt(one_plus_z_squared)
        # Minus the cost's slope and its curvature, both in P0.
        slope = float((z * weights) @ inverse_sigmas)
        curvature = float((weights / one_plus_z_squared) @ inverse_variances)
        if slope > 0.0:
            low_dbm = p0_dbm
        else:
            high_dbm = p0_dbm
        next_dbm = p0_dbm + slope / curvature
        if not low_dbm <= next_dbm <= high_dbm:
            next_dbm = 0.5 * (low_dbm + high_dbm)
        elif abs(next_dbm - p0_dbm) < _SOURCE_POWER_STEP_TOLERANCE_DB:
            # Quadratic convergence: after a Newton step this small the error is tiny.
            return next_dbm
        p0_dbm = next_dbm
    return p0_dbm


def rss_normalised_residuals(
    ranges_m: FloatArray,
    source_power_dbm: FloatArray | float,
    powers_dbm: FloatArray,
    sigmas_db: FloatArray,
    gains_db: FloatArray,
    path_loss_exponent: float,
    reference_distance_m: float,
) -> FloatArray:
    """(observed - predicted) / sigma for every receiver, shape like ``ranges_m``."""
    predicted_dbm = (
        np.asarray(source_power_dbm, dtype=np.float64)[..., np.newaxis]
        - path_loss_db(ranges_m, path_loss_exponent, reference_distance_m)
        + gains_db
    )
    return np.asarray((powers_dbm - predicted_dbm) / sigmas_db, dtype=np.float64)


def ceiling_excesses(
    ranges_m: FloatArray,
    source_power_dbm: FloatArray | float,
    ceilings_dbm: FloatArray,
    sigmas_db: FloatArray,
    gains_db: FloatArray,
    path_loss_exponent: float,
    reference_distance_m: float,
) -> FloatArray:
    """How far the predicted power exceeds each not-hearing receiver's ceiling, in sigmas.

    A receiver that does not hear the transmitter says only that its received power was
    not above a level (a censored reading): zero while the prediction stays below it,
    ``(predicted - ceiling) / sigma`` above. Squared, this one-sided hinge is the
    Gaussian tail's exponent; the exact censored likelihood, ``log Phi(-excess)``, differs
    from it by less than a constant plus ``log(excess)``, and the hinge keeps the
    least-squares form every other residual has.

    Example:
        >>> ceilings = ceiling_excesses(
        ...     np.array([1000.0, 1000.0]), 0.0, np.array([-10.0, -30.0]), np.full(2, 5.0),
        ...     np.zeros(2), 2.0, 100.0)
        >>> ceilings.tolist()  # predicted -20 dBm: 10 dB under one ceiling, 10 above the other
        [0.0, 2.0]
    """
    below_sigmas = rss_normalised_residuals(
        ranges_m,
        source_power_dbm,
        ceilings_dbm,
        sigmas_db,
        gains_db,
        path_loss_exponent,
        reference_distance_m,
    )
    return np.asarray(np.maximum(-below_sigmas, 0.0), dtype=np.float64)


def rss_fisher_information(
    transmitter_en_m: FloatArray,
    receivers_en_m: FloatArray,
    sigmas_db: FloatArray,
    path_loss_exponent: float,
) -> FloatArray:
    """Fisher information of (east, north, P0) from received powers, shape ``(3, 3)``.

    ``d mu_i / d position = -(10 n / ln 10) (p - r_i) / d_i^2`` and ``d mu_i / d P0 = 1``;
    horizontal geometry only (the transmitter height is assumed, not estimated).
    """
    offsets_m = transmitter_en_m - receivers_en_m
    squared_ranges_m2 = np.maximum(np.sum(np.square(offsets_m), axis=-1), 1.0)
    slope_db = 10.0 * path_loss_exponent / np.log(10.0)
    gradients = np.column_stack(
        [-slope_db * offsets_m / squared_ranges_m2[:, np.newaxis], np.ones(len(offsets_m))]
    )
    weights = 1.0 / np.square(sigmas_db)
    return np.asarray((gradients * weights[:, np.newaxis]).T @ gradients, dtype=np.float64)
