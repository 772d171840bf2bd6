"""The acquisition worker's process-wide runtime: one event loop for every acquisition.

Celery's threads pool hands each acquisition task to a thread; the thread submits
the acquisition's coroutine to this process's single event loop and waits for it.
On the loop, one of each per process:

* the channel scheduler (``channels.ChannelScheduler``);
* the watcher: every ``WATCH_INTERVAL_S`` it reads the state of the acquisitions
  this process runs (a cancel, a deadline failure or a lost claim stops them) and
  renews their claims and channel leases;
* the sweeper (``sweeper.sweep_once``) every ``sweep_interval_s``.

CPU work (measurement) runs in a small thread pool, blocking I/O (S3, publishing
to the broker) in another; the loop itself only moves bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from heimdall.acquisition import repository
from heimdall.acquisition.channels import ChannelScheduler
from heimdall.core.db import ping_when_idle
from heimdall.core.retry import database_unavailable, retry_transient, storage_unavailable
from heimdall.core.settings import Settings, get_settings
from heimdall.core.storage import ObjectStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

WATCH_INTERVAL_S = 0.25
CPU_THREADS = 2
IO_THREADS = 32


@dataclass(slots=True)
class Running:
    """One acquisition this process holds."""

    holder: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)


# The longest the measuring and storing of finished recordings waits for acquisitions
# that are starting (see Starts).
START_PRIORITY_MAX_S = 0.5


class Starts:
    """Acquisitions of this process between their grant and their common start.

    Connecting and hand-shaking seven receivers is the next wave's critical path; the
    previous wave's measuring and storing (numpy, SigMF, S3 uploads in threads) is
    not, yet both landed at the same moment and shared the two cores and the GIL.
    Measuring waits until no acquisition is starting, at most ``max_wait_s``.
    """

    def __init__(self, max_wait_s: float = START_PRIORITY_MAX_S) -> None:
        self.max_wait_s = max_wait_s
        self._starting: set[uuid.UUID] = set()
        self._none = asyncio.Event()
        self._none.set()

    def begin(self, task_id: uuid.UUID) -> None:
        self._starting.add(task_id)
        self._none.clear()

    def end(self, task_id: uuid.UUID) -> None:
        self._starting.discard(task_id)
        if not self._starting:
            self._none.set()

    async def wait_until_none(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait_s):
                await self._none.wait()


def bookkeeping_engine(url: str) -> AsyncEngine:
    """For bookkeeping that lapses by itself or that the final commit rewrites (channel
    releases, progress): each statement its own transaction, not waiting for the WAL
    flush, which a busy disk stretched to 100+ ms at the end of every wave."""
    engine = create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=8,
        max_overflow=8,
        connect_args={"connect_timeout": 3, "options": "-c synchronous_commit=off"},
    )
    ping_when_idle(engine.sync_engine)
    return engine


class AcquisitionRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ObjectStore(settings)
        self.cpu = concurrent.futures.ThreadPoolExecutor(CPU_THREADS, "acq-cpu")
        self.io = concurrent.futures.ThreadPoolExecutor(IO_THREADS, "acq-io")
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(self.io)
        self._thread = threading.Thread(target=self._run_loop, name="acquisition-loop", daemon=True)
        self._running: dict[uuid.UUID, Running] = {}
        self.starts = Starts()
        self._background: list[asyncio.Task[None]] = []
        # Created on the loop: the async engine and scheduler belong to it.
        self.engine: AsyncEngine
        self.sessions: async_sessionmaker[AsyncSession]
        self.bookkeeping_engine: AsyncEngine
        self.bookkeeping_sessions: async_sessionmaker[AsyncSession]
        self.scheduler: ChannelScheduler

    # --- life cycle (called from other threads) --------------------------------------
    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.cpu.shutdown(wait=False)
        self.io.shutdown(wait=False)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coro`` on the loop and wait for it; cancel it past ``timeout_s``."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _start(self) -> None:
        settings = self.settings
        # Pinged only after sitting idle: a ping at every checkout was one more round
        # trip in front of every release and grant, on the path from one wave to the next.
        self.engine = create_async_engine(
            settings.sync_database_url,
            pool_size=20,
            max_overflow=20,
            connect_args={"connect_timeout": 3},
        )
        ping_when_idle(self.engine.sync_engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.bookkeeping_engine = bookkeeping_engine(settings.sync_database_url)
        self.bookkeeping_sessions = async_sessionmaker(
            self.bookkeeping_engine, expire_on_commit=False
        )
        self.scheduler = ChannelScheduler(
            self.engine,
            lease_ttl_s=settings.claim_ttl_s,
            bookkeeping=self.bookkeeping_engine,
        )
        from heimdall.acquisition.sweeper import Sweeper

        sweeper = Sweeper(self)
        self._background = [
            asyncio.create_task(self.scheduler.run(), name="channel-scheduler"),
            asyncio.create_task(self._watch(), name="acquisition-watcher"),
            asyncio.create_task(sweeper.run(), name="sweeper"),
        ]

    async def _stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.engine.dispose()
        await self.bookkeeping_engine.dispose()

    # --- database ------------------------------------------------------------------
    async def db(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """One transaction: ``work(session)``, committed when it returns."""
        async with self.sessions() as session, session.begin():
            return await work(session)

    async def bookkeep(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``work(session)`` on the bookkeeping engine: every statement autocommitted,
        without waiting for the WAL flush. Only for writes that may be lost in a
        PostgreSQL crash: they lapse, or the acquisition's final commit rewrites them."""
        async with self.bookkeeping_sessions() as session:
            return await work(session)

    async def db_retry(self, work: Callable[[AsyncSession], Awaitable[T]], what: str) -> T:
        """``db(work)``, retried while PostgreSQL is unreachable, for the configured budget."""
        return await retry_transient(
            lambda: self.db(work),
            budget_s=self.settings.dependency_retry_s,
            transient=database_unavailable,
            what=what,
        )

    # --- object storage -----------------------------------------------------------
    async def remove_objects(self, task_id: uuid.UUID, *, keep_staged: bool = False) -> bool:
        """Remove the acquisition's objects (an import's staged files too, unless
        ``keep_staged``) and clear its clean-up flag; False if S3 is down."""
        from heimdall.acquisition.recording import session_prefix
        from heimdall.imports.staging import staging_prefix

        prefixes = [session_prefix(task_id)] + ([] if keep_staged else [staging_prefix(task_id)])
        bucket = self.settings.s3_bucket_raw
        try:
            for prefix in prefixes:
                await retry_transient(
                    partial(asyncio.to_thread, self.store.delete_prefix, bucket, prefix),
                    budget_s=self.settings.dependency_retry_s,
                    transient=storage_unavailable,
                )
        except Exception as exc:
            logger.warning("objects of %s not removed yet (the sweeper retries): %s", task_id, exc)
            return False
        if not keep_staged:
            with contextlib.suppress(Exception):
                await self.db(lambda s: repository.mark_cleaned(s, task_id))
        return True

    async def remove_staged(self, task_id: uuid.UUID) -> None:
        """A finished import's staged files; left behind (logged) if S3 fails now."""
        from heimdall.imports.staging import staging_prefix

        try:
            await asyncio.to_thread(
                self.store.delete_prefix, self.settings.s3_bucket_raw, staging_prefix(task_id)
            )
        except Exception as exc:
            logger.warning("staged files of import %s not removed: %s", task_id, exc)

    # --- acquisitions this process holds ------------------------------------------------
    def hold(self, task_id: uuid.UUID, holder: str) -> Running:
        running = Running(holder)
        self._running[task_id] = running
        return running

    def let_go(self, task_id: uuid.UUID) -> None:
        self._running.pop(task_id, None)

    async def _watch(self) -> None:
        """Stop what was cancelled or taken away; keep claims and leases alive."""
        renew_every_s = self.settings.claim_ttl_s / 4
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if not self._running:
                continue
            running = dict(self._running)
            try:
                found = await self.db(partial(repository.states, task_ids=list(running)))
                for task_id, held in running.items():
                    row = found.get(task_id)
                    if (
                        row is None
                        or row.holder != held.holder
                        or row.status not in repository.ACTIVE_STATES
                    ):
                        held.stop.set()
                if time.monotonic() - renewed_at >= renew_every_s:
                    claims = {t: r.holder for t, r in running.items() if not r.stop.is_set()}
                    if claims:
                        await self.db(
                            partial(
                                repository.renew, claims=claims, ttl_s=self.settings.claim_ttl_s
                            )
                        )
                    renewed_at = time.monotonic()
            except Exception as exc:
                # PostgreSQL down: recordings go on; their end retries its own writes.
                if not database_unavailable(exc):
                    logger.exception("acquisition watcher failed")
                await asyncio.sleep(0.5)


_runtime: AcquisitionRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> AcquisitionRuntime:
    """This process's runtime, started on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            runtime = AcquisitionRuntime(get_settings())
            runtime.start()
            _runtime = runtime
        return _runtime


def stop_runtime() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.stop()
            _runtime = None
