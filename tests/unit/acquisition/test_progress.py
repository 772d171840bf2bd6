"""Progress of a recording: never waited for, and the receivers of one acquisition that
end together share a write."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

from heimdall.acquisition import repository
from heimdall.acquisition.recording import ReceiverOutcome
from heimdall.acquisition.runtime import AcquisitionRuntime
from heimdall.acquisition.tasks import ProgressWriter


class SlowBookkeeping:
    """Runs each write after ``write_s``, as the database would."""

    def __init__(self, write_s: float) -> None:
        self.write_s = write_s

    async def bookkeep(self, work: Callable[[Any], Awaitable[None]]) -> None:
        await asyncio.sleep(self.write_s)
        await work(None)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each write wrote (progress and errors)."""
    written: list[dict[str, Any]] = []

    async def record(session: None, **values: Any) -> None:
        written.append(values)

    monkeypatch.setattr(repository, "record_receiver_finished", record)
    return written


async def test_receivers_ending_together_share_a_write_and_none_waits_for_it(
    writes: list[dict[str, Any]],
) -> None:
    rt = SlowBookkeeping(write_s=0.2)
    progress = ProgressWriter(cast(AcquisitionRuntime, rt), uuid.uuid4(), "me", total=4)
    loop = asyncio.get_running_loop()
    started = loop.time()
    progress.note(ReceiverOutcome("a"), 1)
    progress.note(ReceiverOutcome("b", error="offline"), 2)
    progress.note(ReceiverOutcome("c"), 3)
    assert loop.time() - started < 0.05  # a receiver's end never waits for the database
    await asyncio.sleep(0.05)
    progress.note(ReceiverOutcome("d", error="too busy"), 4)  # while the first write runs
    await progress.written()
    assert [w["progress"] for w in writes] == [75.0, 100.0]
    assert [e["station_id"] for w in writes for e in w["errors"]] == ["b", "d"]


async def test_a_failed_write_is_logged_not_raised(writes: list[dict[str, Any]]) -> None:
    class Down(SlowBookkeeping):
        async def bookkeep(self, work: Callable[[Any], Awaitable[None]]) -> None:
            raise ConnectionError("PostgreSQL down")

    progress = ProgressWriter(cast(AcquisitionRuntime, Down(0)), uuid.uuid4(), "me", total=2)
    progress.note(ReceiverOutcome("a"), 1)
    await progress.written()  # no exception
    assert writes == []
