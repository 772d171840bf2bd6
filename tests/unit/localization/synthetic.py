"""Observations synthesised from the localization's own models, for known-truth tests."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyproj
import yaml

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.localization import LocalizationResult, PowerObservation, Receiver, TdoaObservation
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.rss import path_loss_db

GEOD = pyproj.Geod(ellps="WGS84")
STATIONS_YAML = Path(__file__).parents[3] / "src/heimdall/data/stations-simulated.yaml"


def nw_italy_receivers() -> list[Receiver]:
    """The seven simulated north-west Italy sites."""
    stations = yaml.safe_load(STATIONS_YAML.read_text())["stations"]
    return [
        Receiver(
            id=s["id"], latitude=s["latitude"], longitude=s["longitude"], altitude_m=s["altitude_m"]
        )
        for s in stations
    ]


def true_ranges_m(
    receivers: list[Receiver], latitude: float, longitude: float, altitude_m: float
) -> np.ndarray:
    """Straight-line distances from a transmitter to each receiver, via an independent frame."""
    frame = LocalFrame(latitude, longitude, altitude_m)
    enu = np.column_stack(
        frame.geodetic_to_enu(
            [r.latitude for r in receivers],
            [r.longitude for r in receivers],
            [r.altitude_m for r in receivers],
        )
    )
    return np.linalg.norm(enu, axis=1)


def power_observations(
    receivers: list[Receiver],
    ranges_m: np.ndarray,
    rng: np.random.Generator,
    *,
    source_power_dbm: float = 40.0,
    shadowing_sigma_db: float = 0.0,
    path_loss_exponent: float = 2.0,
    reference_distance_m: float = 100.0,
) -> list[PowerObservation]:
    powers_dbm = (
        source_power_dbm
        - path_loss_db(ranges_m, path_loss_exponent, reference_distance_m)
        + shadowing_sigma_db * rng.standard_normal(len(ranges_m))
    )
    return [
        PowerObservation(receiver_id=r.id, power=float(p))
        for r, p in zip(receivers, powers_dbm, strict=True)
    ]


def tdoa_observations(
    receivers: list[Receiver],
    ranges_m: np.ndarray,
    rng: np.random.Generator,
    *,
    arrival_sigma_s: float = 0.0,
    reported_sigma_floor_s: float = 1e-9,
) -> list[TdoaObservation]:
    """All pairs, from per-receiver arrival times with independent timing errors."""
    arrivals_s = ranges_m / SPEED_OF_LIGHT_M_PER_S + arrival_sigma_s * rng.standard_normal(
        len(ranges_m)
    )
    pair_sigma_s = max(arrival_sigma_s * np.sqrt(2.0), reported_sigma_floor_s)
    return [
        TdoaObservation(
            receiver_i=receivers[i].id,
            receiver_j=receivers[j].id,
            time_difference_s=float(arrivals_s[i] - arrivals_s[j]),
            sigma_s=pair_sigma_s,
        )
        for i, j in itertools.combinations(range(len(receivers)), 2)
    ]


def truth_mahalanobis_squared(
    receivers: list[Receiver], result: LocalizationResult, latitude: float, longitude: float
) -> float:
    """Squared Mahalanobis distance of the truth under the result's covariance.

    The covariance is in local east/north metres at the fix; over the distances here a
    plane centred on the fix has those axes.
    """
    assert result.latitude is not None and result.longitude is not None
    assert result.covariance_en_m2 is not None
    frame = LocalFrame(result.latitude, result.longitude, 0.0)
    offset = np.array([float(v) for v in frame.geodetic_to_plane(latitude, longitude)])
    return float(offset @ np.linalg.solve(np.array(result.covariance_en_m2), offset))


def error_m(result: LocalizationResult, latitude: float, longitude: float) -> float:
    """Geodesic distance between the truth and the estimate."""
    assert result.latitude is not None and result.longitude is not None
    return float(GEOD.inv(longitude, latitude, result.longitude, result.latitude)[2])
