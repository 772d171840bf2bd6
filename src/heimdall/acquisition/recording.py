"""Record, measure and store one acquisition's receivers concurrently (worker side).

Every receiver runs as its own asyncio task: connect and hand-shake, wait at a
common start gate so that all captures cover the same time, record, give the
channel back, then measure (CPU, in a thread) and write the SigMF pair (S3, in a
thread, retried while the store is briefly down). A receiver that fails becomes
an outcome with an error; the object store staying down, or the acquisition
being stopped (cancel, deadline), ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from heimdall.acquisition.audio_recording import (
    measure_capture,
    record_openwebrx,
    store_audio_recording,
)
from heimdall.acquisition.stored import StoredRecording, write_sigmf_pair
from heimdall.core import metrics
from heimdall.core.retry import retry_transient, storage_unavailable
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectRef, ObjectStore, parse_s3_url
from heimdall.dsp.measurement import Measurement
from heimdall.receivers.capture import AudioCapture, Capture, IQCapture
from heimdall.receivers.errors import ReceiverBusy, ReceiverError, ReceiverProtocolError
from heimdall.receivers.kiwisdr import StationEndpoint, record_iq
from heimdall.receivers.sigmf_io import capture_from_sigmf, encode_ci16_le, sigmf_metadata

P = ParamSpec("P")
T = TypeVar("T")

BUSY_FIRST_DELAY_S = 0.05
BUSY_MAX_DELAY_S = 1.0


class AcquisitionStopped(Exception):
    """The acquisition was cancelled, failed elsewhere or taken over while recording."""


@dataclass(frozen=True, slots=True)
class StationTarget:
    id: str
    url: str
    protocol: str
    latitude: float
    longitude: float
    altitude_m: float


@dataclass(frozen=True, slots=True)
class ReceiverOutcome:
    station_id: str
    error: str | None = None
    measurement: Measurement | None = None
    start_time: datetime | None = None
    sample_rate_hz: float | None = None
    sample_count: int | None = None
    gps_locked: bool = False
    data_url: str | None = None
    meta_url: str | None = None
    sigmf_meta: dict[str, Any] | None = None


def session_prefix(task_id: uuid.UUID) -> str:
    return f"sessions/{task_id}/"


class StartGate:
    """Receivers of one acquisition start streaming together, so their captures overlap.

    Each receiver reports ``ready`` once its handshake is done, or withdraws when it
    fails; the gate opens when every receiver has done either, or ``max_wait_s``
    after the first one was ready (a receiver slower than that starts on its own).
    """

    def __init__(
        self,
        station_ids: list[str],
        max_wait_s: float,
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self._pending = set(station_ids)
        self._open = asyncio.Event()
        self._max_wait_s = max_wait_s
        self._on_open = on_open
        self.opened_at_ns: int | None = None

    def _update(self) -> None:
        if not self._pending and not self._open.is_set():
            self.opened_at_ns = time.time_ns()
            self._open.set()
            if self._on_open is not None:
                self._on_open()

    def withdraw(self, station_id: str) -> None:
        self._pending.discard(station_id)
        self._update()

    async def ready(self, station_id: str) -> None:
        self._pending.discard(station_id)
        self._update()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._max_wait_s):
                await self._open.wait()


class Inflight:
    """Blocking calls run in an executor, tracked so that a stopped acquisition can
    wait for them (an S3 write still running must not land after the clean-up)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._futures: set[asyncio.Future[Any]] = set()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        # Shielded: cancelling the caller leaves the thread's future to finish and be drained.
        return await asyncio.shield(future)

    async def drain(self) -> None:
        if self._futures:
            await asyncio.wait(list(self._futures))


log = logging.getLogger(__name__)

#: A KiwiSDR stream this many times faster than its sample rate is not a real receiver.
MAX_STREAM_SPEEDUP = 3.0


async def record_station(
    target: StationTarget,
    *,
    frequency_hz: float,
    duration_s: float,
    settings: Settings,
    start: Callable[[], Awaitable[None]] | None = None,
) -> Capture:
    """One receiver's recording; whatever its answers do to the driver ends as that
    receiver's error, never the acquisition's (the other receivers go on)."""
    try:
        return await _record_station(
            target, frequency_hz=frequency_hz, duration_s=duration_s, settings=settings, start=start
        )
    except ReceiverError:
        raise
    except Exception as exc:  # a driver bug a hostile receiver found: log it, drop it
        log.exception("receiver %s broke its driver", target.id)
        raise ReceiverProtocolError(
            target.id, f"its answers broke the driver ({type(exc).__name__}); dropped"
        ) from exc


