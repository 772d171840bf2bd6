"""The acquisition task: one Celery task per acquisition, idempotent on redelivery.

The acquisition row is the record of state. The task locks it to start and to
finish; measurements are inserted in the same transaction that marks SUCCESS,
so a redelivered task either finds the work committed (and returns) or finds
nothing committed (and starts again, after removing any partial objects).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from heimdall.acquisition import repository
from heimdall.acquisition.recording import (
    AcquisitionCancelled,
    ReceiverOutcome,
    StationTarget,
    record_all,
    session_prefix,
)
from heimdall.core import metrics
from heimdall.core.celery_app import celery_app
from heimdall.core.db import session_scope
from heimdall.core.settings import get_settings
from heimdall.core.storage import ObjectStore, ObjectStoreError
from heimdall.models import Acquisition, AcquisitionState, Measurement
from heimdall.stations.repository import get_many_sync

logger = logging.getLogger(__name__)


def summary(acquisition: Acquisition) -> dict[str, Any]:
    return {"task_id": str(acquisition.task_id), "state": acquisition.status}


# The acquisition row is the record; a result in Redis would be a second, weaker copy.
@celery_app.task(name="heimdall.acquisition.acquire_iq", ignore_result=True)
def acquire_iq(task_id: str) -> dict[str, Any]:
    return run_acquisition(uuid.UUID(task_id))


def run_acquisition(task_id: uuid.UUID) -> dict[str, Any]:
    settings = get_settings()
    store = ObjectStore(settings)
    with session_scope() as session:
        acquisition = repository.lock(session, task_id)
        if acquisition is None:
            logger.warning("acquisition %s does not exist; nothing to do", task_id)
            return {"task_id": str(task_id), "state": "UNKNOWN"}
        if acquisition.state.finished:
            return summary(acquisition)  # a redelivery of work already done
        redelivered = acquisition.state is AcquisitionState.PROGRESS
        acquisition.status = AcquisitionState.PROGRESS.value
        acquisition.started_at = datetime.now(UTC)
        acquisition.progress = 0.0
        acquisition.errors = []
        targets = [
            StationTarget(s.id, s.url, s.protocol, s.latitude, s.longitude, s.altitude_m)
            for s in get_many_sync(session, acquisition.station_ids)
        ]
        frequency_hz = acquisition.frequency_mhz * 1e6
        duration_s = acquisition.duration_seconds
        description = acquisition.description

    started = time.monotonic()
    try:
        if redelivered:
            logger.info("acquisition %s redelivered; removing partial objects", task_id)
            store.delete_prefix(settings.s3_bucket_raw, session_prefix(task_id))
        outcomes = asyncio.run(
            record_all(
                task_id,
                targets,
                frequency_hz=frequency_hz,
                duration_s=duration_s,
                description=description,
                settings=settings,
                store=store,
                on_finished=lambda outcome, count: _progress(task_id, outcome, count, len(targets)),
                is_cancelled=lambda: _is_cancelled(task_id),
            )
        )
    except AcquisitionCancelled:
        _remove_objects(store, task_id)
        return {"task_id": str(task_id), "state": AcquisitionState.CANCELLED.value}
    except ObjectStoreError as exc:
        return _fail(task_id, str(exc), store)
    finally:
        metrics.acquisition_seconds.observe(time.monotonic() - started)
    return _finish(task_id, outcomes, len(targets), store)


def _progress(task_id: uuid.UUID, outcome: ReceiverOutcome, finished: int, total: int) -> None:
    error = (
        None
        if outcome.error is None
        else {"station_id": outcome.station_id, "error": outcome.error}
    )
    with session_scope() as session:
        repository.record_receiver_finished(
            session, task_id, progress=round(100.0 * finished / total, 1), error=error
        )


def _is_cancelled(task_id: uuid.UUID) -> bool:
    with session_scope() as session:
        return repository.status_of(session, task_id) == AcquisitionState.CANCELLED.value


def _remove_objects(store: ObjectStore, task_id: uuid.UUID) -> None:
    try:
        store.delete_prefix(get_settings().s3_bucket_raw, session_prefix(task_id))
    except ObjectStoreError as exc:
        logger.error("could not remove objects of acquisition %s: %s", task_id, exc)


def _fail(task_id: uuid.UUID, message: str, store: ObjectStore) -> dict[str, Any]:
    with session_scope() as session:
        acquisition = repository.lock(session, task_id)
        if acquisition is None or acquisition.state.finished:
            return {
                "task_id": str(task_id),
                "state": acquisition.status if acquisition else "UNKNOWN",
            }
        repository.delete_measurements(session, task_id)
        acquisition.status = AcquisitionState.FAILED.value
        acquisition.error_message = message
        acquisition.finished_at = datetime.now(UTC)
    metrics.acquisitions_failed_total.inc()
    _remove_objects(store, task_id)
    return {"task_id": str(task_id), "state": AcquisitionState.FAILED.value, "error": message}


def _finish(
    task_id: uuid.UUID, outcomes: list[ReceiverOutcome], selected: int, store: ObjectStore
) -> dict[str, Any]:
    settings = get_settings()
    delivered = [o for o in outcomes if o.error is None]
    failed = [o for o in outcomes if o.error is not None]
    # A request for fewer receivers than the minimum needs all of them.
    required = min(settings.min_receivers, selected)
    if len(delivered) < required:
        reasons = "; ".join(o.error or "" for o in failed)
        return _fail(
            task_id,
            f"only {len(delivered)} of {selected} receivers delivered (at least {required} "
            f"needed): {reasons}",
            store,
        )
    with session_scope() as session:
        acquisition = repository.lock(session, task_id)
        if acquisition is None or acquisition.state is AcquisitionState.CANCELLED:
            cancelled = True
        else:
            cancelled = False
            repository.delete_measurements(session, task_id)
            repository.add_measurements(
                session, [_measurement_row(acquisition, o) for o in delivered]
            )
            acquisition.status = AcquisitionState.SUCCESS.value
            acquisition.progress = 100.0
            acquisition.errors = [
                {"station_id": o.station_id, "error": o.error or ""} for o in failed
            ]
            acquisition.finished_at = datetime.now(UTC)
            acquisition.result = {
                "receivers_selected": selected,
                "receivers_delivered": len(delivered),
                "prefix": f"s3://{settings.s3_bucket_raw}/{session_prefix(task_id)}",
            }
    if cancelled:
        _remove_objects(store, task_id)
        return {"task_id": str(task_id), "state": AcquisitionState.CANCELLED.value}
    metrics.acquisitions_succeeded_total.inc()
    if settings.localize_after_acquisition:
        # After the commit: the localization task reloads everything from the database.
        from heimdall.localization.tasks import localize_acquisition

        localize_acquisition.apply_async(args=[str(task_id)])
    return {"task_id": str(task_id), "state": AcquisitionState.SUCCESS.value}


def _measurement_row(acquisition: Acquisition, outcome: ReceiverOutcome) -> Measurement:
    m = outcome.measurement
    assert m is not None and outcome.start_time is not None and outcome.data_url is not None
    return Measurement(
        id=uuid.uuid4(),
        task_id=acquisition.task_id,
        websdr_id=outcome.station_id,
        timestamp=outcome.start_time,
        frequency_mhz=acquisition.frequency_mhz,
        snr=float(m.snr_db),
        frequency_offset=float(m.frequency_offset_hz),
        power_dbm=None if m.power_dbm is None else float(m.power_dbm),
        noise_floor_dbm=None if m.noise_floor_dbm is None else float(m.noise_floor_dbm),
        signal_power_dbfs=float(m.signal_power_dbfs),
        noise_floor_dbfs=float(m.noise_floor_dbfs),
        occupied_bandwidth_hz=float(m.occupied_bandwidth_hz),
        sample_rate_hz=outcome.sample_rate_hz,
        sample_count=outcome.sample_count,
        gps_locked=outcome.gps_locked,
        data_url=outcome.data_url,
        meta_url=outcome.meta_url,
    )
