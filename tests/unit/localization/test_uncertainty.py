"""Known-answer tests for the ellipse, GDOP, the Cramér-Rao bound and the calibration."""

import numpy as np
import pytest

from heimdall.localization import Calibration, cramer_rao_bound
from heimdall.localization.tdoa import (
    SPEED_OF_LIGHT_M_PER_S,
    pair_variance_scale,
    pair_whitening,
)
from heimdall.localization.uncertainty import (
    CHI2_2DOF_95,
    confidence_ellipse,
    estimated_scale_inflation,
    horizontal_dilution_of_precision,
    loewner_max,
)

# Four receivers 50 km away on the diagonals of a transmitter at the origin.
DIAGONALS_M = 50e3 / np.sqrt(2.0) * np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=float)
ORIGIN = np.zeros(2)


def test_ellipse_axes_and_orientation_from_a_rotated_covariance() -> None:
    angle = np.radians(30.0)  # major axis 30 degrees east of north
    major = np.array([np.sin(angle), np.cos(angle)])
    minor = np.array([np.cos(angle), -np.sin(angle)])
    covariance = 900.0**2 * np.outer(major, major) + 200.0**2 * np.outer(minor, minor)
    ellipse = confidence_ellipse(covariance)
    assert ellipse.semi_major_m == pytest.approx(900.0 * np.sqrt(CHI2_2DOF_95))
    assert ellipse.semi_minor_m == pytest.approx(200.0 * np.sqrt(CHI2_2DOF_95))
    assert ellipse.orientation_deg == pytest.approx(30.0)
    # Grid north 1 degree west of true north turns the reported azimuth by +1 degree.
    assert confidence_ellipse(covariance, -1.0).orientation_deg == pytest.approx(31.0)


def test_chi_square_quantile() -> None:
    assert pytest.approx(-2.0 * np.log(0.05)) == CHI2_2DOF_95


def test_gdop_of_a_symmetric_geometry_is_one() -> None:
    # Rows [u_i, 1]: H^T H = diag(2, 2, 4), so HDOP = sqrt(1/2 + 1/2).
    assert horizontal_dilution_of_precision(ORIGIN, DIAGONALS_M) == pytest.approx(1.0)


def test_gdop_of_receivers_in_one_direction_is_infinite() -> None:
    same_direction = np.array([[10e3, 0.0], [20e3, 0.0], [40e3, 0.0]])
    assert horizontal_dilution_of_precision(ORIGIN, same_direction) == float("inf")


def test_tdoa_crb_of_a_symmetric_geometry() -> None:
    # Position information sum (u_i - mean u)(u_i - mean u)^T / (c sigma)^2 = 2 I / (c sigma)^2.
    sigma_s = 1e-6
    bound = cramer_rao_bound(
        ORIGIN, tdoa_receivers_en_m=DIAGONALS_M, tdoa_arrival_sigmas_s=np.full(4, sigma_s)
    )
    expected_variance_m2 = (SPEED_OF_LIGHT_M_PER_S * sigma_s) ** 2 / 2.0
    np.testing.assert_allclose(
        bound.covariance_m2, expected_variance_m2 * np.eye(2), atol=1e-9 * expected_variance_m2
    )
    assert bound.rms_error_m == pytest.approx(SPEED_OF_LIGHT_M_PER_S * sigma_s)


def test_rss_crb_of_a_symmetric_geometry() -> None:
    # Gradients (10 n / ln 10) u_i / d sum to zero, so P0 decouples: variance
    # sigma^2 d^2 / (2 (10 n / ln 10)^2) per axis.
    sigma_db, exponent, distance_m = 6.0, 2.0, 50e3
    bound = cramer_rao_bound(
        ORIGIN,
        rss_receivers_en_m=DIAGONALS_M,
        rss_sigmas_db=np.full(4, sigma_db),
        path_loss_exponent=exponent,
    )
    slope = 10.0 * exponent / np.log(10.0)
    expected_rms_m = sigma_db * distance_m / slope
    assert bound.rms_error_m == pytest.approx(expected_rms_m)


