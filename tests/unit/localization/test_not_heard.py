"""Receivers that do not hear the transmitter, as ceilings on the power fit (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.localization import (
    Calibration,
    NotHeardObservation,
    PowerObservation,
    Receiver,
    localize,
)
from heimdall.localization.fusion import (
    Grid,
    Problem,
    RssBlock,
    grid_log_likelihood,
    normalised_residuals,
    residual_jacobian,
)
from heimdall.localization.geodesy import LocalFrame, slant_ranges_m
from heimdall.localization.rss import path_loss_db, robust_source_power_dbm
from heimdall.localization.service import (
    NOT_HEARD_CEILING_SNR_DB,
    localization_inputs,
    not_heard_observations,
)
from heimdall.models import Measurement

from .synthetic import error_m, true_ranges_m

CALIBRATION = Calibration()
SOURCE_DBM = 40.0
#: Three receivers on one parallel: a power fit of three readings is exactly determined,
#: with a mirror solution across the line fitting as well (about 44.82 N).
LINE = [
    Receiver(id=i, latitude=45.0, longitude=lon) for i, lon in (("a", 7.6), ("b", 8.0), ("c", 8.4))
]
TRUTH = (45.18, 8.1)
MIRROR = (44.82, 8.1)


def predicted_dbm(receivers: list[Receiver], latitude: float, longitude: float) -> np.ndarray:
    ranges_m = true_ranges_m(receivers, latitude, longitude, 0.0)
    return SOURCE_DBM - path_loss_db(
        ranges_m, CALIBRATION.path_loss_exponent, CALIBRATION.reference_distance_m
    )


POWERS = [
    PowerObservation(receiver_id=r.id, power=float(p))
    for r, p in zip(LINE, predicted_dbm(LINE, *TRUTH), strict=True)
]


def fix(receivers: list[Receiver], not_heard: list[NotHeardObservation]) -> tuple[float, float]:
    result = localize(receivers, POWERS, [], CALIBRATION, method="rss", not_heard=not_heard)
    assert result.status == "ok" and result.latitude is not None
    assert result.longitude is not None
    return result.latitude, result.longitude


def ceiling_near(latitude: float, longitude: float) -> tuple[Receiver, NotHeardObservation]:
    """A receiver 2 km from a point; its ceiling 10 dB over what the truth gives it."""
    receiver = Receiver(id="d", latitude=latitude, longitude=longitude + 0.025)
    ceiling_dbm = float(predicted_dbm([receiver], *TRUTH)[0]) + 10.0
    return receiver, NotHeardObservation(receiver_id="d", ceiling_dbm=ceiling_dbm)


def test_the_three_readings_alone_are_ambiguous() -> None:
    result = localize(LINE, POWERS, [], CALIBRATION, method="rss")
    points = [(result.latitude, result.longitude)] + [
        (r["latitude"], r["longitude"]) for r in result.diagnostics["rival_solutions"]
    ]
    assert sorted(round(float(lat), 2) for lat, _ in points) == [MIRROR[0], TRUTH[0]]


@pytest.mark.parametrize(("deaf_near", "expected"), [(MIRROR, TRUTH), (TRUTH, MIRROR)])
def test_a_receiver_that_does_not_hear_rules_out_the_solution_near_it(
    deaf_near: tuple[float, float], expected: tuple[float, float]
) -> None:
    # Deaf near the mirror: the truth is the fix. Deaf near the truth (a contradiction the
    # fit must still obey): the mirror is. Each case fails if the ceiling is ignored,
    # since without it one and the same solution wins both.
    receiver, ceiling = ceiling_near(*deaf_near)
    if deaf_near == TRUTH:
        ceiling = NotHeardObservation(receiver_id="d", ceiling_dbm=ceiling.ceiling_dbm - 30.0)
    result = localize(LINE + [receiver], POWERS, [], CALIBRATION, method="rss", not_heard=[ceiling])
    assert result.status == "ok"
    assert error_m(result, *expected) < 3_000.0
    # Nor is the ruled-out solution a rival (one between, fitting the readings to a
    # fraction of their 6 dB sigma under the ceiling, may be: that is the data's own).
    ruled_out = MIRROR if expected == TRUTH else TRUTH
    for rival in result.diagnostics["rival_solutions"]:
        offset_deg = np.hypot(rival["latitude"] - ruled_out[0], rival["longitude"] - ruled_out[1])
        assert offset_deg > 0.05
    assert result.diagnostics["degrees_of_freedom"] == 0  # a ceiling is no reading
    assert result.n_receivers_used == 3


def test_a_distant_receiver_that_does_not_hear_changes_nothing() -> None:
    far = Receiver(id="far", latitude=47.5, longitude=12.0)  # ~400 km away, far under its ceiling
    ceiling = NotHeardObservation(
        receiver_id="far", ceiling_dbm=float(predicted_dbm([far], *MIRROR)[0]) + 20.0
    )
    without = localize(LINE, POWERS, [], CALIBRATION, method="rss")
    with_it = localize(LINE + [far], POWERS, [], CALIBRATION, method="rss", not_heard=[ceiling])
    assert without.latitude is not None and without.longitude is not None
    assert error_m(with_it, without.latitude, without.longitude) < 1.0
    assert with_it.ellipse is not None and without.ellipse is not None
    assert with_it.ellipse.semi_major_m == pytest.approx(without.ellipse.semi_major_m, rel=1e-6)
    assert with_it.diagnostics["not_heard_ceilings"]["far"]["excess_sigmas"] == 0.0


def test_a_ceiling_beside_a_reading_of_the_same_receiver_is_ignored() -> None:
    ceiling = NotHeardObservation(receiver_id="a", ceiling_dbm=-200.0)
    result = localize(LINE, POWERS, [], CALIBRATION, method="rss", not_heard=[ceiling])
    assert result.diagnostics["not_heard_ceilings"] == {}
    assert result.diagnostics["not_heard_receivers"] == 0


def ceiling_problem(ceiling_dbm: float) -> Problem:
    frame = LocalFrame(45.0, 8.0, 0.0)
    receivers_enu_m = np.array(
        [[-30e3, 0.0, 0.0], [0.0, 0.0, 0.0], [30e3, 0.0, 0.0], [0.0, 40e3, 0.0]]
    )
    rss = RssBlock(
        receiver_indices=np.arange(3, dtype=np.intp),
        powers_dbm=np.array([-50.0, -45.0, -52.0]),
        sigmas_db=np.full(3, 6.0),
        gains_db=np.zeros(3),
        path_loss_exponent=2.0,
        reference_distance_m=100.0,
        ceiling_indices=np.array([3], dtype=np.intp),
        ceilings_dbm=np.array([ceiling_dbm]),
        ceiling_sigmas_db=np.array([6.0]),
        ceiling_gains_db=np.zeros(1),
    )
    return Problem(frame, receivers_enu_m, 0.0, rss, None)


def test_the_grid_term_is_zero_below_the_ceiling_and_grows_above_it() -> None:
    grid = Grid.covering(np.array([-30e3, 30e3]), np.array([0.0, 40e3]), 60e3, 24)
    unbounded = grid_log_likelihood(ceiling_problem(1e3), grid)
    # What each cell's source (P0 from the readings) would give the deaf receiver.
    problem = ceiling_problem(1e3)
    assert problem.rss is not None
    x_m, y_m = np.meshgrid(grid.x_m, grid.y_m)
    ranges_m = slant_ranges_m(problem.frame.plane_to_enu(x_m, y_m, 0.0), problem.receivers_enu_m)
    rss = problem.rss
    source_dbm = robust_source_power_dbm(
        ranges_m[..., :3], rss.powers_dbm, rss.sigmas_db, rss.gains_db, 2.0, 100.0
    )
    deaf_dbm = source_dbm - path_loss_db(ranges_m[..., 3], 2.0, 100.0)
    ceiling_dbm = float(np.median(deaf_dbm))
    penalty = unbounded - grid_log_likelihood(ceiling_problem(ceiling_dbm), grid)
    below = deaf_dbm <= ceiling_dbm
    assert below.any() and (~below).any()
    np.testing.assert_array_equal(penalty[below], 0.0)
    assert np.all(penalty[~below] > 0.0)
    # Growing with the excess: the robust Gaussian hinge in the rss sigma (6 dB).
    excess = (deaf_dbm[~below] - ceiling_dbm) / 6.0
    np.testing.assert_allclose(penalty[~below], np.sqrt(1.0 + excess**2) - 1.0, rtol=1e-9)
    assert penalty.max() > 1.0


@pytest.mark.parametrize("ceiling_dbm", [-70.0, 1e3])
def test_the_ceiling_jacobian_matches_finite_differences(ceiling_dbm: float) -> None:
    problem = ceiling_problem(ceiling_dbm)
    parameters = np.array([5e3, 25e3, 40.0])
    analytic = residual_jacobian(problem, parameters)
    steps = np.array([1.0, 1.0, 1e-4])
    numeric = np.column_stack(
        [
            (
                normalised_residuals(problem, parameters + step * unit)
                - normalised_residuals(problem, parameters - step * unit)
            )
            / (2.0 * step)
            for step, unit in zip(steps, np.eye(3), strict=True)
        ]
    )
    assert numeric.shape == (4, 3)
    assert np.abs(numeric[3]).max() > 0.0 or ceiling_dbm > 0.0
    np.testing.assert_allclose(analytic, numeric, rtol=2e-3, atol=1e-8)


def test_ceilings_come_from_dbm_floors_in_the_signal_band() -> None:
    rows = [
        Measurement(websdr_id="a", snr=12.0, power_dbm=-95.0, occupied_bandwidth_hz=1200.0),
        Measurement(websdr_id="b", snr=8.0, power_dbm=-99.0, occupied_bandwidth_hz=1200.0),
        Measurement(websdr_id="c", snr=-18.0, noise_floor_dbm=-110.0, sample_rate_hz=12_000.0),
        Measurement(websdr_id="d", snr=-18.0, noise_floor_dbm=None),  # no dBm floor
    ]
    ceilings = not_heard_observations(rows)
    assert [c.receiver_id for c in ceilings] == ["c"]
    # -110 dBm over 12 kHz is -120 dBm over the signal's 1.2 kHz.
    assert ceilings[0].ceiling_dbm == pytest.approx(-120.0 + NOT_HEARD_CEILING_SNR_DB)
    # Nobody hears it: the whole passband's noise, a looser bound.
    assert not_heard_observations(rows[2:])[0].ceiling_dbm == pytest.approx(
        -110.0 + NOT_HEARD_CEILING_SNR_DB
    )


def test_inputs_say_a_receiver_was_used_as_a_ceiling() -> None:
    receiver, ceiling = ceiling_near(*MIRROR)
    result = localize(LINE + [receiver], POWERS, [], CALIBRATION, method="rss", not_heard=[ceiling])
    rows = [Measurement(websdr_id=r, gps_locked=False) for r in ("a", "b", "c", "d")]
    inputs = localization_inputs(result, rows, {"d": "not above the noise (SNR -18.0 dB)"})
    assert inputs["power"] == ["a", "b", "c"]
    assert inputs["power_not_above_noise"] == {"d": pytest.approx(ceiling.ceiling_dbm)}
    assert "used as a not-above-the-noise constraint" in inputs["power_excluded"]["d"]
