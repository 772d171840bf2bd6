"""Publishing Celery tasks from async code, without a thread: the trigger's enqueue.

Celery's ``send_task`` talks to RabbitMQ through kombu, a blocking client: from an
event loop it has to run on a thread, and that hand-off plus kombu's own bookkeeping
were the largest part of ``POST /acquire`` after the INSERT (about 0.6 ms of its wall
time, measured in process; docs/decisions.md). Here the message is still Celery's own
(its routing, ``amqp.as_task_v2`` and its serializer build it, so a worker cannot tell
the difference); only the transport is asynchronous (aio-pika). A broker that stops
reading stalls this coroutine, bounded by the caller's timeout, never the other requests
of the process, as a blocking write on the loop would.

No publisher confirms, as Celery's default: a message lost with its connection leaves an
acquisition nobody claims, which the sweeper publishes again (``acquisition.sweeper``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

import aio_pika
from celery import Celery
from kombu import Queue
from kombu.serialization import dumps

#: A broker that does not answer a connection within this fails the publish: the caller
#: answers 503 in seconds, as kombu's ``broker_connection_timeout`` made it before.
CONNECT_TIMEOUT_S = 3.0


class AsyncTaskPublisher:
    """One AMQP connection per event loop, opened on first use and again after a failure,
    to the broker of the Celery app (``broker_url``)."""

    def __init__(self, app: Celery, connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self.app = app
        self.connect_timeout_s = connect_timeout_s
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._declared: set[str] = set()
        self._lock: asyncio.Lock | None = None

    async def send_task(self, name: str, args: Sequence[Any]) -> str:
        """Publish task ``name`` with ``args`` where Celery's routes send it; its task id.

        A connection that was already open may have died unnoticed (a broker restart
        while the API sat idle): that failure is retried once on a fresh connection, as
        kombu's one retry did. A failure on a fresh connection is raised (the caller
        answers 503); the broken connection is dropped either way.
        """
        task_id = str(uuid.uuid4())
        queue: Queue = self.app.amqp.router.route({}, name, list(args), {})["queue"]
        task = self.app.amqp.as_task_v2(task_id, name, args=list(args), ignore_result=True)
        content_type, encoding, body = dumps(task.body, serializer=self.app.conf.task_serializer)
        message = aio_pika.Message(
            body=body if isinstance(body, bytes) else body.encode(encoding),
            content_type=content_type,
            content_encoding=encoding,
            headers=task.headers,
            correlation_id=task.properties["correlation_id"],
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        for attempt in (1, 2):
            reused = self._channel is not None and not self._channel.is_closed
            try:
                channel = await self._channel_for(queue)
                # Celery's direct-exchange convention: the default exchange, keyed by queue.
                await channel.default_exchange.publish(message, routing_key=queue.name)
                return task_id
            except Exception:
                await self.close()
                if not reused or attempt == 2:
                    raise
            except BaseException:  # cancelled (the caller's timeout): half a frame may be out
                await self.close()
                raise
        raise AssertionError("unreachable")

    async def _channel_for(self, queue: Queue) -> aio_pika.abc.AbstractChannel:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests, a restarted server): a new connection
            self._connection, self._channel, self._loop = None, None, loop
            self._declared.clear()
            self._lock = asyncio.Lock()
        assert self._lock is not None
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                self._connection = await aio_pika.connect(
                    self.app.conf.broker_url, timeout=self.connect_timeout_s
                )
                self._channel = await self._connection.channel(publisher_confirms=False)
                self._declared.clear()
            if queue.name not in self._declared:
                # As Celery declares it before its first publish: a message to a queue
                # that does not exist yet (no worker started) would be dropped.
                await self._channel.declare_queue(
                    queue.name,
                    durable=queue.durable,
                    exclusive=queue.exclusive,
                    auto_delete=queue.auto_delete,
                    arguments=getattr(queue, "queue_arguments", None),
                )
                self._declared.add(queue.name)
            return self._channel

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._declared.clear()
        if connection is not None and not connection.is_closed:
            # Closing a broken connection: nothing is left to save.
            with contextlib.suppress(Exception):
                await connection.close()
