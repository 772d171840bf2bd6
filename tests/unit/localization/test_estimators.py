"""Known-truth tests of the RSS, TDOA and fused estimators on synthetic observations."""

import numpy as np
import pytest

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.localization import (
    Calibration,
    PowerObservation,
    Receiver,
    TdoaObservation,
    localize,
)
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.uncertainty import CHI2_2DOF_95
from tests.unit.localization.synthetic import (
    error_m,
    nw_italy_receivers,
    power_observations,
    tdoa_observations,
    true_ranges_m,
    truth_mahalanobis_squared,
)

ALTITUDE_M = 300.0
INSIDE = (45.0, 8.2)  # between Torino and Genova
OUTSIDE = (45.6, 9.5)  # north-east of Milano, outside the hull


@pytest.fixture(scope="module")
def receivers() -> list[Receiver]:
    return nw_italy_receivers()


@pytest.mark.parametrize("truth", [INSIDE, OUTSIDE, (44.6, 7.5)])
def test_rss_noiseless_recovers_the_truth(receivers: list[Receiver], truth: tuple) -> None:
    ranges_m = true_ranges_m(receivers, *truth, ALTITUDE_M)
    powers = power_observations(receivers, ranges_m, np.random.default_rng(0))
    result = localize(receivers, powers, [], method="rss", transmitter_altitude_m=ALTITUDE_M)
    assert result.status == "ok" and result.method == "rss"
    assert error_m(result, *truth) < 5.0
    assert result.diagnostics["source_power_dbm"] == pytest.approx(40.0, abs=0.01)
    assert all(abs(r.residual) < 1e-3 for r in result.residuals)


def test_rss_with_shadowing_has_honest_ellipses(receivers: list[Receiver]) -> None:
    rng = np.random.default_rng(42)
    trials = 100
    inside, normalised_errors = 0, []
    for _ in range(trials):
        truth = (rng.uniform(44.5, 45.45), rng.uniform(7.3, 9.1))
        ranges_m = true_ranges_m(receivers, *truth, ALTITUDE_M)
        powers = power_observations(receivers, ranges_m, rng, shadowing_sigma_db=6.0)
        result = localize(receivers, powers, [], method="rss", transmitter_altitude_m=ALTITUDE_M)
        mahalanobis_squared = truth_mahalanobis_squared(receivers, result, *truth)
        inside += mahalanobis_squared <= CHI2_2DOF_95
        normalised_errors.append(np.sqrt(mahalanobis_squared))
    assert 0.85 <= inside / trials <= 0.99
    # Errors are a few sigma, not tens: the median sits near the 2-D normal's 1.18.
    assert np.median(normalised_errors) < 2.0


@pytest.mark.parametrize("truth", [INSIDE, OUTSIDE])
def test_tdoa_noiseless_recovers_the_truth(receivers: list[Receiver], truth: tuple) -> None:
    ranges_m = true_ranges_m(receivers, *truth, ALTITUDE_M)
    pairs = tdoa_observations(receivers, ranges_m, np.random.default_rng(0))
    result = localize(receivers, [], pairs, method="tdoa", transmitter_altitude_m=ALTITUDE_M)
    assert result.status == "ok" and result.method == "tdoa"
    assert error_m(result, *truth) < 5.0


def test_tdoa_with_one_microsecond_jitter_is_accurate_and_honest(receivers: list[Receiver]) -> None:
    rng = np.random.default_rng(7)
    errors_m, inside = [], 0
    for _ in range(40):
        truth = (rng.uniform(44.5, 45.45), rng.uniform(7.3, 9.1))
        ranges_m = true_ranges_m(receivers, *truth, ALTITUDE_M)
        pairs = tdoa_observations(receivers, ranges_m, rng, arrival_sigma_s=1e-6)
        result = localize(receivers, [], pairs, transmitter_altitude_m=ALTITUDE_M)
        assert result.method == "tdoa"
        errors_m.append(error_m(result, *truth))
        inside += truth_mahalanobis_squared(receivers, result, *truth) <= CHI2_2DOF_95
    assert np.median(errors_m) < 600.0
    assert inside >= 34  # >= 85 % of 40


