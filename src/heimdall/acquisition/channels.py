"""Receiver channels, the scheduled resource: who may start recording now.

Each receiver has a number of channels Heimdall may hold (``websdr_stations.channels``);
an acquisition holds one channel on every receiver it records, as a lease row
(``channel_leases``) that the recording worker renews and that lapses when a worker
dies. Waiting acquisitions (PENDING, claimed by a live task) are granted in the
order they were requested, first come first served per receiver: an acquisition
that does not fit still reserves the channels it waits for, so a later one on the
same receivers cannot overtake it forever, while one on other receivers runs at once.

A grant pass runs under a PostgreSQL advisory lock, so passes of several worker
processes never interleave; it grants every waiter that fits, whichever process
holds it, and tells the others with ``NOTIFY``. Each process runs one
:class:`ChannelScheduler` that passes when woken: a local waiter arrived, a
channel was released here or elsewhere (``LISTEN``), or a second went by (leases
lapse without anyone telling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from heimdall.acquisition import repository
from heimdall.core.db import libpq_url
from heimdall.core.retry import database_unavailable

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "heimdall_channels"
TICK_S = 1.0
LISTEN_RETRY_S = 1.0
# Receivers of one acquisition end together (common start): their channels are given
# back in one transaction, and one grant pass, rather than one each.
RELEASE_COALESCE_S = 0.005


@dataclass(frozen=True, slots=True)
class Waiter:
    task_id: uuid.UUID
    station_ids: tuple[str, ...]


def grant_in_order(waiters: Sequence[Waiter], free: dict[str, int]) -> list[uuid.UUID]:
    """The waiters (oldest first) that may start now, first come first served per receiver.

    A waiter that fits takes one channel of each of its receivers; one that does not
    reserves them anyway, so that no later waiter sharing a receiver overtakes it.

    >>> a, b, c = (Waiter(uuid.UUID(int=i), s) for i, s in enumerate([("x", "y"), ("y",), ("z",)]))
    >>> [w.int for w in grant_in_order([a, b, c], {"x": 0, "y": 1, "z": 1})]
    [2]
    >>> [w.int for w in grant_in_order([a, b, c], {"x": 1, "y": 2, "z": 1})]
    [0, 1, 2]
    """
    remaining = dict(free)
    granted = []
    for waiter in waiters:
        if all(remaining.get(s, 0) >= 1 for s in waiter.station_ids):
            granted.append(waiter.task_id)
        for station_id in waiter.station_ids:
            remaining[station_id] = remaining.get(station_id, 0) - 1
    return granted


class ChannelScheduler:
    """One per worker process: grant passes, and the local acquisitions waiting on them."""

    def __init__(
        self, engine: AsyncEngine, *, lease_ttl_s: float, bookkeeping: AsyncEngine | None = None
    ) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Releases: one autocommitted statement that need not wait for the WAL flush (a
        # release lost in a crash lapses, and the acquisition's final commit drops its
        # leases anyway). Grants stay durable: they start recordings.
        self._release_sessions = async_sessionmaker(bookkeeping or engine, expire_on_commit=False)
        # Said in our NOTIFYs, so that our own do not wake us a second time: a pass
        # started for nothing holds up the one that grants.
        self.identity = uuid.uuid4().hex
        self._lease_ttl_s = lease_ttl_s
        self._wake = asyncio.Event()
        self._waiters: dict[uuid.UUID, asyncio.Future[bool]] = {}
        self._to_release: dict[uuid.UUID, set[str]] = {}
        self._release_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def wait_for_grant(self, task_id: uuid.UUID, timeout_s: float) -> bool:
        """True once a pass granted ``task_id``; False when it stopped waiting (cancelled,
        failed, claim lost: its row says which). Raises TimeoutError past ``timeout_s``."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[task_id] = future
        self.wake()
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        finally:
            self._waiters.pop(task_id, None)

    async def release(self, task_id: uuid.UUID, station_id: str | None = None) -> None:
        """Give back one channel (or all of an acquisition's); best effort, leases lapse anyway."""
        released = True
        try:
            async with self._release_sessions() as session, session.begin():
                released = await repository.release_leases(
                    session, {task_id: station_id}, NOTIFY_CHANNEL, self.identity
                )
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            logger.warning("could not release channels of %s now: %s", task_id, exc)
        if released:
            self.wake()

    def release_soon(self, task_id: uuid.UUID, station_id: str) -> None:
        """Give back one channel within ``RELEASE_COALESCE_S``, batched with its neighbours."""
        self._to_release.setdefault(task_id, set()).add(station_id)
        if self._release_task is None or self._release_task.done():
            self._release_task = asyncio.create_task(self._release_batch())

    async def _release_batch(self) -> None:
        # Until nothing is left: releases that arrive during a batch's transaction go next.
        while self._to_release:
            await asyncio.sleep(RELEASE_COALESCE_S)
            batch, self._to_release = self._to_release, {}
            leases = {(t, s) for t, stations in batch.items() for s in stations}
            released = True
            try:
                async with self._release_sessions() as session, session.begin():
                    released = await repository.release_lease_set(
                        session, leases, NOTIFY_CHANNEL, self.identity
                    )
            except Exception as exc:
                if not database_unavailable(exc):
                    logger.exception("releasing channels failed")
                logger.warning("could not release %d channels now: %s", len(leases), exc)
            if released:
                self.wake()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="channel-listener")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_S):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.grant_pass()
                except Exception as exc:
                    if not database_unavailable(exc):
                        logger.exception("channel grant pass failed")
                    await asyncio.sleep(0.5)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def grant_pass(self) -> list[uuid.UUID]:
        async with self._sessions() as session, session.begin():
            granted, still_waiting = await self._grant(session)
        for task_id, future in list(self._waiters.items()):
            if future.done():
                continue
            if task_id in granted:
                future.set_result(True)
            elif task_id not in still_waiting:  # cancelled, failed or claim lost
                future.set_result(False)
        return granted

    async def _grant(self, session: AsyncSession) -> tuple[list[uuid.UUID], set[uuid.UUID]]:
        await repository.lock_channel_bookkeeping(session)
        claimed, free = await repository.waiters_and_free_channels(session)
        waiters = [Waiter(t, tuple(s)) for t, s in claimed]
        if not waiters:
            return [], set()
        granted = grant_in_order(waiters, free)
        if granted:
            stations = {w.task_id: w.station_ids for w in waiters}
            await repository.start_granted(
                session,
                {t: stations[t] for t in granted},
                self._lease_ttl_s,
                NOTIFY_CHANNEL,
                self.identity,
            )
        return granted, {w.task_id for w in waiters}

    async def _listen(self) -> None:
        """Wake on every NOTIFY of another process; reconnect after PostgreSQL outages."""
        url = libpq_url(self._engine.url.render_as_string(hide_password=False))
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    url, autocommit=True, connect_timeout=3
                ) as conn:
                    # A channel is an identifier, which LISTEN cannot take as a parameter.
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
                    self.wake()  # anything may have changed while we were not listening
                    async for notice in conn.notifies():
                        if notice.payload != self.identity:  # ours woke us already
                            self.wake()
            except psycopg.Error as exc:
                logger.info("channel listener reconnecting: %s", exc)
            await asyncio.sleep(LISTEN_RETRY_S)
