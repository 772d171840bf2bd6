"""Loss past the radio horizon in the power model (issue 15: rss fixes outside the hull)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from heimdall.localization import Calibration, PowerObservation, Receiver, localize
from heimdall.localization import horizon as horizon_module
from heimdall.localization.fusion import (
    Problem,
    RssBlock,
    normalised_residuals,
    residual_jacobian,
)
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.horizon import HorizonLoss, horizon_features, radio_horizon_m
from heimdall.localization.refinement import power_cost
from heimdall.localization.rss import path_loss_db

from .synthetic import error_m, true_ranges_m

STEP_DB = 25.0
SLOPE_DB_PER_KM = 0.8
SOURCE_DBM = 60.0
EXPONENT = 2.5


def test_docstring_examples() -> None:
    result = doctest.testmod(horizon_module)
    assert result.attempted > 0 and result.failed == 0


def test_horizon_distance_is_the_smooth_earth_formula() -> None:
    # 4/3 Earth: sqrt(2 k R h) is 4.12 km per sqrt(m); 100 m and 400 m: 41.2 + 82.4 km.
    assert radio_horizon_m(100.0, np.array([400.0]))[0] == pytest.approx(123_640.0, rel=1e-3)
    # A height at or below the ground counts as a 1 m mast, not a negative root.
    assert np.isfinite(radio_horizon_m(-5.0, np.array([0.0]))[0])


def test_loss_is_zero_inside_and_step_plus_slope_far_beyond() -> None:
    loss = HorizonLoss(STEP_DB, SLOPE_DB_PER_KM * 1e-3, transition_m=5e3)
    horizons_m = np.array([100e3, 100e3])
    inside, beyond = loss.loss_db(np.array([60e3, 160e3]), horizons_m)
    assert inside == pytest.approx(0.0, abs=1e-2)
    assert beyond == pytest.approx(STEP_DB + SLOPE_DB_PER_KM * 60.0, abs=0.01)
    assert not HorizonLoss().active
    assert np.all(HorizonLoss().loss_db(np.array([1e6]), np.array([1.0])) == 0.0)


@pytest.mark.parametrize("transition_m", [5e3, horizon_module.HORIZON_TRANSITION_M])
def test_derivatives_match_finite_differences(transition_m: float) -> None:
    loss = HorizonLoss(STEP_DB, SLOPE_DB_PER_KM * 1e-3, transition_m)
    ranges_m = np.linspace(80e3, 130e3, 11)
    horizons_m = np.full_like(ranges_m, 100e3)
    slope, bend = loss.derivatives(ranges_m, horizons_m)
    step_m = 1.0
    up = loss.loss_db(ranges_m + step_m, horizons_m)
    down = loss.loss_db(ranges_m - step_m, horizons_m)
    np.testing.assert_allclose(slope, (up - down) / (2 * step_m), rtol=1e-5, atol=1e-12)
    slope_up = loss.derivatives(ranges_m + step_m, horizons_m)[0]
    slope_down = loss.derivatives(ranges_m - step_m, horizons_m)[0]
    np.testing.assert_allclose(bend, (slope_up - slope_down) / (2 * step_m), rtol=1e-4, atol=1e-12)


def test_features_are_linear_in_step_and_slope() -> None:
    ranges_m, horizons_m = np.array([90e3, 140e3]), np.array([100e3, 100e3])
    features = horizon_features(ranges_m, horizons_m)
    loss = HorizonLoss(STEP_DB, SLOPE_DB_PER_KM * 1e-3).loss_db(ranges_m, horizons_m)
    np.testing.assert_allclose(features @ [STEP_DB, SLOPE_DB_PER_KM * 1e-3], loss)


#: Low sites (30-80 m) 60-70 km apart: a transmitter at 50 m sees each within ~50-65 km.
LOW_SITES = [
    Receiver(id="w", latitude=45.0, longitude=7.6, altitude_m=50.0),
    Receiver(id="c", latitude=45.0, longitude=8.0, altitude_m=30.0),
    Receiver(id="e", latitude=45.0, longitude=8.4, altitude_m=80.0),
    Receiver(id="n", latitude=45.5, longitude=8.0, altitude_m=60.0),
    Receiver(id="s", latitude=44.5, longitude=8.0, altitude_m=40.0),
    Receiver(id="ne", latitude=45.4, longitude=8.5, altitude_m=70.0),
]
TRUTH = (44.95, 7.45)  # west of the network, beyond the horizon of the east and north-east
TRANSMITTER_M = 50.0


def horizon_powers(calibration: Calibration) -> list[PowerObservation]:
    """Readings of the log-distance law plus the horizon loss, no noise."""
    ranges_m = true_ranges_m(LOW_SITES, *TRUTH, TRANSMITTER_M)
    horizons_m = radio_horizon_m(TRANSMITTER_M, np.array([r.altitude_m for r in LOW_SITES]))
    loss = HorizonLoss(STEP_DB, SLOPE_DB_PER_KM * 1e-3).loss_db(ranges_m, horizons_m)
    assert np.count_nonzero(ranges_m > horizons_m + 10e3) >= 2  # the case is what it says
    powers = SOURCE_DBM - path_loss_db(ranges_m, EXPONENT, calibration.reference_distance_m) - loss
    return [
        PowerObservation(receiver_id=r.id, power=float(p))
        for r, p in zip(LOW_SITES, powers, strict=True)
    ]


def test_a_fitted_horizon_loss_puts_the_fix_back_on_the_truth() -> None:
    plain = Calibration(path_loss_exponent=EXPONENT, shadowing_sigma_db=4.0)
    aware = plain.model_copy(
        update={"beyond_horizon_db": STEP_DB, "beyond_horizon_db_per_km": SLOPE_DB_PER_KM}
    )
    powers = horizon_powers(plain)
    fixes = {
        name: localize(
            LOW_SITES,
            powers,
            [],
            calibration,
            method="rss",
            transmitter_altitude_m=TRANSMITTER_M,
            exclude_power_outliers=False,
        )
        for name, calibration in (("plain", plain), ("aware", aware))
    }
    # The log-distance law explains the far receivers' missing 25-40 dB by moving the
    # source away from them; with the horizon's loss the noise-free readings fit exactly.
    assert error_m(fixes["plain"], *TRUTH) > 10e3
    assert error_m(fixes["aware"], *TRUTH) < 200.0


def test_ground_wave_fixes_ignore_the_line_of_sight_horizon() -> None:
    aware = Calibration(beyond_horizon_db=STEP_DB, beyond_horizon_db_per_km=SLOPE_DB_PER_KM)
    plain = Calibration()
    powers = horizon_powers(plain)
    fixes = [
        localize(LOW_SITES, powers, [], c, method="rss", frequency_hz=7e6) for c in (aware, plain)
    ]
    assert fixes[0].latitude == fixes[1].latitude and fixes[0].longitude == fixes[1].longitude


def _problem() -> Problem:
    frame = LocalFrame(45.0, 8.0, 0.0)
    receivers_enu_m = np.column_stack(
        frame.geodetic_to_enu(
            [r.latitude for r in LOW_SITES],
            [r.longitude for r in LOW_SITES],
            [r.altitude_m for r in LOW_SITES],
        )
    )
    powers = np.array([p.power for p in horizon_powers(Calibration())]) + np.linspace(-3, 3, 6)
    rss = RssBlock(
        receiver_indices=np.arange(6, dtype=np.intp),
        powers_dbm=powers,
        sigmas_db=np.full(6, 4.0),
        gains_db=np.zeros(6),
        path_loss_exponent=EXPONENT,
        reference_distance_m=100.0,
        horizon=HorizonLoss(STEP_DB, SLOPE_DB_PER_KM * 1e-3),
        horizons_m=radio_horizon_m(TRANSMITTER_M, np.array([r.altitude_m for r in LOW_SITES])),
    )
    return Problem(frame, receivers_enu_m, TRANSMITTER_M, rss, None)


@pytest.mark.parametrize("where_m", [(-40e3, -4e3), (-20e3, 10e3), (5e3, 0.0)])
def test_power_cost_gradient_and_hessian_include_the_horizon(where_m: tuple[float, float]) -> None:
    problem = _problem()
    x_m, y_m = where_m
    here = power_cost(problem, x_m, y_m, 0.0)
    step_m = 20.0
    gradient = np.zeros(2)
    hessian = np.zeros((2, 2))
    for axis in range(2):
        offset = np.zeros(2)
        offset[axis] = step_m
        up = power_cost(problem, x_m + offset[0], y_m + offset[1], here.source_power_dbm)
        down = power_cost(problem, x_m - offset[0], y_m - offset[1], here.source_power_dbm)
        gradient[axis] = (up.cost - down.cost) / (2 * step_m)
        hessian[axis] = (up.gradient_per_m - down.gradient_per_m) / (2 * step_m)
    np.testing.assert_allclose(here.gradient_per_m, gradient, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(here.hessian_per_m2, hessian, rtol=2e-3, atol=1e-11)


def test_residual_jacobian_includes_the_horizon() -> None:
    problem = _problem()
    parameters = np.array([-30e3, -5e3, 40.0])
    jacobian = residual_jacobian(problem, parameters)
    step = np.array([10.0, 10.0, 1e-3])
    for column in range(3):
        offset = np.zeros(3)
        offset[column] = step[column]
        numeric = (
            normalised_residuals(problem, parameters + offset)
            - normalised_residuals(problem, parameters - offset)
        ) / (2 * step[column])
        np.testing.assert_allclose(jacobian[:, column], numeric, rtol=1e-3, atol=1e-9)
