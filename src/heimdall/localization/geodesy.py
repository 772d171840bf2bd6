"""Local coordinate frames for localization, built on pyproj.

Two frames share one origin (the network's centroid):

* the **map plane**: an azimuthal equidistant projection (``+proj=aeqd``) centred on
  the origin. Its ``(x_m, y_m)`` are east/north ground metres whose distance and
  azimuth from the centre are exact geodesic values; over the ~200 km a receiver
  network spans, the scale error elsewhere stays below 2e-4. Estimators search and
  report in this plane, so grid cells and ellipse axes are metres on the ground.
* the **ENU frame**: exact local east-north-up Cartesian coordinates (geocentric
  ``+proj=cart`` then ``+proj=topocentric``). Slant ranges between a transmitter and
  the receivers are straight-line distances in this frame, Earth curvature included.

A transmitter candidate is a map-plane point at an assumed ellipsoidal height; one
PROJ pipeline turns ``(x_m, y_m, altitude_m)`` into ENU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyproj

FloatArray = npt.NDArray[np.float64]

_ELLIPSOID = "+ellps=WGS84"
_GEOD = pyproj.Geod(ellps="WGS84")


def _as_float_array(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _all_floats(*values: object) -> bool:
    """Whether every value is a Python or numpy float scalar (not an array)."""
    return all(isinstance(value, float) for value in values)


@dataclass(frozen=True)
class LocalFrame:
    """Map plane and ENU frame around one geodetic origin.

    Example:
        >>> frame = LocalFrame(45.0, 8.0, 300.0)
        >>> east_m, north_m, up_m = frame.geodetic_to_enu(45.0, 8.0, 300.0)
        >>> round(float(east_m), 6), round(float(north_m), 6), round(float(up_m), 6)
        (0.0, 0.0, 0.0)
    """

    origin_latitude_deg: float
    origin_longitude_deg: float
    origin_altitude_m: float = 0.0
    _enu: pyproj.Transformer = field(init=False, repr=False, compare=False)
    _plane: pyproj.Transformer = field(init=False, repr=False, compare=False)
    _plane_to_enu: pyproj.Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        centre = f"+lat_0={self.origin_latitude_deg} +lon_0={self.origin_longitude_deg}"
        aeqd = f"+proj=aeqd {centre} {_ELLIPSOID}"
        topocentric = f"+proj=topocentric {centre} +h_0={self.origin_altitude_m} {_ELLIPSOID}"
        # Geodetic input in PROJ pipelines is radians; unitconvert keeps the public API in degrees.
        degrees_in = "+step +proj=unitconvert +xy_in=deg +xy_out=rad"
        enu = f"+proj=pipeline {degrees_in} +step +proj=cart {_ELLIPSOID} +step {topocentric}"
        plane_to_enu = (
            f"+proj=pipeline +step +inv {aeqd} +step +proj=cart {_ELLIPSOID} +step {topocentric}"
        )
        # The pipeline PROJ itself builds for EPSG:4326 (latitude first, degrees) -> aeqd,
        # written out: Transformer.from_crs would look EPSG:4326 up in PROJ's database,
        # ~25 ms per frame (every new set of receivers in use), against 0.1 ms for this.
        plane = f"+proj=pipeline +step +proj=axisswap +order=2,1 {degrees_in} +step {aeqd}"
        object.__setattr__(self, "_enu", pyproj.Transformer.from_pipeline(enu))
        object.__setattr__(self, "_plane", pyproj.Transformer.from_pipeline(plane))
        object.__setattr__(self, "_plane_to_enu", pyproj.Transformer.from_pipeline(plane_to_enu))

    @classmethod
    def around(
        cls,
        latitudes_deg: npt.ArrayLike,
        longitudes_deg: npt.ArrayLike,
        altitudes_m: npt.ArrayLike,
    ) -> LocalFrame:
        """Frame centred on the centroid of a set of sites (e.g. a receiver network).

        The centroid is taken in geocentric Cartesian space and projected back to the
        ellipsoid, so it is well defined however the sites are spread.
        """
        geocentric = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
        x_m, y_m, z_m = geocentric.transform(
            _as_float_array(longitudes_deg),
            _as_float_array(latitudes_deg),
            _as_float_array(altitudes_m),
        )
        lon_deg, lat_deg, _ = geocentric.transform(
            np.mean(x_m),
            np.mean(y_m),
            np.mean(z_m),
            direction=pyproj.enums.TransformDirection.INVERSE,
        )
        return cls(float(lat_deg), float(lon_deg), float(np.mean(_as_float_array(altitudes_m))))

    def geodetic_to_enu(
        self, latitude_deg: npt.ArrayLike, longitude_deg: npt.ArrayLike, altitude_m: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Latitude, longitude (degrees), ellipsoidal height (m) -> east, north, up (m)."""
        east_m, north_m, up_m = self._enu.transform(
            _as_float_array(longitude_deg),
            _as_float_array(latitude_deg),
            _as_float_array(altitude_m),
        )
        return _as_float_array(east_m), _as_float_array(north_m), _as_float_array(up_m)

    def enu_to_geodetic(
        self, east_m: npt.ArrayLike, north_m: npt.ArrayLike, up_m: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """East, north, up (m) -> latitude, longitude (degrees), ellipsoidal height (m)."""
        lon_deg, lat_deg, alt_m = self._enu.transform(
            _as_float_array(east_m),
            _as_float_array(north_m),
            _as_float_array(up_m),
            direction=pyproj.enums.TransformDirection.INVERSE,
        )
        return _as_float_array(lat_deg), _as_float_array(lon_deg), _as_float_array(alt_m)

    def geodetic_to_plane(
        self, latitude_deg: npt.ArrayLike, longitude_deg: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Latitude, longitude (degrees) -> map-plane east, north (m)."""
        x_m, y_m = self._plane.transform(
            _as_float_array(latitude_deg), _as_float_array(longitude_deg)
        )
        return _as_float_array(x_m), _as_float_array(y_m)

    def plane_to_geodetic(
        self, x_m: npt.ArrayLike, y_m: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Map-plane east, north (m) -> latitude, longitude (degrees)."""
        if _all_floats(x_m, y_m):  # the same PROJ call on one point, without arrays
            lat_deg, lon_deg = self._plane.transform(
                x_m, y_m, direction=pyproj.enums.TransformDirection.INVERSE
            )
            return _as_float_array(lat_deg), _as_float_array(lon_deg)
        lat_deg, lon_deg = self._plane.transform(
            _as_float_array(x_m),
            _as_float_array(y_m),
            direction=pyproj.enums.TransformDirection.INVERSE,
        )
        return _as_float_array(lat_deg), _as_float_array(lon_deg)

    def plane_to_enu(
        self, x_m: npt.ArrayLike, y_m: npt.ArrayLike, altitude_m: npt.ArrayLike
    ) -> FloatArray:
        """Map-plane point at an ellipsoidal height -> ENU, shape ``(..., 3)``."""
        if _all_floats(x_m, y_m, altitude_m):
            # One point, as the refinement asks for at every step: pyproj's point path
            # gives the same numbers in ~1 us, its array path (buffers, broadcasting)
            # took ~20 us.
            return _as_float_array(self._plane_to_enu.transform(x_m, y_m, altitude_m))
        x = _as_float_array(x_m)
        y = _as_float_array(y_m)
        altitude = np.broadcast_to(
            _as_float_array(altitude_m), np.broadcast_shapes(x.shape, y.shape)
        )
        east_m, north_m, up_m = self._plane_to_enu.transform(x, y, np.array(altitude))
        return np.stack(
            [_as_float_array(east_m), _as_float_array(north_m), _as_float_array(up_m)], axis=-1
        )

    def true_north_azimuth_deg(self, x_m: float, y_m: float) -> float:
        """Azimuth of true north at a map-plane point, clockwise from the plane's +y axis.

        Subtract it from an azimuth measured against the plane's +y axis to get an azimuth
        from true north (about 1 degree per 100 km east or west of the centre at 45 N).
        """
        lat_deg, lon_deg = self.plane_to_geodetic(x_m, y_m)
        # A short step due north, projected, shows where north points in the plane.
        x_north_m, y_north_m = self.geodetic_to_plane(lat_deg + 1e-4, lon_deg)
        return float(np.degrees(np.arctan2(x_north_m - x_m, y_north_m - y_m)))


def slant_ranges_m(transmitters_enu: FloatArray, receivers_enu: FloatArray) -> FloatArray:
    """Straight-line distances, shape ``(..., n_receivers)``, from ENU points to receivers."""
    offsets = transmitters_enu[..., np.newaxis, :] - receivers_enu
    return np.asarray(np.sqrt(np.einsum("...k,...k->...", offsets, offsets)), dtype=np.float64)


def geodesic_distances_m(
    latitude_a_deg: npt.ArrayLike,
    longitude_a_deg: npt.ArrayLike,
    latitude_b_deg: npt.ArrayLike,
    longitude_b_deg: npt.ArrayLike,
) -> FloatArray:
    """Shortest distances on the WGS84 ellipsoid (Karney's geodesics), broadcast, metres.

    The path of a ground wave. Over 1000 km it is ~1 km longer than the chord through the
    Earth, and a flat plane would be off by more still.

    Example:
        >>> round(float(geodesic_distances_m(0.0, 0.0, 0.0, 1.0)), 3)  # 1 degree of equator
        111319.491
    """
    lat_a, lon_a, lat_b, lon_b = np.broadcast_arrays(
        _as_float_array(latitude_a_deg),
        _as_float_array(longitude_a_deg),
        _as_float_array(latitude_b_deg),
        _as_float_array(longitude_b_deg),
    )
    _, _, distances_m = _GEOD.inv(lon_a.ravel(), lat_a.ravel(), lon_b.ravel(), lat_b.ravel())
    return _as_float_array(distances_m).reshape(lat_a.shape)
