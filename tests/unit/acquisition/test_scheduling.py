"""Channel grants, the common start gate and task time limits: pure logic, known answers."""

from __future__ import annotations

import asyncio
import doctest
import uuid

from heimdall.acquisition import channels
from heimdall.acquisition.channels import Waiter, grant_in_order
from heimdall.acquisition.recording import StartGate
from heimdall.acquisition.runtime import Starts


def waiter(number: int, *stations: str) -> Waiter:
    return Waiter(uuid.UUID(int=number), stations)


def granted(waiters: list[Waiter], free: dict[str, int]) -> list[int]:
    return [task_id.int for task_id in grant_in_order(waiters, free)]


def test_docstring_examples() -> None:
    result = doctest.testmod(channels)
    assert result.attempted > 0 and result.failed == 0


def test_everyone_fits_everyone_starts() -> None:
    waiters = [waiter(i, "a", "b") for i in range(4)]
    assert granted(waiters, {"a": 4, "b": 4}) == [0, 1, 2, 3]


def test_only_as_many_as_the_scarcest_receiver_has_channels() -> None:
    waiters = [waiter(i, "a", "b") for i in range(6)]
    assert granted(waiters, {"a": 4, "b": 2}) == [0, 1]


def test_a_later_request_on_the_same_receiver_does_not_overtake_a_waiting_one() -> None:
    # 0 needs a and b; b is full, so 0 waits and keeps its claim on a's last channel.
    waiters = [waiter(0, "a", "b"), waiter(1, "a")]
    assert granted(waiters, {"a": 1, "b": 0}) == []


def test_requests_on_other_receivers_run_at_once() -> None:
    waiters = [waiter(0, "a", "b"), waiter(1, "c"), waiter(2, "a")]
    assert granted(waiters, {"a": 1, "b": 0, "c": 1}) == [1]


def test_an_unknown_or_inactive_receiver_never_fits() -> None:
    assert granted([waiter(0, "gone"), waiter(1, "a")], {"a": 1}) == [1]


def test_the_gate_opens_when_every_receiver_is_ready_or_gone() -> None:
    async def run() -> list[str]:
        gate = StartGate(["a", "b", "c"], max_wait_s=5)
        order: list[str] = []

        async def receiver(name: str, delay_s: float) -> None:
            await asyncio.sleep(delay_s)
            await gate.ready(name)
            order.append(name)

        async def failing() -> None:
            await asyncio.sleep(0.05)
            gate.withdraw("c")

        await asyncio.gather(receiver("a", 0.0), receiver("b", 0.1), failing())
        return order

    order = asyncio.run(run())
    assert sorted(order) == ["a", "b"]


def test_the_gate_lets_the_ready_start_after_its_longest_wait() -> None:
    async def run() -> float:
        gate = StartGate(["a", "never"], max_wait_s=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await gate.ready("a")
        return loop.time() - started

    waited_s = asyncio.run(run())
    assert 0.15 <= waited_s < 1.0


def test_every_task_has_a_time_limit() -> None:
    from heimdall.core.celery_app import celery_app

    celery_app.loader.import_default_modules()
    ours = {name: task for name, task in celery_app.tasks.items() if name.startswith("heimdall.")}
    assert {"heimdall.acquisition.acquire_iq", "heimdall.localization.localize"} <= set(ours)
    for name, task in ours.items():
        limit = task.time_limit or celery_app.conf.task_time_limit
        assert limit is not None and limit > 0, name


def test_the_gate_says_once_when_the_streams_begin() -> None:
    opened: list[str] = []

    async def run() -> None:
        gate = StartGate(["a", "b"], max_wait_s=5, on_open=lambda: opened.append("open"))
        gate.withdraw("b")
        assert opened == []
        await gate.ready("a")
        gate.withdraw("a")

    asyncio.run(run())
    assert opened == ["open"]


def test_measuring_waits_while_another_acquisition_starts_but_not_for_ever() -> None:
    async def run() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        starts = Starts(max_wait_s=0.3)
        began = loop.time()
        await starts.wait_until_none()  # no one starting: at once
        idle_s = loop.time() - began

        starting = uuid.UUID(int=1)
        starts.begin(starting)
        loop.call_later(0.1, starts.end, starting)  # its streams begin 0.1 s later
        began = loop.time()
        await starts.wait_until_none()
        until_started_s = loop.time() - began

        starts.begin(uuid.UUID(int=2))  # never starts (its gate times out elsewhere)
        began = loop.time()
        await starts.wait_until_none()
        return idle_s, until_started_s, loop.time() - began

    idle_s, until_started_s, bounded_s = asyncio.run(run())
    assert idle_s < 0.05
    assert 0.08 <= until_started_s < 0.25
    assert 0.25 <= bounded_s < 1.0