def test_fused_is_at_least_as_good_as_tdoa_and_chosen_automatically(
    receivers: list[Receiver],
) -> None:
    rng = np.random.default_rng(11)
    ranges_m = true_ranges_m(receivers, *INSIDE, ALTITUDE_M)
    powers = power_observations(receivers, ranges_m, rng, shadowing_sigma_db=6.0)
    pairs = tdoa_observations(receivers, ranges_m, rng, arrival_sigma_s=1e-6)
    fused = localize(receivers, powers, pairs, transmitter_altitude_m=ALTITUDE_M)
    tdoa = localize(receivers, powers, pairs, method="tdoa", transmitter_altitude_m=ALTITUDE_M)
    assert fused.method == "fused"
    assert fused.ellipse is not None and tdoa.ellipse is not None
    assert fused.ellipse.semi_major_m <= tdoa.ellipse.semi_major_m * 1.001
    assert error_m(fused, *INSIDE) < 1500.0
    assert {r.kind for r in fused.residuals} == {"power", "tdoa"}


def test_transmitter_on_a_receiver_is_finite(receivers: list[Receiver]) -> None:
    torino = next(r for r in receivers if r.id == "torino")
    truth = (torino.latitude, torino.longitude)
    ranges_m = true_ranges_m(receivers, *truth, torino.altitude_m)
    assert np.min(ranges_m) < 1.0
    rng = np.random.default_rng(5)
    powers = power_observations(receivers, ranges_m, rng)
    pairs = tdoa_observations(receivers, ranges_m, rng, arrival_sigma_s=1e-7)
    for method in ("rss", "tdoa", "fused"):
        result = localize(
            receivers, powers, pairs, method=method, transmitter_altitude_m=torino.altitude_m
        )
        assert result.status == "ok"
        assert result.ellipse is not None and np.isfinite(result.ellipse.semi_major_m)
        assert all(np.isfinite(r.residual) for r in result.residuals)
        assert error_m(result, *truth) < 2000.0


def test_collinear_receivers_give_a_wide_ellipse_across_the_line() -> None:
    line = [
        Receiver(id=f"site{k}", latitude=45.0, longitude=7.0 + 0.5 * k, altitude_m=ALTITUDE_M)
        for k in range(5)
    ]
    truth = (45.0, 8.3)  # on the line, between two receivers
    ranges_m = true_ranges_m(line, *truth, ALTITUDE_M)
    pairs = tdoa_observations(line, ranges_m, np.random.default_rng(3), arrival_sigma_s=1e-6)
    result = localize(line, [], pairs, transmitter_altitude_m=ALTITUDE_M)
    assert result.status == "ok" and result.ellipse is not None
    assert result.gdop is not None and result.gdop > 10.0
    # Across the line (north-south) the data say nothing: the major axis points there.
    assert min(result.ellipse.orientation_deg, 180.0 - result.ellipse.orientation_deg) < 10.0
    assert result.ellipse.semi_major_m > 50 * result.ellipse.semi_minor_m
    assert truth_mahalanobis_squared(line, result, *truth) <= CHI2_2DOF_95