async def _record_station(
    target: StationTarget,
    *,
    frequency_hz: float,
    duration_s: float,
    settings: Settings,
    start: Callable[[], Awaitable[None]] | None = None,
) -> Capture:
    if target.protocol == "openwebrx":
        # No IQ, no GPS time: audio, spectra and S-meter, for power and frequency.
        return await record_openwebrx(
            target, frequency_hz=frequency_hz, duration_s=duration_s, settings=settings
        )
    if target.protocol != "kiwisdr":
        raise ReceiverError(target.id, f"protocol {target.protocol!r} has no driver")
    return await record_iq(
        StationEndpoint(target.id, target.url, settings.receiver_password.get_secret_value()),
        frequency_hz=frequency_hz,
        duration_s=duration_s,
        connect_timeout_s=settings.receiver_connect_timeout_s,
        first_frame_timeout_s=settings.receiver_first_frame_timeout_s,
        stall_timeout_s=settings.receiver_stall_timeout_s,
        close_timeout_s=settings.receiver_close_timeout_s,
        start=start,
        max_speedup=MAX_STREAM_SPEEDUP,
    )


async def record_when_free(
    target: StationTarget,
    *,
    frequency_hz: float,
    duration_s: float,
    settings: Settings,
    gate: StartGate,
) -> Capture:
    """``record_station``, tried again while the receiver answers "too busy".

    Its channels are shared with other listeners: busy is normal, and is an error
    only when it lasts ``receiver_busy_retry_s``.
    """
    if target.protocol != "kiwisdr":
        gate.withdraw(target.id)  # no start hook: such a receiver streams when it is ready
    give_up_at = time.monotonic() + settings.receiver_busy_retry_s
    delay_s = BUSY_FIRST_DELAY_S
    tries = 0
    while True:
        tries += 1
        try:
            return await record_station(
                target,
                frequency_hz=frequency_hz,
                duration_s=duration_s,
                settings=settings,
                start=lambda: gate.ready(target.id),
            )
        except ReceiverBusy as exc:
            if time.monotonic() + delay_s > give_up_at:
                if tries == 1:
                    raise
                raise ReceiverBusy(
                    target.id, f"{exc.detail} (still busy after {tries} tries)"
                ) from exc
        await asyncio.sleep(delay_s)
        delay_s = min(2 * delay_s, BUSY_MAX_DELAY_S)


def store_recording(
    store: ObjectStore,
    bucket: str,
    task_id: uuid.UUID,
    target: StationTarget,
    capture: Capture,
    measurement: Measurement,
    description: str | None,
) -> StoredRecording:
    """Write the SigMF pair; the metadata last, so a reader never finds meta without data.

    Encoding happens here too: the caller runs this in a thread, off the event loop.
    """
    stem = f"{session_prefix(task_id)}{target.id}"
    if isinstance(capture, AudioCapture):
        return store_audio_recording(store, bucket, stem, target, capture, measurement, description)
    meta = sigmf_metadata(
        capture,
        latitude=target.latitude,
        longitude=target.longitude,
        altitude_m=target.altitude_m,
        measurement=measurement,
        description=description,
    )
    return write_sigmf_pair(store, bucket, stem, encode_ci16_le(capture.samples), meta)


def _recording_refs(data_url: str, meta_url: str | None) -> tuple[ObjectRef, ObjectRef]:
    """The ``.sigmf-meta`` and ``.sigmf-data`` objects of a recording (meta first)."""
    data_ref = parse_s3_url(data_url)
    return parse_s3_url(meta_url or data_url.replace("-data", "-meta")), data_ref


def load_recording(store: ObjectStore, data_url: str, meta_url: str | None) -> IQCapture:
    """Read back a SigMF pair written by :func:`store_recording`."""
    meta_ref, data_ref = _recording_refs(data_url, meta_url)
    metadata = json.loads(store.get_bytes(meta_ref.bucket, meta_ref.key))
    return capture_from_sigmf(metadata, store.get_bytes(data_ref.bucket, data_ref.key))


def start_loading(
    store: ObjectStore,
    urls: list[tuple[str, str | None]],
    pool: Executor,
    metas: list[dict[str, Any] | None] | None = None,
) -> Callable[[], list[IQCapture]]:
    """Put the GETs of every ``(data_url, meta_url)`` in flight on ``pool`` at once;
    returns what waits for them and decodes the captures, in their order.

    ``metas``: each recording's metadata when its row carries it
    (``Measurement.sigmf_meta``); those recordings cost one GET, the samples, instead of
    two. Each GET mostly waits on the store; reading a recording's two objects one after
    the other doubled the wait, and the caller may do its own waiting (its database
    reads) meanwhile. The first failure (a missing object, a corrupt document) is
    raised, as a serial read would; the other GETs are left to finish on the pool.
    """
    known = metas if metas is not None else [None] * len(urls)
    refs = [_recording_refs(data_url, meta_url) for data_url, meta_url in urls]
    metas_read = {
        k: pool.submit(store.get_bytes, meta_ref.bucket, meta_ref.key)
        for k, ((meta_ref, _), meta) in enumerate(zip(refs, known, strict=True))
        if meta is None
    }
    data_read = [pool.submit(store.get_bytes, d.bucket, d.key) for _, d in refs]

    def captures() -> list[IQCapture]:
        return [
            capture_from_sigmf(
                json.loads(metas_read[k].result()) if meta is None else meta, data.result()
            )
            for k, (data, meta) in enumerate(zip(data_read, known, strict=True))
        ]

    return captures


