"""One calibration training job, from approved sessions to a candidate and its comparison.

Reads the sessions through the data loader (approved, SUCCESS, linked to a known
source, inside the job's band and window), turns each into a ``KnownSourceSession``
(powers from its measurements, TDOA pairs from its stored recordings with the
correlation's own sigmas), cross-validates the fit, evaluates the calibration in use on
the same sessions, compares, and fits on all of them. Registering the result is the
task's business (``training.tasks``), in the transaction that finishes the job.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore, ObjectStoreError, ObjectStoreUnavailable
from heimdall.localization.calibration import Calibration
from heimdall.localization.observations import Receiver, TdoaObservation
from heimdall.localization.service import (
    default_calibration,
    power_observations,
    tdoa_observations,
)
from heimdall.models import KnownSource, Measurement, WebSDRStation
from heimdall.training import repository
from heimdall.training.calibration_fit import (
    CalibrationFit,
    FitOptions,
    KnownSourceSession,
    NotEnoughData,
    compare_calibrations,
    cross_validate,
    evaluate_calibration,
    fit_calibration,
)
from heimdall.training.data import RFDataLoader
from heimdall.training.schemas import JobRequest
from heimdall.training.service import no_data_message

logger = logging.getLogger(__name__)


class NoTrainingData(ValueError):
    """Nothing in the job's selection can be trained on."""


class JobCancelled(Exception):
    pass


@dataclass(frozen=True, slots=True)
class JobHooks:
    """How the job reports progress (0-100) and learns that it was cancelled."""

    progress: Callable[[float], None]
    cancelled: Callable[[], bool]

    def step(self, percent: float) -> None:
        if self.cancelled():
            raise JobCancelled
        self.progress(round(percent, 1))


@dataclass(frozen=True, slots=True)
class TrainingSet:
    sessions: list[KnownSourceSession]
    #: task id -> why its TDOA pairs are missing (recordings unreadable).
    without_tdoa: dict[str, str] = field(default_factory=dict)

    def summary(self, request: JobRequest, known_source_ids: set[uuid.UUID]) -> dict[str, Any]:
        per_receiver = Counter(p.receiver_id for s in self.sessions for p in s.powers)
        return {
            "task_ids": [s.task_id for s in self.sessions],
            "sessions": len(self.sessions),
            "sessions_per_receiver": dict(sorted(per_receiver.items())),
            "known_source_ids": sorted(str(i) for i in known_source_ids),
            "sessions_without_tdoa": self.without_tdoa,
            "selection": request.selection().model_dump(mode="json"),
        }


@dataclass(frozen=True, slots=True)
class Candidate:
    fit: CalibrationFit
    held_out: dict[str, Any]
    baseline: dict[str, Any]
    baseline_version: str
    beats_baseline: bool
    comparison: dict[str, Any]
    training_data: dict[str, Any]


def load_training_set(
    session: Session,
    store: ObjectStore,
    settings: Settings,
    request: JobRequest,
    hooks: JobHooks,
    *,
    first_percent: float = 5.0,
    last_percent: float = 60.0,
) -> tuple[TrainingSet, set[uuid.UUID]]:
    """Every approved known-source session of the selection as a ``KnownSourceSession``."""
    selection = request.selection()
    chosen = RFDataLoader(session).sessions(selection, known_sources_only=True)
    if not chosen:
        raise NoTrainingData(no_data_message(selection))
    source_ids = {source_id for _, source_id in chosen if source_id is not None}
    sources = repository.known_sources_by_id(session, list(source_ids))
    sessions: list[KnownSourceSession] = []
    without_tdoa: dict[str, str] = {}
    for index, (task_id, source_id) in enumerate(chosen):
        source = sources.get(source_id) if source_id is not None else None
        if source is not None:  # (a source deleted since the selection ran is skipped)
            built, missing = _known_source_session(session, store, settings, task_id, source)
            sessions.append(built)
            if missing:
                without_tdoa[str(task_id)] = missing
        done = (index + 1) / len(chosen)
        hooks.step(first_percent + (last_percent - first_percent) * done)
    if not sessions:
        raise NoTrainingData(no_data_message(selection))
    return TrainingSet(sessions, without_tdoa), source_ids


