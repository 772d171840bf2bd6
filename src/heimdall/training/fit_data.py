"""The calibration fit's inputs and outputs, and the geometry the fit derives from them.

A ``KnownSourceSession`` is one approved acquisition of a transmitter whose position
(and maybe EIRP) is known. The fit needs, per session, the straight-line distance from
the source to every receiver and which sessions share a *site* (a known source
measured again at the same place sees the same terrain, hence the same shadowing: those
sessions are not independent evidence about a receiver's gain).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj

from heimdall.localization.calibration import Calibration
from heimdall.localization.observations import PowerObservation, Receiver, TdoaObservation

FloatArray = npt.NDArray[np.float64]


class NotEnoughData(ValueError):
    """No session (or no receiver) carries enough observations for a fit."""


@dataclass(frozen=True, slots=True)
class KnownSourceSession:
    """One approved acquisition of a transmitter whose position is known.

    ``powers`` are the receivers' measured powers; ``pairs`` the raw TDOA lags with
    ``sigma_s`` the correlation's own error only (no clock term, no clock correction).
    """

    task_id: str
    source_latitude: float
    source_longitude: float
    source_altitude_m: float
    source_eirp_dbm: float | None
    receivers: Sequence[Receiver]
    powers: Sequence[PowerObservation]
    pairs: Sequence[TdoaObservation] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class FitOptions:
    #: A receiver seen in fewer sessions keeps the prior's values (and the report says so).
    min_sessions_per_receiver: int = 5
    #: Sessions whose known positions are closer than this are one site (shared shadowing).
    same_site_m: float = 1_000.0
    #: TDOA pairs with a larger correlation sigma carry no timing (as in ``localize``).
    max_pair_sigma_s: float = 20e-6
    #: No receiver's fitted timing sigma goes below this (see ``timing_fit``).
    min_timing_sigma_ns: float = 10.0
    #: Nor does the fitted shadowing sigma (a perfect fit of few sessions is no proof).
    min_shadowing_sigma_db: float = 0.5
    #: Two-sided level of every reported confidence interval.
    confidence: float = 0.95


@dataclass(frozen=True, slots=True)
class CalibrationFit:
    calibration: Calibration
    #: JSON-safe: per-receiver values with confidence intervals and session counts,
    #: global parameters with intervals, residuals, receivers kept at defaults and why.
    report: dict[str, Any]


@lru_cache(maxsize=1)
def _to_ecef() -> pyproj.Transformer:
    # WGS84 geodetic (lat, lon, ellipsoidal height) to geocentric Cartesian metres.
    return pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=False)


def ecef_m(latitudes: Any, longitudes: Any, altitudes_m: Any) -> FloatArray:
    """Geocentric Cartesian coordinates, shape ``(n, 3)``.

    Example:
        >>> point = ecef_m([0.0], [0.0], [0.0])[0]
        >>> [round(float(v)) for v in point]  # on the equator at Greenwich
        [6378137, 0, 0]
    """
    x, y, z = _to_ecef().transform(
        np.atleast_1d(np.asarray(latitudes, dtype=np.float64)),
        np.atleast_1d(np.asarray(longitudes, dtype=np.float64)),
        np.atleast_1d(np.asarray(altitudes_m, dtype=np.float64)),
    )
    return np.column_stack([x, y, z]).astype(np.float64)


def source_ecef_m(session: KnownSourceSession) -> FloatArray:
    return ecef_m(session.source_latitude, session.source_longitude, session.source_altitude_m)[0]


def receiver_ranges_m(session: KnownSourceSession) -> dict[str, float]:
    """Straight-line distance from the known source to each of the session's receivers.

    Straight lines through the Earth's body, as ``localize`` uses (its ENU frame).
    """
    receivers = list(session.receivers)
    if not receivers:
        return {}
    sites = ecef_m(
        [r.latitude for r in receivers],
        [r.longitude for r in receivers],
        [r.altitude_m for r in receivers],
    )
    ranges = np.linalg.norm(sites - source_ecef_m(session), axis=1)
    return {r.id: float(d) for r, d in zip(receivers, ranges, strict=True)}


def site_keys(sessions: Sequence[KnownSourceSession], same_site_m: float) -> list[str]:
    """A site key per session: sessions within ``same_site_m`` of a site's first session share it.

    Deterministic: sessions are visited in task-id order and a site is named after the
    first task id it received.
    """
    order = sorted(range(len(sessions)), key=lambda k: sessions[k].task_id)
    positions = ecef_m(
        [s.source_latitude for s in sessions],
        [s.source_longitude for s in sessions],
        [s.source_altitude_m for s in sessions],
    )
    anchors = np.empty((0, 3))
    anchor_keys: list[str] = []
    keys = [""] * len(sessions)
    for index in order:
        distances = np.linalg.norm(anchors - positions[index], axis=1)
        near = np.flatnonzero(distances < same_site_m)
        if near.size:
            keys[index] = anchor_keys[int(near[0])]
        else:
            keys[index] = sessions[index].task_id
            anchor_keys.append(keys[index])
            anchors = np.vstack([anchors, positions[index]])
    return keys


def stable_fold(key: str, folds: int) -> int:
    """The cross-validation fold of a site key: a process-independent hash, modulo ``folds``.

    Example:
        >>> stable_fold("task-1", 5) == stable_fold("task-1", 5)
        True
    """
    return zlib.crc32(key.encode("utf-8")) % folds
