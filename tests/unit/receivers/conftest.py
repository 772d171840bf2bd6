"""Fixtures for the receiver tests: a scripted KiwiSDR on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.receivers.fake_kiwisdr import FakeKiwi, running_fake_kiwi


@pytest.fixture
async def fake_kiwi() -> AsyncIterator[FakeKiwi]:
    async with running_fake_kiwi() as kiwi:
        yield kiwi