def _known_source_session(
    session: Session,
    store: ObjectStore,
    settings: Settings,
    task_id: uuid.UUID,
    source: KnownSource,
) -> tuple[KnownSourceSession, str]:
    measurements = list(
        session.scalars(
            select(Measurement)
            .where(Measurement.task_id == task_id)
            .order_by(Measurement.websdr_id)
            .options(undefer(Measurement.sigmf_meta))  # the recordings' timing
        ).all()
    )
    stations = session.scalars(
        select(WebSDRStation).where(WebSDRStation.id.in_([m.websdr_id for m in measurements]))
    ).all()
    receivers = {
        s.id: Receiver(id=s.id, latitude=s.latitude, longitude=s.longitude, altitude_m=s.altitude_m)
        for s in stations
    }
    pairs, missing = known_source_pairs(store, measurements, receivers, settings)
    built = KnownSourceSession(
        task_id=str(task_id),
        source_latitude=source.latitude,
        source_longitude=source.longitude,
        source_altitude_m=source.altitude_m,
        source_eirp_dbm=source.eirp_dbm,
        receivers=list(receivers.values()),
        powers=power_observations(measurements),
        pairs=pairs,
    )
    return built, missing


def known_source_pairs(
    store: ObjectStore,
    measurements: list[Measurement],
    receivers: dict[str, Receiver],
    settings: Settings,
) -> tuple[list[TdoaObservation], str]:
    """A known-source session's TDOA pairs, and why it has none if its recordings are gone.

    Correlated as a localization's, but over the training's own window
    (``Settings.training_window_s``: the localization's by default): the job is
    offline, not bound by the localization's latency, and a longer span averages more of
    the fading echoes out of the lags the clock offsets are fitted from.
    """
    try:
        pairs = tdoa_observations(
            store, measurements, receivers, window_s=settings.training_window_s
        )
    except ObjectStoreUnavailable:
        raise  # the store is down: the job fails and says so
    except ObjectStoreError as exc:
        # One session's recordings gone: its powers still count, the result says so.
        return [], f"recordings unreadable: {exc}"
    return pairs, ""


def baseline_calibration(session: Session, settings: Settings) -> tuple[Calibration, str]:
    """The calibration localizations use now (the active model's, or the default)."""
    active = repository.active_model(session)
    if active is None:
        calibration = default_calibration(settings)
    else:
        calibration = Calibration.model_validate(active.parameters)
    return calibration, calibration.version


def train(
    training_set: TrainingSet,
    *,
    request: JobRequest,
    known_source_ids: set[uuid.UUID],
    baseline: Calibration,
    version: str,
    hooks: JobHooks,
) -> Candidate:
    """Held-out metrics of the fit, the baseline on the same sessions, the fit on all."""
    sessions = training_set.sessions
    if len(sessions) < 2:
        raise NotEnoughData(
            f"{len(sessions)} approved known-source session in the selection: "
            "cross-validation needs at least 2"
        )
    options = FitOptions()
    folds = min(request.folds, len(sessions))
    held_out = cross_validate(sessions, prior=baseline, folds=folds, options=options)
    hooks.step(80)
    baseline_metrics = evaluate_calibration(sessions, baseline)
    beats, comparison = compare_calibrations(held_out, baseline_metrics)
    hooks.step(85)
    fit = fit_calibration(sessions, version=version, prior=baseline, options=options)
    hooks.step(95)
    return Candidate(
        fit=fit,
        held_out=held_out,
        baseline=baseline_metrics,
        baseline_version=baseline.version,
        beats_baseline=beats,
        comparison=comparison,
        training_data=training_set.summary(request, known_source_ids),
    )


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The fit report without its per-session details (those stay in the artifact)."""
    return {key: value for key, value in report.items() if key != "sessions"}
