"""Localization anywhere: ellipsoidal paths, the search region, 3-receiver TDOA, the model named."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyproj
import pytest
import yaml

from heimdall.core.constants import (
    GROUND_WAVE_DELAY_SPREAD_NS_PER_KM,
    GROUND_WAVE_EXCESS_NS_PER_KM,
    GROUND_WAVE_TIMING_FLOOR_NS,
    SPEED_OF_LIGHT_M_PER_S,
)
from heimdall.localization import Calibration, Receiver, TdoaObservation, localize
from heimdall.localization.fusion import search_margin_m
from heimdall.localization.geodesy import LocalFrame, geodesic_distances_m, slant_ranges_m
from heimdall.localization.propagation import (
    pair_sigmas_from_timing_m,
    propagation_model_for,
    receiver_timing_sigmas_s,
    tdoa_range_scale,
    timing_sigma_s,
)

from .synthetic import error_m, truth_mahalanobis_squared

GEOD = pyproj.Geod(ellps="WGS84")
HF_SCENARIO = Path(__file__).parents[3] / "src/heimdall/data/scenario-hf-europe.yaml"
HF_HZ = 7.055e6


def hf_receivers() -> list[Receiver]:
    """The HF scenario's six KiwiSDRs over central Europe, 200-500 km apart."""
    document = yaml.safe_load(HF_SCENARIO.read_text())
    return [
        Receiver(
            id=r["id"], latitude=r["latitude"], longitude=r["longitude"], altitude_m=r["altitude_m"]
        )
        for r in document["receivers"]
    ]


def ground_wave_pairs(
    receivers: list[Receiver],
    latitude: float,
    longitude: float,
    range_scale: float,
    sigma_s: float = 1e-8,
) -> list[TdoaObservation]:
    """Noiseless pairs against the first receiver: geodesic paths at ``c / range_scale``."""
    _, _, paths_m = GEOD.inv(
        np.full(len(receivers), longitude),
        np.full(len(receivers), latitude),
        [r.longitude for r in receivers],
        [r.latitude for r in receivers],
    )
    arrivals_s = range_scale * np.asarray(paths_m) / SPEED_OF_LIGHT_M_PER_S
    return [
        TdoaObservation(
            receiver_i=receivers[k].id,
            receiver_j=receivers[0].id,
            time_difference_s=float(arrivals_s[k] - arrivals_s[0]),
            sigma_s=sigma_s,
        )
        for k in range(1, len(receivers))
    ]


def test_geodesic_distances_match_pyproj_at_500_to_1000_km() -> None:
    rng = np.random.default_rng(5)
    start_lat, start_lon = rng.uniform(-60, 60, 200), rng.uniform(-180, 180, 200)
    distances_m = rng.uniform(500e3, 1000e3, 200)
    end_lon, end_lat, _ = GEOD.fwd(start_lon, start_lat, rng.uniform(0, 360, 200), distances_m)
    np.testing.assert_allclose(
        geodesic_distances_m(start_lat, start_lon, end_lat, end_lon), distances_m, atol=1e-6
    )
    # A broadcast (cells x receivers) table, as the grid uses.
    table_m = geodesic_distances_m(start_lat[:3, None], start_lon[:3, None], end_lat, end_lon)
    assert table_m.shape == (3, 200)
    np.testing.assert_allclose(np.diag(table_m[:, :3]), distances_m[:3], atol=1e-6)


def test_at_1000_km_chord_and_flat_plane_are_off_by_hundreds_of_metres() -> None:
    # Why ground waves take the geodesic: the chord is shorter by ~d^3 / (24 R^2), and a
    # plane projection distorts distances away from its centre.
    frame = LocalFrame(48.0, 13.0)
    a, b = (52.5, 6.0), (52.5, 19.5)  # ~900 km apart, both ~500 km north of the centre
    geodesic_m = float(geodesic_distances_m(a[0], a[1], b[0], b[1]))
    assert 900e3 < geodesic_m < 950e3
    enu = np.column_stack(frame.geodetic_to_enu([a[0], b[0]], [a[1], b[1]], [0.0, 0.0]))
    chord_m = float(slant_ranges_m(enu[0], enu[1:])[0])
    assert geodesic_m - chord_m == pytest.approx(geodesic_m**3 / (24 * 6371e3**2), rel=0.02)
    x_m, y_m = frame.geodetic_to_plane([a[0], b[0]], [a[1], b[1]])
    # The plane stretches across its radii by ~(r / R)^2 / 6: ~1 km over this chord.
    assert float(np.hypot(np.diff(x_m)[0], np.diff(y_m)[0])) - geodesic_m > 900.0


