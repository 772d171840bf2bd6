"""The calibration training task: one Celery task per job, on the training queue.

The ``training_sessions`` row is the record of state. The task locks it to start and to
finish; the model row, its artifact and the job's SUCCESS are written in one
transaction, so a cancel or a crash never leaves a half-registered model. Cancel is a
state change the task polls between steps (and between sessions while loading).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from heimdall.core import metrics
from heimdall.core.celery_app import celery_app
from heimdall.core.db import session_scope
from heimdall.core.settings import Settings, get_settings
from heimdall.core.storage import ObjectStore
from heimdall.models import JobState, Model
from heimdall.training import job as training_job
from heimdall.training import repository
from heimdall.training.calibration_fit import NotEnoughData
from heimdall.training.schemas import JobRequest

logger = logging.getLogger(__name__)

ARTIFACT_PREFIX = "models/calibration"


@celery_app.task(name="heimdall.training.calibrate", ignore_result=True)
def calibrate(job_id: str) -> dict[str, Any]:
    return run_training_job(uuid.UUID(job_id))


def _outcome(job_id: uuid.UUID, state: str, **extra: Any) -> dict[str, Any]:
    return {"job_id": str(job_id), "state": state, **extra}


def run_training_job(
    job_id: uuid.UUID, *, settings: Settings | None = None, store: ObjectStore | None = None
) -> dict[str, Any]:
    settings = settings or get_settings()
    store = store or ObjectStore(settings)
    with session_scope() as session:
        job = repository.lock_job(session, job_id)
        if job is None:
            logger.warning("training job %s does not exist; nothing to do", job_id)
            return _outcome(job_id, "UNKNOWN")
        if job.state.finished:
            return _outcome(job_id, job.status)  # a redelivery of work already done
        job.status = JobState.PROGRESS.value
        job.started_at = datetime.now(UTC)
        job.progress = 0.0
        job.error_message = None
        job.result = None
        request = JobRequest.model_validate(job.parameters)

    metrics.training_jobs_total.labels(state="started").inc()
    outcome = _train_and_register(job_id, request, settings, store)
    ended = {"SUCCESS": "succeeded", "FAILED": "failed", "CANCELLED": "cancelled"}
    if outcome["state"] in ended:
        metrics.training_jobs_total.labels(state=ended[outcome["state"]]).inc()
    return outcome


def _train_and_register(
    job_id: uuid.UUID, request: JobRequest, settings: Settings, store: ObjectStore
) -> dict[str, Any]:
    hooks = training_job.JobHooks(
        progress=lambda percent: _progress(job_id, percent),
        cancelled=lambda: _is_cancelled(job_id),
    )
    try:
        with session_scope() as session:
            training_set, source_ids = training_job.load_training_set(
                session, store, settings, request, hooks
            )
            baseline, _ = training_job.baseline_calibration(session, settings)
            version = f"calibration-v{repository.next_version(session)}"
        candidate = training_job.train(
            training_set,
            request=request,
            known_source_ids=source_ids,
            baseline=baseline,
            version=version,
            hooks=hooks,
        )
        return _register(job_id, request, candidate, settings, store)
    except training_job.JobCancelled:
        return _outcome(job_id, JobState.CANCELLED.value)
    except (training_job.NoTrainingData, NotEnoughData) as exc:
        return _fail(job_id, str(exc))
    except Exception as exc:  # a failed job says why; the worker stays healthy
        logger.exception("training job %s failed", job_id)
        return _fail(job_id, f"{type(exc).__name__}: {exc}")


def _progress(job_id: uuid.UUID, percent: float) -> None:
    with session_scope() as session:
        repository.set_job_progress(session, job_id, percent)


def _is_cancelled(job_id: uuid.UUID) -> bool:
    with session_scope() as session:
        return repository.job_status(session, job_id) == JobState.CANCELLED.value


def _json_safe(value: Any) -> Any:
    """Plain JSON (numpy scalars and the like become numbers or strings) for JSONB columns."""

    def convert(item: Any) -> Any:
        if hasattr(item, "item"):  # numpy scalar
            return item.item()
        if hasattr(item, "tolist"):  # numpy array
            return item.tolist()
        return str(item)

    return json.loads(json.dumps(value, default=convert))


def _fail(job_id: uuid.UUID, message: str) -> dict[str, Any]:
    with session_scope() as session:
        job = repository.lock_job(session, job_id)
        if job is None or job.state.finished:
            return _outcome(job_id, job.status if job else "UNKNOWN")
        job.status = JobState.FAILED.value
        job.error_message = message
        job.finished_at = datetime.now(UTC)
    return _outcome(job_id, JobState.FAILED.value, error=message)


def _register(
    job_id: uuid.UUID,
    request: JobRequest,
    candidate: training_job.Candidate,
    settings: Settings,
    store: ObjectStore,
) -> dict[str, Any]:
    """Store the artifact, insert the model, maybe activate it, finish the job: one commit."""
    with session_scope() as session:
        job = repository.lock_job(session, job_id)
        if job is None or job.state is not JobState.PROGRESS:
            return _outcome(job_id, job.status if job else "UNKNOWN")  # cancelled meanwhile
        repository.lock_registry(session)
        number = repository.next_version(session)
        calibration = candidate.fit.calibration.model_copy(
            update={"version": f"calibration-v{number}"}
        )
        activate = request.activate == "auto" and candidate.beats_baseline
        metrics = _json_safe(
            {
                "held_out": candidate.held_out,
                "baseline": candidate.baseline,
                "baseline_version": candidate.baseline_version,
                "beats_baseline": candidate.beats_baseline,
                "comparison": candidate.comparison,
                "fit_report": training_job.report_summary(candidate.fit.report),
            }
        )
        artifact = store.put_bytes(
            settings.s3_bucket_models,
            f"{ARTIFACT_PREFIX}/v{number}.json",
            json.dumps(
                {
                    "calibration": calibration.model_dump(mode="json"),
                    "report": _json_safe(candidate.fit.report),
                    "metrics": metrics,
                    "training_data": candidate.training_data,
                },
            ).encode(),
            content_type="application/json",
        )
        model = Model(
            id=uuid.uuid4(),
            name=repository.CALIBRATION_MODEL_NAME,
            version=number,
            kind="calibration",
            parameters=calibration.model_dump(mode="json"),
            metrics=metrics,
            training_data=candidate.training_data,
            artifact_url=artifact.url,
            is_active=False,
            training_session_id=job_id,
            created_at=datetime.now(UTC),
        )
        session.add(model)
        session.flush()
        if activate:
            repository.set_active(session, model.name, model.id)
            repository.record_activation(session, model.name, model.id, f"auto (job {job_id})")
        reason = (
            "activated: it beats the calibration in use on held-out sessions"
            if activate
            else "kept inactive: activation disabled for this job"
            if request.activate == "never"
            else "kept inactive: it does not beat the calibration in use on held-out sessions"
        )
        job.status = JobState.SUCCESS.value
        job.progress = 100.0
        job.finished_at = datetime.now(UTC)
        job.model_id = model.id
        job.metrics = model.metrics
        job.result = {
            "model_id": str(model.id),
            "version": number,
            "calibration_version": calibration.version,
            "activated": activate,
            "decision": reason,
            "comparison": candidate.comparison,
            "sessions_used": candidate.training_data["sessions"],
            "sessions_without_tdoa": candidate.training_data["sessions_without_tdoa"],
            # Receivers the fit left at the prior's values, and why.
            "kept_at_prior": metrics["fit_report"].get("kept_at_prior", []),
            "fit_report": metrics["fit_report"],
        }
    return _outcome(job_id, JobState.SUCCESS.value, model_id=str(model.id), activated=activate)
