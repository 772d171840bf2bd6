"""The acquisition task: claim, wait for channels, record, store, finish, and recover.

One Celery task per acquisition, run by a thread of an acquisition worker on the
process's shared event loop (``runtime``). The acquisition row is the record of
state. A task attempt first *claims* the row (a holder id with an expiry it keeps
renewing); a second delivery of the same message finds it held and waits for the
first to finish or to lose its claim. Measurements are inserted in the transaction
that marks SUCCESS, so a redelivered attempt either finds the work committed or
starts over after removing the objects of the first attempt. Every way out of an
acquisition ends in SUCCESS, FAILED (reason stated, nothing kept) or CANCELLED
(nothing kept), before the acquisition's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition import ACQUIRE_TASK, LOCALIZE_TASK, repository
from heimdall.acquisition.recording import (
    AcquisitionStopped,
    Inflight,
    ReceiverOutcome,
    RecordingContext,
    StationTarget,
    record_all,
    session_prefix,
)
from heimdall.acquisition.runtime import AcquisitionRuntime, Running, get_runtime
from heimdall.acquisition.schemas import MAX_DURATION_S, MAX_WAIT_S
from heimdall.acquisition.sweeper import publish_now
from heimdall.core import metrics
from heimdall.core.celery_app import celery_app
from heimdall.core.retry import DependencyFailed
from heimdall.imports.ingest import ingest_all, read_staged_manifest
from heimdall.models import AcquisitionSource, AcquisitionState, WebSDRStation

logger = logging.getLogger(__name__)

# Finish this long before the deadline, so the final write lands before it.
DEADLINE_MARGIN_S = 1.0
# A second delivery checks this often whether the first attempt still holds the row.
HELD_POLL_S = 1.0
# The hard bound of a task, whatever its row says: the longest wait and recording allowed.
TIME_LIMIT_S = MAX_WAIT_S + MAX_DURATION_S + 600


# The acquisition row is the record; a result in Redis would be a second, weaker copy.
# The threads pool does not enforce Celery's time limits: run() bounds the wait itself.
@celery_app.task(
    name=ACQUIRE_TASK,
    ignore_result=True,
    soft_time_limit=TIME_LIMIT_S,
    time_limit=TIME_LIMIT_S + 30,
)
def acquire_iq(task_id: str) -> dict[str, Any]:
    runtime = get_runtime()
    return runtime.run(run_acquisition(uuid.UUID(task_id), runtime), timeout_s=TIME_LIMIT_S)


def summary(task_id: uuid.UUID, state: str, **extra: Any) -> dict[str, Any]:
    return {"task_id": str(task_id), "state": state, **extra}


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


async def run_acquisition(task_id: uuid.UUID, rt: AcquisitionRuntime) -> dict[str, Any]:
    holder = new_holder()
    claimed = await _claim(task_id, holder, rt)
    if isinstance(claimed, dict):
        return claimed
    running = rt.hold(task_id, holder)
    try:
        return await _run_claimed(claimed, running, rt)
    finally:
        rt.let_go(task_id)


async def _claim(
    task_id: uuid.UUID, holder: str, rt: AcquisitionRuntime
) -> repository.Claimed | dict[str, Any]:
    """The claimed row, or (as a summary) why there is nothing to do."""
    ttl_s = rt.settings.claim_ttl_s
    while True:
        claimed = await rt.db_retry(
            lambda s: repository.claim(s, task_id, holder, ttl_s), "claiming the acquisition"
        )
        if claimed is not None:
            return claimed
        state = await rt.db_retry(lambda s: repository.claim_state(s, task_id), "reading it")
        if state is None:
            logger.warning("acquisition %s does not exist; nothing to do", task_id)
            return summary(task_id, "UNKNOWN")
        if state.status not in repository.ACTIVE_STATES:
            if state.cleanup_pending:  # e.g. cancelled after the worker that held it crashed
                await rt.scheduler.release(task_id)
                await rt.remove_objects(task_id)
            return summary(task_id, state.status)
        # Another attempt holds it (a redelivery while the first still runs): wait for
        # it to finish, or to stop renewing its claim and let us take over.
        await asyncio.sleep(HELD_POLL_S)


async def _run_claimed(
    claimed: repository.Claimed, running: Running, rt: AcquisitionRuntime
) -> dict[str, Any]:
    settings = rt.settings
    task_id = claimed.task_id
    now = datetime.now(UTC)
    deadline_at = claimed.deadline_at or now + timedelta(
        seconds=settings.acquisition_max_wait_s
        + claimed.duration_seconds
        + settings.acquisition_finish_allowance_s
    )
    remaining_s = (deadline_at - now).total_seconds() - DEADLINE_MARGIN_S
    bound = asyncio.timeout(max(0.0, remaining_s))
    try:
        async with bound:
            if claimed.source == AcquisitionSource.imported.value:
                return await _import(claimed, running, rt)
            return await _wait_and_record(claimed, running, rt, deadline_at)
    except TimeoutError:
        if not bound.expired():
            raise
        return await _fail(
            task_id,
            running.holder,
            rt,
            f"did not finish by its deadline ({deadline_at:%Y-%m-%dT%H:%M:%SZ}): "
            "recording or storing took too long",
        )
    except DependencyFailed as exc:
        return await _fail(task_id, running.holder, rt, str(exc), deadline_at=deadline_at)
    except AcquisitionStopped:
        return await _stopped(task_id, running.holder, rt)


async def _wait_and_record(
    claimed: repository.Claimed,
    running: Running,
    rt: AcquisitionRuntime,
    deadline_at: datetime,
) -> dict[str, Any]:
    settings = rt.settings
    task_id, holder = claimed.task_id, running.holder
    if claimed.status == AcquisitionState.PROGRESS.value:
        # Redelivered after the worker recording it died: start over, cleanly.
        logger.info("acquisition %s redelivered; removing partial objects", task_id)
        if not await rt.remove_objects(task_id):
            raise DependencyFailed(f"object storage unreachable at {settings.s3_endpoint}")
        await rt.db_retry(
            lambda s: repository.restart_from_pending(s, task_id, holder), "starting over"
        )
    start_by = deadline_at - timedelta(
        seconds=claimed.duration_seconds + settings.acquisition_finish_allowance_s
    )
    if start_by <= datetime.now(UTC):
        return await _fail(
            task_id,
            holder,
            rt,
            f"too late to start: {claimed.duration_seconds:g} s of recording and its storing "
            f"would end after the deadline ({deadline_at:%Y-%m-%dT%H:%M:%SZ})",
        )
    targets = await rt.db_retry(lambda s: _targets(s, claimed.station_ids), "loading stations")
    waited = time.monotonic()
    granted = await _wait_for_channels(task_id, running, rt, start_by)
    if not granted:
        full = await rt.db_retry(
            lambda s: repository.full_stations(s, claimed.station_ids), "reading channels"
        )
        return await _fail(
            task_id,
            holder,
            rt,
            f"no free channel on every receiver within {time.monotonic() - waited:.0f} s "
            f"(without a free channel: {', '.join(full) or 'none now'})",
        )
    metrics.acquisition_wait_seconds.observe(time.monotonic() - waited)
    if running.stop.is_set():
        raise AcquisitionStopped(str(task_id))
    return await _record(claimed, running, rt, targets)


async def _wait_for_channels(
    task_id: uuid.UUID, running: Running, rt: AcquisitionRuntime, start_by: datetime
) -> bool:
    """True once granted (the row is PROGRESS with our leases); False past ``start_by``."""
    while True:
        timeout_s = (start_by - datetime.now(UTC)).total_seconds()
        if timeout_s <= 0:
            return False
        grant = asyncio.ensure_future(rt.scheduler.wait_for_grant(task_id, timeout_s))
        stop = asyncio.ensure_future(running.stop.wait())
        try:
            await asyncio.wait({grant, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            grant.cancel()
            stop.cancel()
        if running.stop.is_set():
            raise AcquisitionStopped(str(task_id))
        if grant.cancelled() or grant.exception() is not None:
            return False  # timed out
        if grant.result():
            return True
        found = await rt.db_retry(lambda s: repository.states(s, [task_id]), "reading state")
        row = found.get(task_id)
        if row is None or row.holder != running.holder:
            raise AcquisitionStopped(str(task_id))
        if row.status == AcquisitionState.PROGRESS.value:
            return True
        if row.status != AcquisitionState.PENDING.value:
            raise AcquisitionStopped(str(task_id))


async def _targets(session: AsyncSession, station_ids: list[str]) -> list[StationTarget]:
    stations = await session.scalars(
        select(WebSDRStation).where(WebSDRStation.id.in_(station_ids)).order_by(WebSDRStation.id)
    )
    return [
        StationTarget(s.id, s.url, s.protocol, s.latitude, s.longitude, s.altitude_m)
        for s in stations
    ]


class ProgressWriter:
    """Progress (and receivers' errors) written as receivers end, never waited for.

    Progress is for people watching: the final commit rewrites it and the errors, so
    a receiver's end does not wait for its row to be written, and the receivers of
    one acquisition, which end together, share one write (a wave's 28 writes at once
    had the pool open and close connections every wave). A write that lands after
    the acquisition ended changes nothing (it needs the row in PROGRESS and ours).
    """

    def __init__(self, rt: AcquisitionRuntime, task_id: uuid.UUID, holder: str, total: int):
        self._rt = rt
        self._task_id = task_id
        self._holder = holder
        self._total = total
        self._count = 0
        self._errors: list[dict[str, str]] = []
        self._writer: asyncio.Task[None] | None = None

    def note(self, outcome: ReceiverOutcome, count: int) -> None:
        self._count = max(self._count, count)
        if outcome.error is not None:
            self._errors.append({"station_id": outcome.station_id, "error": outcome.error})
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name=f"progress-{self._task_id}")

    async def _write(self) -> None:
        written = 0
        while written < self._count:
            count, errors, self._errors = self._count, self._errors, []
            try:  # never worth failing the recording for
                await self._rt.bookkeep(
                    partial(
                        repository.record_receiver_finished,
                        task_id=self._task_id,
                        holder=self._holder,
                        progress=round(100.0 * count / self._total, 1),
                        errors=errors,
                    )
                )
            except Exception as exc:
                logger.info("progress of %s not recorded: %s", self._task_id, exc)
            written = count

    async def written(self) -> None:
        """Wait for the write under way (tests, and a clean shutdown)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)