def test_ground_wave_is_named_below_30_mhz_and_line_of_sight_above() -> None:
    receivers = hf_receivers()
    scale = tdoa_range_scale("ground_wave", HF_HZ)
    pairs = ground_wave_pairs(receivers, 48.4, 13.6, scale)
    hf = localize(receivers, [], pairs, frequency_hz=HF_HZ)
    assert hf.status == "ok" and hf.propagation_model == "ground_wave"
    assert hf.diagnostics["band"] == "hf"
    assert localize(receivers, [], pairs, frequency_hz=145e6).propagation_model == "line_of_sight"
    assert localize(receivers, [], pairs).propagation_model == "line_of_sight"  # unknown
    assert propagation_model_for(200e3) == "ground_wave"  # LF
    assert propagation_model_for(10e3) == "ground_wave"  # VLF counts as LF
    assert propagation_model_for(1e9, "ground_wave") == "ground_wave"  # forced
    assert scale == pytest.approx(1 + GROUND_WAVE_EXCESS_NS_PER_KM["hf"] * 1e-12 * 299792458.0)


def test_ground_wave_fix_is_exact_and_the_wrong_model_is_not() -> None:
    receivers = hf_receivers()
    truth = (48.4, 13.6)
    pairs = ground_wave_pairs(receivers, *truth, tdoa_range_scale("ground_wave", HF_HZ))
    right = localize(receivers, [], pairs, frequency_hz=HF_HZ, method="tdoa")
    assert error_m(right, *truth) < 5.0
    # The VHF model (chords at light speed) reads the ground wave's delay as geometry.
    wrong = localize(receivers, [], pairs, frequency_hz=HF_HZ, propagation="line_of_sight")
    assert error_m(wrong, *truth) > 200.0


def test_grid_extends_half_the_network_beyond_the_receivers() -> None:
    receivers = hf_receivers()
    pairs = ground_wave_pairs(receivers, 48.4, 13.6, tdoa_range_scale("ground_wave", HF_HZ))
    result = localize(receivers, [], pairs, frequency_hz=HF_HZ)
    frame = LocalFrame.around(
        [r.latitude for r in receivers], [r.longitude for r in receivers], [0.0] * 6
    )
    x_m, y_m = frame.geodetic_to_plane(
        [r.latitude for r in receivers], [r.longitude for r in receivers]
    )
    extent_m = max(np.ptp(x_m), np.ptp(y_m))
    assert 460e3 < extent_m < 480e3
    margin_m = search_margin_m(x_m, y_m, 75e3)
    assert margin_m == pytest.approx(extent_m / 2)
    n_y, n_x = result.diagnostics["grid_shape"]
    cell_m = result.diagnostics["grid_cell_m"]
    assert max(n_x, n_y) == 64
    assert max(n_x, n_y) * cell_m == pytest.approx(extent_m + 2 * margin_m, rel=1e-6)
    # The likelihood surface is drawn over that region, not a fixed box.
    assert result.surface_geojson is not None
    corners = np.array(
        [c for f in result.surface_geojson["features"] for c in f["geometry"]["coordinates"][0]]
    )
    assert corners[:, 0].min() < 13.6 < corners[:, 0].max()
    # A compact network keeps the 75 km floor.
    assert search_margin_m(np.array([0.0, 100e3]), np.array([0.0, 80e3]), 75e3) == 75e3


