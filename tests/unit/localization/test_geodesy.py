import numpy as np
import pyproj
import pytest

from heimdall.localization.geodesy import LocalFrame, slant_ranges_m

GEOD = pyproj.Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def frame() -> LocalFrame:
    return LocalFrame(45.0, 8.2, 300.0)


def test_enu_round_trip_is_millimetre_exact(frame: LocalFrame) -> None:
    rng = np.random.default_rng(1)
    latitudes = rng.uniform(43.5, 46.5, 500)
    longitudes = rng.uniform(6.0, 10.5, 500)
    altitudes_m = rng.uniform(-50.0, 3000.0, 500)
    east_m, north_m, up_m = frame.geodetic_to_enu(latitudes, longitudes, altitudes_m)
    back_lat, back_lon, back_alt = frame.enu_to_geodetic(east_m, north_m, up_m)
    # 1e-8 degree is about a millimetre on the ground.
    np.testing.assert_allclose(back_lat, latitudes, atol=1e-8, rtol=0)
    np.testing.assert_allclose(back_lon, longitudes, atol=1e-8, rtol=0)
    np.testing.assert_allclose(back_alt, altitudes_m, atol=1e-3, rtol=0)


def test_plane_round_trip_is_millimetre_exact(frame: LocalFrame) -> None:
    rng = np.random.default_rng(2)
    x_m = rng.uniform(-250e3, 250e3, 500)
    y_m = rng.uniform(-250e3, 250e3, 500)
    latitudes, longitudes = frame.plane_to_geodetic(x_m, y_m)
    back_x_m, back_y_m = frame.geodetic_to_plane(latitudes, longitudes)
    np.testing.assert_allclose(back_x_m, x_m, atol=1e-3, rtol=0)
    np.testing.assert_allclose(back_y_m, y_m, atol=1e-3, rtol=0)


def test_plane_is_the_crs_transformation_of_epsg_4326_to_aeqd(frame: LocalFrame) -> None:
    # The plane's pipeline is written out (for speed); it must be the one PROJ builds.
    reference = pyproj.Transformer.from_crs(
        "EPSG:4326", pyproj.CRS("+proj=aeqd +lat_0=45.0 +lon_0=8.2 +ellps=WGS84")
    )
    rng = np.random.default_rng(3)
    latitudes = rng.uniform(42.0, 48.0, 500)
    longitudes = rng.uniform(5.0, 11.0, 500)
    expected_x_m, expected_y_m = reference.transform(latitudes, longitudes)
    x_m, y_m = frame.geodetic_to_plane(latitudes, longitudes)
    np.testing.assert_allclose(x_m, expected_x_m, atol=1e-6, rtol=0)
    np.testing.assert_allclose(y_m, expected_y_m, atol=1e-6, rtol=0)


def test_origin_maps_to_zero_and_up_is_height(frame: LocalFrame) -> None:
    east_m, north_m, up_m = frame.geodetic_to_enu(45.0, 8.2, 1300.0)
    assert abs(float(east_m)) < 1e-6 and abs(float(north_m)) < 1e-6
    assert float(up_m) == pytest.approx(1000.0, abs=1e-6)


def test_plane_distance_from_centre_is_the_geodesic_distance(frame: LocalFrame) -> None:
    rng = np.random.default_rng(3)
    latitudes = rng.uniform(44.0, 46.0, 100)
    longitudes = rng.uniform(7.0, 9.5, 100)
    x_m, y_m = frame.geodetic_to_plane(latitudes, longitudes)
    _, _, geodesic_m = GEOD.inv(np.full(100, 8.2), np.full(100, 45.0), longitudes, latitudes)
    np.testing.assert_allclose(np.hypot(x_m, y_m), geodesic_m, atol=1e-3, rtol=0)


def test_enu_distance_matches_geodesic_between_distant_surface_points(frame: LocalFrame) -> None:
    # Straight chord vs ellipsoidal arc differ by d^3 / (24 R^2): ~1 m at 100 km.
    milano, genova = (45.478, 9.123), (44.395, 8.956)
    enu = np.column_stack(frame.geodetic_to_enu(*zip(milano, genova, strict=True), [0.0, 0.0]))
    chord_m = float(slant_ranges_m(enu[0], enu[1:])[0])
    _, _, geodesic_m = GEOD.inv(milano[1], milano[0], genova[1], genova[0])
    assert geodesic_m > 100e3
    assert chord_m == pytest.approx(geodesic_m, abs=2.0)
    assert chord_m < geodesic_m


def test_plane_to_enu_agrees_with_the_geodetic_path(frame: LocalFrame) -> None:
    x_m = np.array([-120e3, 0.0, 80e3])
    y_m = np.array([40e3, -90e3, 150e3])
    via_pipeline = frame.plane_to_enu(x_m, y_m, 450.0)
    latitudes, longitudes = frame.plane_to_geodetic(x_m, y_m)
    via_geodetic = np.column_stack(frame.geodetic_to_enu(latitudes, longitudes, np.full(3, 450.0)))
    np.testing.assert_allclose(via_pipeline, via_geodetic, atol=1e-3, rtol=0)


def test_network_centroid_lies_inside_the_network() -> None:
    frame = LocalFrame.around([44.0, 46.0, 45.0], [7.0, 7.0, 9.0], [0.0, 200.0, 400.0])
    assert 44.5 < frame.origin_latitude_deg < 45.5
    assert 7.3 < frame.origin_longitude_deg < 8.0
    assert frame.origin_altitude_m == pytest.approx(200.0)


def test_true_north_turns_towards_the_central_meridian(frame: LocalFrame) -> None:
    east = frame.true_north_azimuth_deg(100e3, 0.0)
    west = frame.true_north_azimuth_deg(-100e3, 0.0)
    # Meridians converge on the pole: convergence ~ delta_lon * sin(lat) ~ 0.9 deg here.
    assert east == pytest.approx(-west, abs=1e-3)
    assert -1.2 < east < -0.6
    assert frame.true_north_azimuth_deg(0.0, 50e3) == pytest.approx(0.0, abs=1e-6)
