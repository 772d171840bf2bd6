"""Run a block with bearer tokens required (HEIMDALL_API_TOKENS set), in this process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from heimdall.core.settings import get_settings


@contextmanager
def tokens_required(*tokens: str) -> Iterator[dict[str, str]]:
    """Yields the Authorization header of the first token."""
    before = os.environ.get("HEIMDALL_API_TOKENS")
    os.environ["HEIMDALL_API_TOKENS"] = ",".join(tokens)
    get_settings.cache_clear()
    try:
        yield {"Authorization": f"Bearer {tokens[0]}"}
    finally:
        if before is None:
            os.environ.pop("HEIMDALL_API_TOKENS", None)
        else:
            os.environ["HEIMDALL_API_TOKENS"] = before
        get_settings.cache_clear()
