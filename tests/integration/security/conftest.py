"""The services as uvicorn processes on loopback with bearer tokens required."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from heimdall.core.storage import ObjectStore
from tests.support.stack import ServiceStack, start_stack

API_TOKEN = "security-test-api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="package")
def stack(database: str, object_store: ObjectStore) -> Iterator[ServiceStack]:
    services = start_stack({"HEIMDALL_API_TOKENS": API_TOKEN})
    yield services
    services.stop()
