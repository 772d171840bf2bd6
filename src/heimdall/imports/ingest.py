"""The acquisition task's step for an import: staged recordings measured and stored.

An import is an acquisition whose recordings were made elsewhere: instead of recording
from receivers, the task reads the staged SigMF pairs (``imports.staging``), measures
each one as it would a live capture and writes it under ``sessions/{task_id}/``. The
rest (claim, deadline, cancel, SUCCESS with its measurements and the chained
localization, FAILED leaving nothing behind) is the acquisition task's own.
"""

from __future__ import annotations

import asyncio

from heimdall.acquisition.recording import (
    ReceiverOutcome,
    RecordingContext,
    StationTarget,
    gather_unless_stopped,
    load_recording,
    measure_and_store,
)
from heimdall.core.retry import retry_transient, storage_unavailable
from heimdall.core.storage import ObjectRef
from heimdall.imports.staging import Manifest, StagedRecording, read_manifest

#: Recordings measured at once: each is held in memory whole while it is.
CONCURRENT_RECORDINGS = 2


async def read_staged_manifest(ctx: RecordingContext) -> Manifest:
    settings = ctx.settings
    return await retry_transient(
        lambda: ctx.io.run(read_manifest, ctx.store, settings.s3_bucket_raw, ctx.task_id),
        budget_s=settings.dependency_retry_s,
        transient=storage_unavailable,
        what="reading the staged import",
    )


async def _ingest_one(ctx: RecordingContext, staged: StagedRecording) -> ReceiverOutcome:
    settings = ctx.settings
    bucket = settings.s3_bucket_raw
    capture = await retry_transient(
        lambda: ctx.io.run(
            load_recording,
            ctx.store,
            ObjectRef(bucket, staged.data_key).url,
            ObjectRef(bucket, staged.meta_key).url,
        ),
        budget_s=settings.dependency_retry_s,
        transient=storage_unavailable,
        what=f"reading the staged recording {staged.source}",
    )
    target = StationTarget(
        staged.station_id,
        staged.url,
        staged.protocol,
        staged.latitude,
        staged.longitude,
        staged.altitude_m,
    )
    try:
        return await measure_and_store(ctx, target, capture)
    except ValueError as exc:  # it cannot be measured
        return ReceiverOutcome(staged.station_id, error=f"{staged.source}: {exc}")


async def ingest_all(ctx: RecordingContext, manifest: Manifest) -> list[ReceiverOutcome]:
    """Every staged recording measured and stored; raises AcquisitionStopped when stopped,
    DependencyFailed when object storage stays down."""
    limit = asyncio.Semaphore(CONCURRENT_RECORDINGS)
    finished = 0

    async def one(staged: StagedRecording) -> ReceiverOutcome:
        nonlocal finished
        async with limit:
            outcome = await _ingest_one(ctx, staged)
        finished += 1
        await ctx.on_finished(outcome, finished)
        return outcome

    workers = [
        asyncio.create_task(one(s), name=f"import-{s.station_id}") for s in manifest.recordings
    ]
    return await gather_unless_stopped(ctx, workers)