def test_three_receivers_keep_both_hyperbola_crossings() -> None:
    receivers = [
        Receiver(id="a", latitude=48.0, longitude=10.0),
        Receiver(id="b", latitude=48.0, longitude=14.0),
        Receiver(id="c", latitude=50.5, longitude=12.0),
    ]
    # South of b, outside the triangle: the two hyperbolas also cross ~52 km away at
    # (47.700, 14.092) (found by a scan; both fit exactly).
    truth, other = (47.419896, 14.650746), (47.699867, 14.092060)
    pairs = ground_wave_pairs(receivers, *truth, tdoa_range_scale("ground_wave", HF_HZ))
    result = localize(receivers, [], pairs, frequency_hz=HF_HZ)
    assert result.status == "ok" and result.method == "tdoa"
    assert result.diagnostics["degrees_of_freedom"] == 0
    assert result.diagnostics["ambiguous_solutions"] == 1
    (rival,) = result.diagnostics["rival_solutions"]
    fix = (result.latitude, result.longitude)
    crossings = sorted([fix, (rival["latitude"], rival["longitude"])])
    for found, expected in zip(crossings, sorted([truth, other]), strict=True):
        assert GEOD.inv(found[1], found[0], expected[1], expected[0])[2] < 50.0
    assert rival["distance_m"] == pytest.approx(52.3e3, rel=0.01)
    # Whichever crossing is the fix, the ellipse covers the other too.
    for latitude, longitude in (truth, other):
        assert truth_mahalanobis_squared(receivers, result, latitude, longitude) < 5.991


def test_three_receivers_inside_the_hull_have_one_crossing_and_an_honest_ellipse() -> None:
    receivers = hf_receivers()[:3]  # usti, brno, graz
    truth = (48.9, 15.0)
    pairs = ground_wave_pairs(receivers, *truth, tdoa_range_scale("ground_wave", HF_HZ))
    result = localize(receivers, [], pairs, frequency_hz=HF_HZ)
    assert result.method == "tdoa" and result.diagnostics["ambiguous_solutions"] == 0
    assert error_m(result, *truth) < 5.0
    # No residual to check: the ellipse rests on the HF floor (1.7 us per receiver),
    # kilometres wide although these pairs are exact.
    assert result.ellipse is not None and result.ellipse.semi_minor_m > 500.0


def test_pair_sigma_takes_the_fitted_timing_sigma_else_the_band_floor_and_spread() -> None:
    fitted = Calibration(timing_sigmas_ns={"usti": 400.0})
    assert timing_sigma_s(fitted, "usti", "ground_wave", HF_HZ, 300e3) == pytest.approx(400e-9)
    for frequency_hz, band in ((HF_HZ, "hf"), (1e6, "mf"), (100e3, "lf")):
        expected_s = 1e-9 * np.hypot(
            GROUND_WAVE_TIMING_FLOOR_NS[band], GROUND_WAVE_DELAY_SPREAD_NS_PER_KM[band] * 300.0
        )
        sigma_s = timing_sigma_s(fitted, "brno", "ground_wave", frequency_hz, 300e3)
        assert sigma_s == pytest.approx(expected_s)
    assert timing_sigma_s(fitted, "brno", "ground_wave", HF_HZ, 300e3) > 2e-6  # HF: microseconds
    assert timing_sigma_s(fitted, "brno", "line_of_sight", 145e6, 300e3) == pytest.approx(100e-9)
    # Twice the floor and twice the spread: twice every timing sigma, twice the ellipse
    # (the correlation's 10 ns is negligible beside microseconds).
    doubled = Calibration(
        ground_wave_timing_floors_ns={
            band: 2 * value for band, value in GROUND_WAVE_TIMING_FLOOR_NS.items()
        },
        ground_wave_delay_spread_ns_per_km={
            band: 2 * value for band, value in GROUND_WAVE_DELAY_SPREAD_NS_PER_KM.items()
        },
    )
    receivers = hf_receivers()
    pairs = ground_wave_pairs(receivers, 48.4, 13.6, tdoa_range_scale("ground_wave", HF_HZ))
    narrow = localize(receivers, [], pairs, Calibration(), frequency_hz=HF_HZ)
    wide = localize(receivers, [], pairs, doubled, frequency_hz=HF_HZ)
    assert narrow.ellipse is not None and wide.ellipse is not None
    ratio = wide.ellipse.semi_major_m / narrow.ellipse.semi_major_m
    assert ratio == pytest.approx(2.0, rel=0.01)


