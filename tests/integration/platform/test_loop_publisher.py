"""Publishing from the event loop: on the loop while the broker connection is open, in a
thread when it must be (re)opened, and an error (never a hang) when the broker is gone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from heimdall.core.celery_app import create_celery
from heimdall.core.publisher import LoopPublisher
from tests.support.tcp_proxy import TcpProxy

# Routed to this run's ops queue, which the session removes at the end.
TASK = "heimdall.ops.loop_publisher_test"


async def test_publishes_on_the_loop_once_connected_and_reconnects_after_a_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = TcpProxy("127.0.0.1", 5672).start()
    app = create_celery()
    app.conf.broker_url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
    publisher = LoopPublisher(app)
    in_threads: list[list[Any]] = []
    connecting = publisher._send_connecting

    def counted(name: str, args: list[Any]) -> None:
        in_threads.append(args)
        connecting(name, args)

    monkeypatch.setattr(publisher, "_send_connecting", counted)
    try:
        await publisher.send(TASK, ["first"], timeout_s=10)
        for n in range(5):
            await publisher.send(TASK, [f"on the loop {n}"], timeout_s=10)
        assert in_threads == [["first"]]  # only opening the connection took a thread

        proxy.cut()  # connections dropped, new ones refused
        failures = 0
        loop = asyncio.get_running_loop()
        for _ in range(2):  # a write may still land in the dead socket's buffer once
            started = loop.time()
            try:
                await publisher.send(TASK, ["while cut"], timeout_s=10)
            except Exception:
                failures += 1
            assert loop.time() - started < 5.0
        assert failures >= 1

        proxy.restore()
        await publisher.send(TASK, ["after"], timeout_s=10)
        assert in_threads[-1] == ["after"]  # a fresh connection, opened in a thread
        await publisher.send(TASK, ["after, on the loop"], timeout_s=10)
        assert in_threads[-1] == ["after"]
    finally:
        publisher.close()
        proxy.close()


async def test_the_loop_is_never_held_while_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the connection happens in a thread: the loop goes on meanwhile."""
    app = create_celery()
    publisher = LoopPublisher(app)
    connecting = publisher._send_connecting

    def slow(name: str, args: list[Any]) -> None:
        time.sleep(0.5)
        connecting(name, args)

    monkeypatch.setattr(publisher, "_send_connecting", slow)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    beating = asyncio.create_task(ticker())
    try:
        await publisher.send(TASK, ["slow connect"], timeout_s=10)
    finally:
        beating.cancel()
        publisher.close()
    assert ticks >= 5