def test_fused_crb_is_tighter_than_either() -> None:
    rss = cramer_rao_bound(ORIGIN, rss_receivers_en_m=DIAGONALS_M, rss_sigmas_db=np.full(4, 6.0))
    tdoa = cramer_rao_bound(
        ORIGIN, tdoa_receivers_en_m=DIAGONALS_M, tdoa_arrival_sigmas_s=np.full(4, 3e-5)
    )
    both = cramer_rao_bound(
        ORIGIN,
        rss_receivers_en_m=DIAGONALS_M,
        rss_sigmas_db=np.full(4, 6.0),
        tdoa_receivers_en_m=DIAGONALS_M,
        tdoa_arrival_sigmas_s=np.full(4, 3e-5),
    )
    assert both.rms_error_m < min(rss.rms_error_m, tdoa.rms_error_m)
    # Isotropic informations add: 1 / rms^2 add up.
    assert both.rms_error_m**-2 == pytest.approx(rss.rms_error_m**-2 + tdoa.rms_error_m**-2)


def test_loewner_max_dominates_both() -> None:
    first = np.diag([4.0, 1.0])
    second = np.array([[1.0, 0.0], [0.0, 9.0]])
    combined = loewner_max(first, second)
    assert np.all(np.linalg.eigvalsh(combined - first) >= -1e-12)
    assert np.all(np.linalg.eigvalsh(combined - second) >= -1e-12)


def test_pair_variance_scale_matches_the_all_pairs_information() -> None:
    # Equal per-receiver noise: all pairs treated as independent overcount by N/2.
    assert pair_variance_scale(21, 7) == pytest.approx(7 / 2)
    assert pair_variance_scale(3, 4) == 1.0


def test_calibration_round_trips_through_json_and_rejects_typos() -> None:
    calibration = Calibration(
        version="fit-2024-05-01",
        path_loss_exponent=3.1,
        gain_offsets_db={"giovi": 2.5},
        clock_offsets_ns={"milano": -120.0},
    )
    assert Calibration.model_validate_json(calibration.model_dump_json()) == calibration
    assert calibration.clock_offset_s("milano") == pytest.approx(-1.2e-7)
    with pytest.raises(ValueError):
        Calibration.model_validate({"path_los_exponent": 3.0})


def test_pair_whitening_rebuilds_the_covariance_of_pairs_against_one_reference() -> None:
    # Equal per-receiver sigma s: pairs against receiver 0 have covariance s^2 (I + 1 1^T).
    sigma_m = 30.0
    first, second = np.array([1, 2, 3, 4]), np.zeros(4, dtype=np.intp)
    whitening = pair_whitening(first, second, np.full(4, np.sqrt(2.0) * sigma_m))
    expected = sigma_m**2 * (np.eye(4) + np.ones((4, 4)))
    np.testing.assert_allclose(np.linalg.inv(whitening.T @ whitening), expected, rtol=1e-6)


def test_whitened_reference_pair_residuals_have_unit_covariance() -> None:
    rng = np.random.default_rng(11)
    # Equal per-receiver timing noise (GPS-dominated), where the split is exact.
    receiver_sigmas_m = np.full(5, 50.0)
    errors_m = rng.standard_normal((40_000, 5)) * receiver_sigmas_m
    first, second = np.arange(1, 5), np.zeros(4, dtype=np.intp)
    residuals_m = errors_m[:, first] - errors_m[:, second]
    pair_sigmas_m = np.hypot(receiver_sigmas_m[first], receiver_sigmas_m[0])
    whitened = residuals_m @ pair_whitening(first, second, pair_sigmas_m).T
    np.testing.assert_allclose(np.cov(whitened.T), np.eye(4), atol=0.05)
    # Treated as independent, the common reference error stays correlated.
    independent = residuals_m / pair_sigmas_m
    assert np.min(np.corrcoef(independent.T)[np.triu_indices(4, 1)]) > 0.1