def test_useless_tdoa_pair_widens_rather_than_lies(receivers: list[Receiver]) -> None:
    five = receivers[:5]
    rng = np.random.default_rng(9)
    truth = (44.9, 7.8)
    ranges_m = true_ranges_m(five, *truth, ALTITUDE_M)
    pairs = tdoa_observations(five, ranges_m, rng, arrival_sigma_s=5e-7)
    baseline = localize(five, [], pairs, transmitter_altitude_m=ALTITUDE_M)
    # A carrier's correlation is flat: a huge sigma and a low quality, and a wild value.
    degraded = [
        TdoaObservation(
            receiver_i=p.receiver_i,
            receiver_j=p.receiver_j,
            time_difference_s=p.time_difference_s + 3e-4,
            sigma_s=1e-3,
            quality=0.02,
        )
        if "montanaro" in (p.receiver_i, p.receiver_j)
        else p
        for p in pairs
    ]
    result = localize(five, [], degraded, transmitter_altitude_m=ALTITUDE_M)
    assert result.status == "ok"
    assert result.ellipse is not None and baseline.ellipse is not None
    assert result.ellipse.semi_major_m >= baseline.ellipse.semi_major_m
    assert truth_mahalanobis_squared(five, result, *truth) <= CHI2_2DOF_95
    assert result.diagnostics["tdoa_receivers"] == 4
    # A merely poor pair (sigma 10 us, 10 us off) stays in and moves the fix little.
    poor = [
        TdoaObservation(
            receiver_i=p.receiver_i,
            receiver_j=p.receiver_j,
            time_difference_s=p.time_difference_s + 1e-5,
            sigma_s=1e-5,
            quality=0.3,
        )
        if k == 0
        else p
        for k, p in enumerate(pairs)
    ]
    nudged = localize(five, [], poor, transmitter_altitude_m=ALTITUDE_M)
    assert baseline.latitude is not None and baseline.longitude is not None
    assert error_m(nudged, baseline.latitude, baseline.longitude) < 1000.0


@pytest.mark.parametrize("bad_receiver", ["giovi", "genova", "milano"])
def test_one_wild_power_reading_is_excluded(receivers: list[Receiver], bad_receiver: str) -> None:
    calibration = Calibration(shadowing_sigma_db=2.0)
    rng = np.random.default_rng(3)
    ranges_m = true_ranges_m(receivers, *INSIDE, ALTITUDE_M)
    powers = power_observations(receivers, ranges_m, rng, shadowing_sigma_db=2.0)
    clean = localize(receivers, powers, [], calibration, transmitter_altitude_m=ALTITUDE_M)
    wild = [
        PowerObservation(receiver_id=p.receiver_id, power=p.power + 30.0)
        if p.receiver_id == bad_receiver
        else p
        for p in powers
    ]
    result = localize(receivers, wild, [], calibration, transmitter_altitude_m=ALTITUDE_M)
    assert result.diagnostics["excluded_power_outliers"] == [bad_receiver]
    assert clean.latitude is not None and clean.longitude is not None
    assert error_m(result, clean.latitude, clean.longitude) < 3000.0


def test_too_few_receivers_is_an_explicit_result(receivers: list[Receiver]) -> None:
    ranges_m = true_ranges_m(receivers, *INSIDE, ALTITUDE_M)
    rng = np.random.default_rng(1)
    powers = power_observations(receivers, ranges_m, rng)
    pairs = tdoa_observations(receivers[:3], ranges_m[:3], rng, arrival_sigma_s=1e-6)

    two_powers = localize(receivers, powers[:2], [])
    assert two_powers.status == "insufficient_receivers"
    assert two_powers.latitude is None and two_powers.ellipse is None
    assert "3" in two_powers.message

    # Two timed receivers (one hyperbola) cannot fix a position; three can (two).
    two_timed = [p for p in pairs if {p.receiver_i, p.receiver_j} == {r.id for r in receivers[:2]}]
    assert localize(receivers, [], two_timed).status == "insufficient_receivers"
    assert localize(receivers, [], pairs).method == "tdoa"
    assert localize(receivers, powers, [], method="fused").status == "insufficient_receivers"
    assert localize(receivers, powers, two_timed, method="tdoa").status == "insufficient_receivers"
    # Three timed receivers still help a power fix.
    assert localize(receivers, powers, pairs).method == "fused"


