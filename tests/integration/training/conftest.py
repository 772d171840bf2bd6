from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.asgi import service_client


@pytest.fixture
async def training(clean_db: str) -> AsyncIterator[httpx.AsyncClient]:
    """The training service in-process, on a clean database."""
    async with service_client("training") as client:
        yield client