def _context(
    claimed: repository.Claimed, running: Running, rt: AcquisitionRuntime, *, total: int
) -> RecordingContext:
    """What recording (or importing) needs; progress is receivers done out of ``total``."""
    task_id, holder = claimed.task_id, running.holder

    async def released(station_id: str) -> None:
        rt.scheduler.release_soon(task_id, station_id)

    progress = ProgressWriter(rt, task_id, holder, total)

    async def finished(outcome: ReceiverOutcome, count: int) -> None:
        progress.note(outcome, count)

    return RecordingContext(
        task_id=task_id,
        frequency_hz=claimed.frequency_mhz * 1e6,
        duration_s=claimed.duration_seconds,
        description=claimed.description,
        settings=rt.settings,
        store=rt.store,
        cpu=rt.cpu,
        io=Inflight(rt.io),
        stop=running.stop,
        on_released=released,
        on_finished=finished,
        on_streaming=lambda: rt.starts.end(task_id),
        before_processing=rt.starts.wait_until_none,
    )


async def _record(
    claimed: repository.Claimed,
    running: Running,
    rt: AcquisitionRuntime,
    targets: list[StationTarget],
) -> dict[str, Any]:
    task_id, holder = claimed.task_id, running.holder
    context = _context(claimed, running, rt, total=len(targets))
    started = time.monotonic()
    rt.starts.begin(task_id)
    try:
        outcomes = await record_all(context, targets)
    finally:
        rt.starts.end(task_id)
        metrics.acquisition_seconds.observe(time.monotonic() - started)
        await rt.scheduler.release(task_id)
    return await _finish(claimed, holder, rt, outcomes)