def test_calibration_offsets_are_applied(receivers: list[Receiver]) -> None:
    ranges_m = true_ranges_m(receivers, *INSIDE, ALTITUDE_M)
    rng = np.random.default_rng(2)
    powers = power_observations(receivers, ranges_m, rng)
    pairs = tdoa_observations(receivers, ranges_m, rng)
    hot = [
        PowerObservation(receiver_id=p.receiver_id, power=p.power + 8.0)
        if p.receiver_id == "milano"
        else p
        for p in powers
    ]
    late_s = 4e-6
    shifted = [
        TdoaObservation(
            receiver_i=p.receiver_i,
            receiver_j=p.receiver_j,
            time_difference_s=p.time_difference_s
            + late_s * ((p.receiver_i == "genova") - (p.receiver_j == "genova")),
            sigma_s=p.sigma_s,
        )
        for p in pairs
    ]
    calibration = Calibration(
        version="trained-7", gain_offsets_db={"milano": 8.0}, clock_offsets_ns={"genova": 4000.0}
    )
    for method, powers_in, pairs_in in (("rss", hot, []), ("tdoa", [], shifted)):
        result = localize(
            receivers,
            powers_in,
            pairs_in,
            calibration,
            method=method,
            transmitter_altitude_m=ALTITUDE_M,
        )
        assert result.calibration_version == "trained-7"
        assert error_m(result, *INSIDE) < 5.0
        uncalibrated = localize(
            receivers, powers_in, pairs_in, method=method, transmitter_altitude_m=ALTITUDE_M
        )
        # Uncalibrated, the offset either moves the fix or (TDOA: the robust loss
        # isolates the one late receiver) shows up as residuals far beyond their sigma.
        assert (
            error_m(uncalibrated, *INSIDE) > 200.0
            or uncalibrated.diagnostics["chi_square"] > 100 * result.diagnostics["chi_square"] + 100
        )


def test_dbfs_readings_use_the_full_scale_calibration(receivers: list[Receiver]) -> None:
    ranges_m = true_ranges_m(receivers, *INSIDE, ALTITUDE_M)
    powers = power_observations(receivers, ranges_m, np.random.default_rng(4))
    full_scale_dbm = {r.id: -20.0 - k for k, r in enumerate(receivers)}
    as_dbfs = [
        PowerObservation(
            receiver_id=p.receiver_id, power=p.power - full_scale_dbm[p.receiver_id], unit="dBFS"
        )
        for p in powers
    ]
    result = localize(
        receivers,
        as_dbfs,
        [],
        Calibration(full_scale_dbm=full_scale_dbm),
        transmitter_altitude_m=ALTITUDE_M,
    )
    assert error_m(result, *INSIDE) < 5.0


def test_surface_is_a_small_normalised_feature_collection(receivers: list[Receiver]) -> None:
    ranges_m = true_ranges_m(receivers, *INSIDE, ALTITUDE_M)
    rng = np.random.default_rng(6)
    powers = power_observations(receivers, ranges_m, rng, shadowing_sigma_db=6.0)
    result = localize(receivers, powers, [], transmitter_altitude_m=ALTITUDE_M)
    surface = result.surface_geojson
    assert surface is not None and surface["type"] == "FeatureCollection"
    features = surface["features"]
    assert 1 <= len(features) <= 400
    likelihoods = [f["properties"]["likelihood"] for f in features]
    assert max(likelihoods) == pytest.approx(1.0)
    assert min(likelihoods) >= 1e-3
    for feature in features:
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) == 5
        assert all(5.0 < lon < 11.5 and 43.0 < lat < 46.8 for lon, lat in ring)
    # The peak cell is near the estimate.
    peak = features[int(np.argmax(likelihoods))]["geometry"]["coordinates"][0]
    assert result.latitude is not None and result.longitude is not None
    assert abs(np.mean([lat for _, lat in peak[:4]]) - result.latitude) < 0.5


