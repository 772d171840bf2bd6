"""Fit the localization calibration from approved sessions of known sources (pure).

INTERFACE ONLY: the implementation lands with issue 10's fit work. Numpy in, numpy out;
no database, no storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from heimdall.localization.calibration import Calibration
from heimdall.localization.estimate import PowerObservation, Receiver, TdoaObservation


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


@dataclass(frozen=True, slots=True)
class CalibrationFit:
    calibration: Calibration
    #: JSON-safe: per-receiver values with confidence intervals and session counts,
    #: global parameters with intervals, residuals, receivers kept at defaults and why.
    report: dict[str, Any]


def fit_calibration(
    sessions: Sequence[KnownSourceSession],
    *,
    version: str,
    prior: Calibration,
    options: FitOptions = FitOptions(),
) -> CalibrationFit:
    raise NotImplementedError("calibration fit: issue 10")


def evaluate_calibration(
    sessions: Sequence[KnownSourceSession], calibration: Calibration
) -> dict[str, Any]:
    """Localize every session with ``calibration``; errors against the known positions."""
    raise NotImplementedError("calibration evaluation: issue 10")


def cross_validate(
    sessions: Sequence[KnownSourceSession],
    *,
    prior: Calibration,
    folds: int = 5,
    options: FitOptions = FitOptions(),
) -> dict[str, Any]:
    """Held-out metrics of the fit: each fold localized with a fit of the other folds."""
    raise NotImplementedError("calibration cross-validation: issue 10")


def compare_calibrations(
    candidate_metrics: dict[str, Any], active_metrics: dict[str, Any]
) -> tuple[bool, dict[str, Any]]:
    """Whether the candidate's held-out metrics beat the active calibration's, and how."""
    raise NotImplementedError("calibration comparison: issue 10")
