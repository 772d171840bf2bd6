"""Who may call what: bearer tokens, and a per-client rate limit.

- Mutating endpoints depend on :func:`require_token`: when ``HEIMDALL_API_TOKENS`` is
  set (always in production), no token is a 401 and a token that is not one of them a
  403.
- Reads depend on :func:`require_read_token`: open unless ``HEIMDALL_READ_TOKENS`` is
  set; then a read token or an API token is needed.

Tokens are compared as bytes in constant time (``hmac.compare_digest``) against every
configured token, so neither the answer nor its timing says how much of a token was
right. The header arrives as Latin-1 text (HTTP's own encoding); its bytes are
compared with the UTF-8 bytes of the configured tokens, so any character is fine.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, status
from pydantic import SecretStr

from heimdall.core.settings import get_settings

BEARER = "bearer"
# Set on rate-limit dependencies, so the OpenAPI document can list their 429.
RATE_LIMIT_MARK = "heimdall_rate_limit"


def _presented(request: Request) -> bytes | None:
    """The bearer token's bytes, or None when the request carries none."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != BEARER or not credentials.strip():
        return None
    return credentials.strip().encode("latin-1", errors="replace")


def token_matches(given: bytes, tokens: Sequence[SecretStr]) -> bool:
    """Constant time over every token: no early exit on the first match.

    >>> token_matches("é".encode(), [SecretStr("x"), SecretStr("é")])
    True
    """
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given, token.get_secret_value().encode("utf-8"))
    return matched


def _check(request: Request, tokens: Sequence[SecretStr], what: str) -> None:
    given = _presented(request)
    if given is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"a bearer token is required ({what})",
            headers={"WWW-Authenticate": 'Bearer realm="heimdall"'},
        )
    if not token_matches(given, tokens):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this bearer token is not allowed ({what})",
            headers={"WWW-Authenticate": 'Bearer realm="heimdall", error="invalid_token"'},
        )


async def require_token(request: Request) -> None:
    """Mutating endpoints: one of HEIMDALL_API_TOKENS, when any is configured."""
    tokens = get_settings().api_tokens
    if tokens:
        _check(request, tokens, "HEIMDALL_API_TOKENS")


async def require_read_token(request: Request) -> None:
    """Reads: open unless HEIMDALL_READ_TOKENS is set; then a read or an API token."""
    settings = get_settings()
    if settings.read_tokens:
        _check(request, [*settings.read_tokens, *settings.api_tokens], "HEIMDALL_READ_TOKENS")


# --- rate limit ----------------------------------------------------------------------
@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class TokenBucket:
    """Per-client token buckets: ``burst`` requests at once, refilled at ``per_minute``.

    >>> bucket = TokenBucket(burst=2, per_minute=60, clock=lambda: 0.0)
    >>> [bucket.take("a") for _ in range(3)], bucket.take("b")
    ([0.0, 0.0, 1.0], 0.0)
    """

    def __init__(
        self,
        burst: int,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.burst = burst
        self.rate_per_s = per_minute / 60.0
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the request may go; otherwise seconds until it may."""
        now = self.clock()
        bucket = self._buckets.pop(client, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.updated_s) * self.rate_per_s
        )
        bucket.updated_s = now
        self._buckets[client] = bucket  # most recent last
        while len(self._buckets) > self.max_clients:  # memory stays bounded
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_s if self.rate_per_s > 0 else 60.0


def client_key(request: Request) -> str:
    """The client a limit applies to: its address (the gateway passes X-Forwarded-For's
    last hop, which it wrote itself, only when the request comes from loopback)."""
    host = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and host in ("127.0.0.1", "::1"):
        return forwarded.split(",")[-1].strip() or host
    return host


def rate_limited(name: str) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """A dependency limiting each client's calls of one endpoint (429 + Retry-After)."""

    async def limit(request: Request) -> None:
        settings = get_settings()
        if settings.rate_limit_per_minute <= 0:
            return
        buckets: dict[str, TokenBucket] | None = getattr(request.app.state, "rate_limits", None)
        if buckets is None:
            buckets = request.app.state.rate_limits = {}
        # A bucket per endpoint and per configuration (tests change the settings).
        key = f"{name}/{settings.rate_limit_burst}/{settings.rate_limit_per_minute}"
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(
                settings.rate_limit_burst, settings.rate_limit_per_minute
            )
        wait_s = bucket.take(client_key(request))
        if wait_s > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many {name} requests from this client; try again later",
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )

    setattr(limit, RATE_LIMIT_MARK, True)
    return limit