@dataclass(slots=True)
class RecordingContext:
    """What ``record_all`` needs from the task running it."""

    task_id: uuid.UUID
    frequency_hz: float
    duration_s: float
    description: str | None
    settings: Settings
    store: ObjectStore
    cpu: Executor
    io: Inflight
    #: Set when the acquisition must stop (cancelled, failed elsewhere, claim lost).
    stop: asyncio.Event
    #: Called once the receiver's connection is closed: its channel is free again.
    on_released: Callable[[str], Awaitable[None]]
    #: Called as each receiver ends, with the outcome and how many have ended.
    on_finished: Callable[[ReceiverOutcome, int], Awaitable[None]]
    #: Called when the receivers' common start gate opens (their streams begin).
    on_streaming: Callable[[], None] | None = None
    #: Awaited before a recording is measured and stored: lets other acquisitions of
    #: this process connect and hand-shake first (their start is on the critical path).
    before_processing: Callable[[], Awaitable[None]] | None = None


async def measure_and_store(
    ctx: RecordingContext, target: StationTarget, capture: Capture
) -> ReceiverOutcome:
    """Measure a capture (CPU pool) and write its recording (I/O pool, retried while the
    store is briefly down). ValueError: it cannot be measured."""
    settings = ctx.settings
    loop = asyncio.get_running_loop()
    if ctx.before_processing is not None:
        await ctx.before_processing()
    measurement = await loop.run_in_executor(ctx.cpu, measure_capture, capture)
    stored = await retry_transient(
        lambda: ctx.io.run(
            store_recording,
            ctx.store,
            settings.s3_bucket_raw,
            ctx.task_id,
            target,
            capture,
            measurement,
            ctx.description,
        ),
        budget_s=settings.dependency_retry_s,
        transient=storage_unavailable,
        what=f"writing the recording of {target.id}",
    )
    return ReceiverOutcome(
        station_id=target.id,
        measurement=measurement,
        start_time=capture.start_time,
        sample_rate_hz=capture.sample_rate_hz,
        sample_count=len(capture.samples),
        gps_locked=capture.has_gps_time,
        data_url=stored.data_url,
        meta_url=stored.meta_url,
        sigmf_meta=stored.meta_in_row,
    )


async def record_all(ctx: RecordingContext, targets: list[StationTarget]) -> list[ReceiverOutcome]:
    """Run every receiver; raises AcquisitionStopped, or DependencyFailed (object storage)."""
    settings = ctx.settings
    gate = StartGate(
        [t.id for t in targets], settings.receiver_start_wait_s, on_open=ctx.on_streaming
    )
    finished = 0
    for target in targets:  # at zero before a first failure, so rate() sees that failure
        metrics.websdr_failures_total.labels(websdr_id=target.id)

    async def one(target: StationTarget) -> ReceiverOutcome:
        nonlocal finished
        started = time.monotonic()
        try:
            try:
                capture = await record_when_free(
                    target,
                    frequency_hz=ctx.frequency_hz,
                    duration_s=ctx.duration_s,
                    settings=settings,
                    gate=gate,
                )
            finally:
                gate.withdraw(target.id)
                await ctx.on_released(target.id)
            metrics.iq_download_seconds.observe(
                max(0.0, time.monotonic() - started - ctx.duration_s)
            )
            outcome = await measure_and_store(ctx, target, capture)
        except ReceiverError as exc:
            metrics.websdr_failures_total.labels(websdr_id=target.id).inc()
            outcome = ReceiverOutcome(station_id=target.id, error=str(exc))
        except ValueError as exc:  # the capture could not be measured
            metrics.websdr_failures_total.labels(websdr_id=target.id).inc()
            outcome = ReceiverOutcome(station_id=target.id, error=f"{target.id}: {exc}")
        finished += 1
        await ctx.on_finished(outcome, finished)
        return outcome

    receivers = [asyncio.create_task(one(t), name=f"receiver-{t.id}") for t in targets]
    return await gather_unless_stopped(ctx, receivers)


async def gather_unless_stopped(
    ctx: RecordingContext, tasks: list[asyncio.Task[ReceiverOutcome]]
) -> list[ReceiverOutcome]:
    """The tasks' outcomes; AcquisitionStopped as soon as ``ctx.stop`` is set. Raises what
    a task could not handle (storage down); every task is ended and every write of ours
    has landed when this returns."""
    stopper: asyncio.Future[Any] = asyncio.create_task(ctx.stop.wait(), name="stop-watcher")
    gathered: asyncio.Future[Any] = asyncio.gather(*tasks)
    try:
        done, _ = await asyncio.wait({stopper, gathered}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            raise AcquisitionStopped(str(ctx.task_id))
        outcomes: list[ReceiverOutcome] = gathered.result()
        return outcomes
    finally:
        stopper.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(stopper, gathered, return_exceptions=True)
        await ctx.io.drain()