def test_pair_sigmas_grow_with_the_paths_from_the_fix() -> None:
    receivers = hf_receivers()
    sites = {r.id: (r.latitude, r.longitude) for r in receivers}
    graz = sites["graz"]
    pairs = ground_wave_pairs(receivers, graz[0] + 0.3, graz[1], 1.0, sigma_s=1e-9)
    calibration = Calibration()
    timing_s = receiver_timing_sigmas_s(
        np.array([graz[0] + 0.3, graz[1]]),  # 33 km north of Graz
        lambda receiver_id, path_m: timing_sigma_s(
            calibration, receiver_id, "ground_wave", HF_HZ, path_m
        ),
        sites,
    )
    sigmas_m = pair_sigmas_from_timing_m(pairs, timing_s, 1.0)
    by_pair = {p.receiver_i: float(s) for p, s in zip(pairs, sigmas_m, strict=True)}
    # Every pair shares usti (~270 km away); graz's own path is the shortest.
    assert by_pair["graz"] == min(by_pair.values())
    usti_path_m = float(geodesic_distances_m(graz[0] + 0.3, graz[1], *sites["usti"]))
    graz_path_m = float(geodesic_distances_m(graz[0] + 0.3, graz[1], *graz))
    expected_m = SPEED_OF_LIGHT_M_PER_S * np.hypot(
        timing_sigma_s(calibration, "usti", "ground_wave", HF_HZ, usti_path_m),
        timing_sigma_s(calibration, "graz", "ground_wave", HF_HZ, graz_path_m),
    )
    assert by_pair["graz"] == pytest.approx(expected_m, rel=1e-6)


def test_network_anywhere_on_earth_is_located() -> None:
    # The same fix near the antimeridian and far south: no fixed box, no wrap-around.
    for centre in ((-40.0, 179.0), (60.0, -150.0), (0.5, 30.0)):
        frame = LocalFrame(*centre)
        angles = np.radians([0.0, 100.0, 200.0, 290.0])
        lat, lon = frame.plane_to_geodetic(250e3 * np.sin(angles), 250e3 * np.cos(angles))
        receivers = [
            Receiver(id=f"r{k}", latitude=float(la), longitude=float(lo))
            for k, (la, lo) in enumerate(zip(lat, lon, strict=True))
        ]
        truth_lat, truth_lon = frame.plane_to_geodetic(40e3, -30e3)
        truth = (float(truth_lat), float(truth_lon))
        pairs = ground_wave_pairs(receivers, *truth, tdoa_range_scale("ground_wave", HF_HZ))
        result = localize(receivers, [], pairs, frequency_hz=HF_HZ)
        assert error_m(result, *truth) < 5.0, centre
        assert truth_mahalanobis_squared(receivers, result, *truth) < 5.991


def test_all_pairs_of_a_ground_wave_network_agree_with_reference_pairs() -> None:
    receivers = hf_receivers()[:4]
    truth = (48.9, 14.0)
    scale = tdoa_range_scale("ground_wave", HF_HZ)
    reference = ground_wave_pairs(receivers, *truth, scale)
    by_id = {p.receiver_i: p.time_difference_s for p in reference} | {receivers[0].id: 0.0}
    every = [
        TdoaObservation(
            receiver_i=a.id,
            receiver_j=b.id,
            time_difference_s=by_id[a.id] - by_id[b.id],
            sigma_s=1e-8,
        )
        for a, b in itertools.combinations(receivers, 2)
    ]
    one = localize(receivers, [], reference, frequency_hz=HF_HZ)
    other = localize(receivers, [], every, frequency_hz=HF_HZ)
    assert error_m(one, *truth) < 5.0 and error_m(other, *truth) < 5.0
