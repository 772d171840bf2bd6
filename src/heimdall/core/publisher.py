"""Publishing a Celery task from an event loop: on the loop while the broker connection
is open, in a thread when it must be opened.

``asyncio.to_thread`` for every publish cost the trigger two thread hand-offs (about 6
context switches and, on a loaded 2-core machine, ~1-2 ms of CPU per request) for
what is, on an open AMQP connection, one socket write. That write is done on the loop,
bounded by a socket write timeout; anything that may block longer (connecting, a
broker that stopped reading) happens in a thread, which the caller bounds with its own
timeout, as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from celery import Celery
from kombu import Connection, Producer

logger = logging.getLogger(__name__)

# The longest a publish on the loop may block on a full socket buffer (a broker that
# stopped reading); past it the write fails and the publish is done again in a thread.
LOOP_WRITE_TIMEOUT_S = 0.2


class LoopPublisher:
    """One broker connection of its own, used by one publisher at a time (a lock the
    loop only ever tries, never waits for)."""

    def __init__(self, app: Celery, write_timeout_s: float = LOOP_WRITE_TIMEOUT_S) -> None:
        self._app = app
        self._write_timeout_s = write_timeout_s
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None

    async def send(self, name: str, args: list[Any], timeout_s: float) -> None:
        """Publish task ``name``; raises (the broker's error, or TimeoutError past
        ``timeout_s``) when it could not be published."""
        if self._producer is not None and self._lock.acquire(blocking=False):
            try:
                if self._producer is not None:
                    self._send(name, args)
                    return
            except Exception as exc:  # the connection broke: a fresh one, in a thread
                logger.info("publishing on the open broker connection failed: %s", exc)
                self._discard()
            finally:
                self._lock.release()
        async with asyncio.timeout(timeout_s):
            await asyncio.to_thread(self._send_connecting, name, args)

    def _send_connecting(self, name: str, args: list[Any]) -> None:
        with self._lock:
            if self._producer is None:
                connection = self._app.connection_for_write(
                    transport_options={"write_timeout": self._write_timeout_s}
                )
                connection.ensure_connection(max_retries=1)
                self._connection = connection
                self._producer = self._app.amqp.Producer(connection)
            try:
                self._send(name, args)
            except Exception:
                self._discard()
                raise

    def _send(self, name: str, args: list[Any]) -> None:
        # ignore_result: the caller's row is the record; nothing may wait on the result
        # backend (a Redis outage hung the trigger).
        self._app.send_task(
            name, args=args, retry=False, ignore_result=True, producer=self._producer
        )

    def _discard(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception as exc:
                logger.debug("closing a broken broker connection: %s", exc)

    def close(self) -> None:
        with self._lock:
            self._discard()
