"""Reverse proxy of the api-gateway: one public entry point for every service.

Upstream answers are forwarded as they are, status code included; an upstream
that cannot be reached becomes a 503 naming the service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from heimdall.core.settings import Settings

# Hop-by-hop headers (RFC 9110 section 7.6.1) are not forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    base_url: str


def upstream_table(settings: Settings) -> dict[str, Upstream]:
    """Map the first path segment after /api/v1/ to the service that owns it."""
    return {
        "acquisition": Upstream("rf-acquisition", settings.acquisition_url),
        "training": Upstream("training", settings.training_url),
        "inference": Upstream("inference", settings.inference_url),
        "sessions": Upstream("data-ingestion-web", settings.ingestion_url),
    }


def build_router(settings: Settings) -> APIRouter:
    upstreams = upstream_table(settings)
    router = APIRouter()

    async def forward(request: Request, upstream: Upstream, path: str) -> Response:
        client: httpx.AsyncClient = request.app.state.http
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            upstream_response = await client.request(
                request.method,
                f"{upstream.base_url}{path}",
                params=request.query_params,
                content=await request.body(),
                headers=headers,
            )
        except httpx.TransportError as exc:
            return JSONResponse(
                status_code=503,
                content={
                    "detail": f"{upstream.name} service unavailable at {upstream.base_url}: "
                    f"{type(exc).__name__}"
                },
            )
        response_headers = {
            k: v for k, v in upstream_response.headers.items() if k.lower() not in HOP_BY_HOP
        }
        response_headers.pop("content-encoding", None)
        return Response(
            content=upstream_response.content,
            status_code=upstream_response.status_code,
            headers=response_headers,
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    @router.api_route("/api/v1/{area}/{rest:path}", methods=methods, include_in_schema=False)
    async def api(request: Request, area: str, rest: str) -> Response:
        upstream = upstreams.get(area)
        if upstream is None:
            return JSONResponse(
                status_code=404, content={"detail": f"no service serves /api/v1/{area}"}
            )
        return await forward(request, upstream, f"/api/v1/{area}/{rest}")

    # Short forms from the contract.
    @router.api_route("/acquisition/{rest:path}", methods=methods, include_in_schema=False)
    async def acquisition_short(request: Request, rest: str) -> Response:
        return await forward(request, upstreams["acquisition"], f"/api/v1/acquisition/{rest}")

    return router


def lifespan_with_client(
    timeout_s: float = 30.0,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            app.state.http = client
            yield

    return lifespan