async def _import(
    claimed: repository.Claimed, running: Running, rt: AcquisitionRuntime
) -> dict[str, Any]:
    """An import: its recordings, staged by the API, are read instead of recorded. It holds
    no receiver channel, and succeeds only whole: one recording that cannot be measured
    fails it (nothing is half-imported)."""
    task_id, holder = claimed.task_id, running.holder
    # Redelivered after the worker importing it died: start over from the staged files.
    redelivered = claimed.status == AcquisitionState.PROGRESS.value
    if redelivered and not await rt.remove_objects(task_id, keep_staged=True):
        raise DependencyFailed(f"object storage unreachable at {rt.settings.s3_endpoint}")
    started = await rt.db_retry(
        lambda s: repository.start_import(s, task_id, holder), "starting the import"
    )
    if not started:
        raise AcquisitionStopped(str(task_id))
    context = _context(claimed, running, rt, total=len(claimed.station_ids))
    manifest = await read_staged_manifest(context)
    outcomes = await ingest_all(context, manifest)
    failed = [o.error for o in outcomes if o.error is not None]
    if failed:
        return await _fail(task_id, holder, rt, "import not stored: " + "; ".join(failed))
    return await _finish(claimed, holder, rt, outcomes, new_stations=manifest.new_stations)


async def _finish(
    claimed: repository.Claimed,
    holder: str,
    rt: AcquisitionRuntime,
    outcomes: list[ReceiverOutcome],
    new_stations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    settings = rt.settings
    task_id = claimed.task_id
    delivered = [o for o in outcomes if o.error is None]
    failed = [o for o in outcomes if o.error is not None]
    # A request for fewer receivers than the minimum needs all of them.
    required = min(settings.min_receivers, len(outcomes))
    if len(delivered) < required:
        reasons = "; ".join(o.error or "" for o in failed)
        return await _fail(
            task_id,
            holder,
            rt,
            f"only {len(delivered)} of {len(outcomes)} receivers delivered (at least "
            f"{required} needed): {reasons}",
        )
    rows = [measurement_row(task_id, claimed.frequency_mhz, o) for o in delivered]
    then: tuple[str, list[Any]] | None = (
        (LOCALIZE_TASK, [str(task_id)]) if settings.localize_after_acquisition else None
    )
    state, message_id = await rt.db_retry(
        lambda s: repository.commit_success(
            s,
            task_id,
            holder,
            measurements=rows,
            errors=[{"station_id": o.station_id, "error": o.error or ""} for o in failed],
            result={
                "receivers_selected": len(outcomes),
                "receivers_delivered": len(delivered),
                "prefix": f"s3://{settings.s3_bucket_raw}/{session_prefix(task_id)}",
            },
            then=then,
            new_stations=new_stations or (),
        ),
        "storing the measurements",
    )
    if state != AcquisitionState.SUCCESS.value:
        return await _stopped(task_id, holder, rt)
    if claimed.source == AcquisitionSource.imported.value:
        await rt.remove_staged(task_id)
    metrics.acquisitions_succeeded_total.inc()
    if then is not None and message_id is not None:
        # After the commit; if the broker refuses, the outbox row stays for the sweeper.
        await publish_now(rt, message_id, then[0], then[1])
    return summary(task_id, state)


async def _stopped(task_id: uuid.UUID, holder: str, rt: AcquisitionRuntime) -> dict[str, Any]:
    """Cancelled, failed by the sweeper, or taken over: leave nothing of ours behind."""
    await rt.scheduler.release(task_id)
    found = await rt.db_retry(lambda s: repository.claim_state(s, task_id), "reading state")
    state = found.status if found is not None else "UNKNOWN"
    if found is not None and found.status not in repository.ACTIVE_STATES:
        if found.cleanup_pending:
            await rt.remove_objects(task_id)
        await rt.db_retry(lambda s: repository.release_claim(s, task_id, holder), "letting go")
    return summary(task_id, state)


async def _fail(
    task_id: uuid.UUID,
    holder: str,
    rt: AcquisitionRuntime,
    message: str,
    deadline_at: datetime | None = None,
) -> dict[str, Any]:
    """FAILED with the reason; nothing kept. When PostgreSQL itself is what failed, the
    FAILED state is written as soon as it answers again (until the deadline; past it
    the sweeper writes its own)."""
    await rt.scheduler.release(task_id)
    until = deadline_at or datetime.now(UTC) + timedelta(seconds=rt.settings.dependency_retry_s)
    while True:
        try:
            marked = await rt.db_retry(
                lambda s: repository.mark_failed(s, task_id, holder, message), "marking FAILED"
            )
            break
        except DependencyFailed:
            if datetime.now(UTC) >= until:
                logger.error("acquisition %s: could not record FAILED (%s)", task_id, message)
                await rt.remove_objects(task_id)
                return summary(task_id, AcquisitionState.FAILED.value, error=message)
    if not marked:
        return await _stopped(task_id, holder, rt)
    metrics.acquisitions_failed_total.inc()
    await rt.remove_objects(task_id)
    return summary(task_id, AcquisitionState.FAILED.value, error=message)


def measurement_row(
    task_id: uuid.UUID, frequency_mhz: float, outcome: ReceiverOutcome
) -> dict[str, Any]:
    m = outcome.measurement
    assert m is not None and outcome.start_time is not None and outcome.data_url is not None
    return {
        "id": uuid.uuid4(),
        "task_id": task_id,
        "websdr_id": outcome.station_id,
        "timestamp": outcome.start_time,
        "frequency_mhz": frequency_mhz,
        "snr": float(m.snr_db),
        "frequency_offset": float(m.frequency_offset_hz),
        "power_dbm": None if m.power_dbm is None else float(m.power_dbm),
        "noise_floor_dbm": None if m.noise_floor_dbm is None else float(m.noise_floor_dbm),
        "signal_power_dbfs": float(m.signal_power_dbfs),
        "noise_floor_dbfs": float(m.noise_floor_dbfs),
        "occupied_bandwidth_hz": float(m.occupied_bandwidth_hz),
        "sample_rate_hz": outcome.sample_rate_hz,
        "sample_count": outcome.sample_count,
        "gps_locked": outcome.gps_locked,
        "data_url": outcome.data_url,
        "meta_url": outcome.meta_url,
        "sigmf_meta": outcome.sigmf_meta,
    }
