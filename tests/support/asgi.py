"""A Heimdall service in-process, with its lifespan run as uvicorn would."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx


@asynccontextmanager
async def service_client(module: str) -> AsyncIterator[httpx.AsyncClient]:
    """``module`` names one of ``heimdall.services`` (e.g. ``"rf_acquisition"``)."""
    app = importlib.import_module(f"heimdall.services.{module}").app
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{module}"
        ) as client,
    ):
        yield client
