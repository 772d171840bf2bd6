"""Bounded retries of transient dependency failures, for async code.

A task that meets PostgreSQL, object storage or the broker briefly down retries
with exponential backoff for a bounded time; past it the failure is a
:class:`DependencyFailed` whose message names the dependency, for the caller to
record (an acquisition ends FAILED with it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from heimdall.core.storage import ObjectStoreUnavailable

T = TypeVar("T")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0
POSTGRESQL = "PostgreSQL database unavailable"


class DependencyFailed(RuntimeError):
    """A dependency stayed unavailable for the whole retry budget; the message names it."""


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached (as opposed to refusing a statement)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def storage_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, ObjectStoreUnavailable)


def describe(exc: BaseException) -> str:
    """The operator's sentence for a failure of a dependency."""
    if database_unavailable(exc):
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"{POSTGRESQL}: {detail[0] if detail else type(exc).__name__}"
    return str(exc)


async def retry_transient(
    attempt: Callable[[], Awaitable[T]],
    *,
    budget_s: float,
    transient: Callable[[BaseException], bool],
    what: str = "",
) -> T:
    """``await attempt()``, again after each transient failure until ``budget_s`` has passed.

    A failure that is not transient is raised as it is; a transient one that outlasts
    the budget becomes :class:`DependencyFailed` naming the dependency (and ``what``
    was being done).
    """
    deadline = time.monotonic() + budget_s
    delay_s = FIRST_DELAY_S
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not transient(exc):
                raise
            if time.monotonic() + delay_s > deadline:
                suffix = f" ({what}; retried for {budget_s:g} s)" if what else ""
                raise DependencyFailed(describe(exc) + suffix) from exc
        await asyncio.sleep(delay_s)
        delay_s = min(2 * delay_s, MAX_DELAY_S)
