"""The calibration fit learns the loss past the radio horizon (issue 15)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heimdall.localization import Calibration, PowerObservation
from heimdall.localization.horizon import HORIZON_FIT_TRANSITION_M, HorizonLoss, radio_horizon_m
from heimdall.training.calibration_fit import KnownSourceSession, fit_calibration
from heimdall.training.fit_data import receiver_ranges_m
from tests.unit.training.model_sessions import draw_truth, model_session

STEP_DB = 20.0
SLOPE_DB_PER_KM = 1.0


def far_position(rng: np.random.Generator) -> tuple[float, float]:
    """Half the sessions 100-170 km out, so that the far receivers are past the horizon."""
    bearing = rng.uniform(0.0, 2 * np.pi)
    distance_deg = rng.uniform(0.9, 1.5)
    return 45.0 + distance_deg * np.cos(bearing), 8.0 + 1.4 * distance_deg * np.sin(bearing)


def with_horizon_loss(session: KnownSourceSession, loss: HorizonLoss) -> KnownSourceSession:
    ranges = receiver_ranges_m(session)
    heights = {r.id: r.altitude_m for r in session.receivers}
    powers = []
    for observation in session.powers:
        horizon_m = radio_horizon_m(
            session.source_altitude_m, np.array([heights[observation.receiver_id]])
        )
        extra_db = float(loss.loss_db(np.array([ranges[observation.receiver_id]]), horizon_m)[0])
        powers.append(
            PowerObservation(
                receiver_id=observation.receiver_id, power=observation.power - extra_db
            )
        )
    return dataclasses.replace(session, powers=powers)


def sessions(loss: HorizonLoss, seed: int = 3) -> list[KnownSourceSession]:
    rng = np.random.default_rng(seed)
    truth = draw_truth(rng)
    return [
        with_horizon_loss(
            model_session(
                truth,
                rng,
                f"task-{k:03d}",
                position=far_position(rng) if k % 2 else None,
                eirp_known=k % 3 == 0,
            ),
            loss,
        )
        for k in range(60)
    ]


def test_recovers_the_step_and_slope_and_an_unbiased_exponent() -> None:
    fit = fit_calibration(
        sessions(HorizonLoss(STEP_DB, SLOPE_DB_PER_KM * 1e-3, HORIZON_FIT_TRANSITION_M)),
        version="t",
        prior=Calibration(),
    )
    calibration = fit.calibration
    assert calibration.beyond_horizon_db == pytest.approx(STEP_DB, abs=4.0)
    assert calibration.beyond_horizon_db_per_km == pytest.approx(SLOPE_DB_PER_KM, abs=0.3)
    # Without the horizon term the far links' 20-80 dB would bend the exponent upwards.
    assert calibration.path_loss_exponent == pytest.approx(2.8, abs=0.25)
    assert calibration.shadowing_sigma_db < 5.5


def test_no_horizon_loss_fits_about_none() -> None:
    calibration = fit_calibration(
        sessions(HorizonLoss()), version="t", prior=Calibration()
    ).calibration
    assert calibration.beyond_horizon_db < 4.0
    assert calibration.beyond_horizon_db_per_km < 0.3


def test_sessions_that_never_reach_the_horizon_leave_it_off() -> None:
    rng = np.random.default_rng(5)
    truth = draw_truth(rng)
    near = [model_session(truth, rng, f"t{k}", position=(45.0, 8.0)) for k in range(12)]
    calibration = fit_calibration(near, version="t", prior=Calibration()).calibration
    assert calibration.beyond_horizon_db == 0.0 and calibration.beyond_horizon_db_per_km == 0.0


def test_the_report_says_what_the_fit_kept() -> None:
    fit = fit_calibration(
        sessions(HorizonLoss(STEP_DB, SLOPE_DB_PER_KM * 1e-3, HORIZON_FIT_TRANSITION_M)),
        version="t",
        prior=Calibration(),
    )
    parameters = fit.report["parameters"]
    assert parameters["beyond_horizon_db"]["value"] == pytest.approx(
        fit.calibration.beyond_horizon_db, abs=1e-3
    )
    assert parameters["beyond_horizon_db"]["se"] > 0.0
    assert parameters["beyond_horizon_db_per_km"]["value"] == pytest.approx(
        fit.calibration.beyond_horizon_db_per_km, abs=1e-3
    )