def test_pair_whitening_keeps_independent_sigmas_for_all_pairs() -> None:
    first, second = np.array([0, 0, 1]), np.array([1, 2, 2])
    sigmas_m = np.array([10.0, 20.0, 40.0])
    np.testing.assert_allclose(pair_whitening(first, second, sigmas_m), np.diag(1 / sigmas_m))


def test_scale_inflation_uses_the_f_quantile_of_an_estimated_scale() -> None:
    # chi2 / dof = 2 from 4 residuals: 2 x 2 F(2, 4) / chi2_2(95 %) = 2 x 13.89 / 5.99.
    assert estimated_scale_inflation(8.0, 4) == pytest.approx(2 * 2 * 6.9443 / 5.9915, rel=1e-4)
    # Residuals no larger than the model's sigmas keep the model's region.
    assert estimated_scale_inflation(1.0, 4) == 1.0
    assert estimated_scale_inflation(3.0, 0) == 1.0
    # Many residuals: the F quantile tends to the chi-square one.
    assert estimated_scale_inflation(2000.0, 1000) == pytest.approx(2.0, rel=0.01)


def test_estimated_scale_regions_cover_when_the_model_sigma_is_too_small() -> None:
    """A linear 2-D fit from 6 readings whose noise is 3x the model's sigma: scaling by
    chi2 / dof alone (the old rule) covers ~89 %, the F quantile the nominal 95 %."""
    rng = np.random.default_rng(3)
    design = np.column_stack(
        [np.ones(6), np.arange(6.0), np.arange(6.0) ** 2 / 5, np.cos(np.arange(6.0))]
    )
    trials, old, new = 4000, 0, 0
    information_inverse = np.linalg.inv(design.T @ design)
    for _ in range(trials):
        noise = 3.0 * rng.standard_normal(6)  # the model believes sigma = 1
        estimate = information_inverse @ design.T @ noise
        residuals = noise - design @ estimate
        chi_square, dof = float(residuals @ residuals), 6 - 4
        position = estimate[1:3]
        covariance = information_inverse[1:3, 1:3]
        mahalanobis = float(position @ np.linalg.solve(covariance, position))
        old += mahalanobis / max(1.0, chi_square / dof) <= CHI2_2DOF_95
        new += mahalanobis / estimated_scale_inflation(chi_square, dof) <= CHI2_2DOF_95
    assert old / trials < 0.92
    assert new / trials == pytest.approx(0.95, abs=0.012)


def test_whitening_with_the_receivers_own_sigmas_when_they_differ() -> None:
    rng = np.random.default_rng(12)
    # A noisy reference (the strongest receiver is often the one with the worst echoes)
    # and quiet partners, each pair with a correlation error of its own.
    receiver_sigmas_m = np.array([600.0, 30.0, 30.0, 240.0, 90.0])
    own_sigmas_m = np.array([20.0, 60.0, 20.0, 40.0])
    errors_m = rng.standard_normal((40_000, 5)) * receiver_sigmas_m
    first, second = np.arange(1, 5), np.zeros(4, dtype=np.intp)
    residuals_m = (
        errors_m[:, first] - errors_m[:, second] + rng.standard_normal((40_000, 4)) * own_sigmas_m
    )
    pair_sigmas_m = np.sqrt(
        receiver_sigmas_m[first] ** 2 + receiver_sigmas_m[0] ** 2 + own_sigmas_m**2
    )
    whitened = residuals_m @ pair_whitening(first, second, pair_sigmas_m, receiver_sigmas_m).T
    np.testing.assert_allclose(np.cov(whitened.T), np.eye(4), atol=0.05)
    # Split as if the receivers were alike, the reference's error is half common and
    # half each pair's own: the whitened pairs stay correlated.
    alike = residuals_m @ pair_whitening(first, second, pair_sigmas_m).T
    assert np.max(np.abs(np.cov(alike.T) - np.eye(4))) > 0.3