def test_a_walk_into_a_refined_minimum_basin_stops_there() -> None:
    from scipy.optimize import OptimizeResult

    from heimdall.localization.refinement import Solution, _BasinWatch

    found = Solution(np.array([1_000.0, 2_000.0, -30.0]), robust_cost=2.0)
    pulled_back = Solution(np.array([9_000.0, 9_000.0, -30.0]), 1.0, local_minimum=False)
    watch = _BasinWatch([found, pulled_back], cell_m=1_000.0)
    # Far away, or within half a cell but lower (a better minimum nearby): walk on.
    watch(OptimizeResult(x=np.array([3_000.0, 2_000.0, -30.0]), cost=5.0))
    watch(OptimizeResult(x=np.array([1_200.0, 2_000.0, -30.0]), cost=1.5))
    # Near a point that is not a minimum (the grid peak of a walk that ran off): walk on.
    watch(OptimizeResult(x=np.array([9_000.0, 9_100.0, -30.0]), cost=3.0))
    assert watch.minimum is None
    with pytest.raises(StopIteration):
        watch(OptimizeResult(x=np.array([1_200.0, 2_100.0, -30.0]), cost=2.5))
    assert watch.minimum is found


def test_star_covariance_is_the_one_the_timing_sigmas_were_fitted_under(
    receivers: list[Receiver],
) -> None:
    """Pairs against one reference share its timing error, and only its own: the pair
    covariance is ``diag(own^2) + M diag(s^2) M^T`` with the calibration's per-receiver
    sigmas ``s`` (as ``training.timing_fit`` fits them). Half the smallest pair variance
    per receiver, the rule for receivers alike, gave a 2 us reference 1.4 us of shared
    error and each 100 ns partner 1.4 us of its own: an ellipse of 883 x 451 m instead
    of 72 x 38 m."""
    reference, others = receivers[0], receivers[1:]
    sigmas_ns = {reference.id: 2000.0} | {r.id: 100.0 for r in others}
    own_s = 50e-9
    calibration = Calibration(timing_sigmas_ns=sigmas_ns)
    ranges_m = true_ranges_m(receivers, *INSIDE, ALTITUDE_M)
    pairs = [
        TdoaObservation(
            receiver_i=other.id,
            receiver_j=reference.id,
            time_difference_s=float((ranges_m[k + 1] - ranges_m[0]) / SPEED_OF_LIGHT_M_PER_S),
            sigma_s=own_s,
        )
        for k, other in enumerate(others)
    ]
    result = localize(
        receivers, [], pairs, calibration, method="tdoa", transmitter_altitude_m=ALTITUDE_M
    )
    assert result.status == "ok" and result.covariance_en_m2 is not None
    assert result.diagnostics["covariance_inflation"] == 1.0  # noiseless: the model's own
    # The expected covariance from the geometry: unit vectors from each receiver to the fix.
    frame = LocalFrame(*INSIDE, ALTITUDE_M)
    enu_m = np.column_stack(
        frame.geodetic_to_enu(
            [r.latitude for r in receivers],
            [r.longitude for r in receivers],
            [r.altitude_m for r in receivers],
        )
    )
    units = -enu_m / np.linalg.norm(enu_m, axis=1)[:, np.newaxis]
    jacobian = units[1:, :2] - units[0, :2]  # d(d_other - d_reference) / d(east, north)
    timing_m = SPEED_OF_LIGHT_M_PER_S * 1e-9 * np.array([sigmas_ns[r.id] for r in receivers])
    incidence = np.column_stack([-np.ones(len(others)), np.eye(len(others))])
    pair_covariance_m2 = (incidence * timing_m**2) @ incidence.T + np.diag(
        np.full(len(others), (SPEED_OF_LIGHT_M_PER_S * own_s) ** 2)
    )
    expected_m2 = np.linalg.inv(jacobian.T @ np.linalg.solve(pair_covariance_m2, jacobian))
    np.testing.assert_allclose(np.array(result.covariance_en_m2), expected_m2, rtol=0.02)
