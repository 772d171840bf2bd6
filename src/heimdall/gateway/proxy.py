"""Reverse proxy of the api-gateway: one public entry point for every service.

Upstream answers are forwarded as they are (status, headers, body), streamed
both ways through one pooled client. An upstream that cannot be reached or does
not answer in time becomes a 503 naming the service; a path that would leave
its service's prefix is refused with 400 before anything is forwarded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from heimdall.core.errors import ProblemResponse, problem
from heimdall.core.limits import IMPORT_PATH
from heimdall.core.settings import Settings
from heimdall.gateway.paths import PathRefused, ResolvedPath, resolve

# Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection, not the message.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    base_url: str


def upstream_table(settings: Settings) -> dict[str, Upstream]:
    """Map the first path segment after /api/v1/ to the service that owns it."""
    return {
        "acquisition": Upstream("rf-acquisition", settings.acquisition_url.rstrip("/")),
        "training": Upstream("training", settings.training_url.rstrip("/")),
        "inference": Upstream("inference", settings.inference_url.rstrip("/")),
        "sessions": Upstream("data-ingestion-web", settings.ingestion_url.rstrip("/")),
    }


class BodyTooLarge(Exception):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"request body larger than {limit_bytes} bytes")


def _error(status_code: int, detail: str) -> ProblemResponse:
    return problem(status_code, detail)


def raw_path(request: Request) -> str:
    """The path as the client sent it (still percent-encoded)."""
    raw = request.scope.get("raw_path")
    if raw:
        return bytes(raw).decode("latin-1")
    return quote(request.scope["path"])


def resolved_path(request: Request) -> ResolvedPath:
    return resolve(raw_path(request))


def _without_hop_by_hop(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    named = {
        token.strip().lower()
        for key, value in items
        if key.lower() == "connection"
        for token in value.split(",")
    }
    return [(k, v) for k, v in items if k.lower() not in HOP_BY_HOP and k.lower() not in named]


def _request_headers(request: Request) -> list[tuple[str, str]]:
    headers = [
        (k, v) for k, v in _without_hop_by_hop(request.headers.items()) if k.lower() != "host"
    ]
    client_host = request.client.host if request.client else "unknown"
    forwarded_for = request.headers.get("x-forwarded-for")
    headers = [(k, v) for k, v in headers if not k.lower().startswith("x-forwarded-")]
    headers += [
        ("x-forwarded-for", f"{forwarded_for}, {client_host}" if forwarded_for else client_host),
        ("x-forwarded-proto", request.url.scheme),
        ("x-forwarded-host", request.headers.get("host", "")),
    ]
    return headers


async def _limited_body(request: Request, limit_bytes: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit_bytes:
            raise BodyTooLarge(limit_bytes)
        if chunk:
            yield chunk


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream's bytes as they come; its connection goes back to the pool even when
    the client goes away mid-stream."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()


def _has_body(request: Request) -> bool:
    return "content-length" in request.headers or "transfer-encoding" in request.headers


# IMPORT_PATH: an upstream path whose bodies may be larger than the gateway's limit (an
# import uploads recordings; the service bounds it by HEIMDALL_IMPORT_MAX_BYTES itself).


class Forwarder:
    """Sends one request to an upstream and streams its answer back unchanged."""

    def __init__(self, max_body_bytes: int, larger_bodies: Mapping[str, int] | None = None) -> None:
        self.max_body_bytes = max_body_bytes
        self.larger_bodies = dict(larger_bodies or {})

    @classmethod
    def for_settings(cls, settings: Settings) -> Forwarder:
        return cls(settings.gateway_max_body_bytes, {IMPORT_PATH: settings.import_max_bytes})

    async def __call__(self, request: Request, upstream: Upstream, path: str) -> Response:
        client: httpx.AsyncClient = request.app.state.http
        limit_bytes = self.larger_bodies.get(path, self.max_body_bytes)
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _error(400, "invalid Content-Length")
            if int(declared) > limit_bytes:
                return _error(413, str(BodyTooLarge(limit_bytes)))
        query = request.scope.get("query_string", b"")
        target = httpx.URL(upstream.base_url + path, query=query or None)
        outgoing = client.build_request(
            request.method,
            target,
            headers=_request_headers(request),
            content=_limited_body(request, limit_bytes) if _has_body(request) else None,
        )
        try:
            answer = await client.send(outgoing, stream=True)
        except BodyTooLarge as exc:
            return _error(413, str(exc))
        except httpx.TimeoutException:
            return _error(503, f"{upstream.name} service did not answer in time")
        except httpx.TransportError as exc:
            # A body over the limit can surface wrapped by the transport.
            if isinstance(exc.__cause__, BodyTooLarge) or isinstance(exc.__context__, BodyTooLarge):
                return _error(413, str(BodyTooLarge(limit_bytes)))
            return _error(503, f"{upstream.name} service unavailable: {type(exc).__name__}")
        response = StreamingResponse(_relay(answer), status_code=answer.status_code)
        response.raw_headers = [
            (k.encode("latin-1"), self._location(k, v, upstream).encode("latin-1"))
            for k, v in _without_hop_by_hop(answer.headers.multi_items())
        ]
        return response

    @staticmethod
    def _location(key: str, value: str, upstream: Upstream) -> str:
        # An upstream's redirect to itself must not send the client to an internal address.
        if key.lower() == "location" and value.startswith(upstream.base_url + "/"):
            return value[len(upstream.base_url) :]
        return value


async def forward_under(
    request: Request, forwarder: Forwarder, upstream: Upstream, prefix: str, target_prefix: str
) -> Response:
    """Forward a request whose path must stay under ``prefix``; the upstream sees it
    under ``target_prefix`` instead (the same for full routes, longer for short forms)."""
    try:
        path = resolved_path(request).under(prefix)
    except PathRefused as exc:
        return _error(400, str(exc))
    return await forwarder(request, upstream, target_prefix + path[len(prefix.rstrip("/")) :])


def lifespan_with_client(
    settings: Settings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """One pooled client for the app's lifetime (connections to upstreams are reused)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.gateway_upstream_timeout_s, connect=5.0)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        # trust_env=False: no proxy variable may send loopback traffic elsewhere.
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
            app.state.http = client
            yield

    return lifespan
