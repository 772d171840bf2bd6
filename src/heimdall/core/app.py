"""Build a Heimdall service: FastAPI app with /health, /ready, /metrics and OpenAPI."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heimdall import __version__
from heimdall.core import metrics
from heimdall.core.contract import install_contract
from heimdall.core.docs import docs_router
from heimdall.core.errors import Problem, ProblemResponse, install_error_handlers, problems
from heimdall.core.health import DependencyCheck, run_checks
from heimdall.core.limits import BodySizeLimit
from heimdall.core.process import prepare_computing_process
from heimdall.core.security import require_read_token
from heimdall.core.settings import get_settings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests no route matched (unknown paths): one label value, whatever the path was.
UNROUTED = "unrouted"


class RequestMetrics:
    """Count every request and time it by route template, method and status.

    The route template (``/api/v1/acquisition/status/{task_id}``), never the raw
    path: one series per endpoint, not one per task id. A request whose handler
    raised is counted as the 500 the server answers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = route_template(scope)
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            metrics.http_requests_total.labels(route, method, str(status)).inc()
            metrics.http_request_seconds.labels(route, method).observe(
                time.perf_counter() - started
            )


class Ready(BaseModel):
    status: str
    dependencies: dict[str, str]


def route_template(scope: Scope) -> str:
    """The matched route's full template, as the router stored it in the scope.

    A route included through a router with a prefix is matched in its included
    form (FastAPI keeps it under ``scope["fastapi"]``); ``scope["route"]`` is the
    original route, without the prefix.
    """
    effective = scope.get("fastapi", {}).get("effective_route_context")
    for candidate in (getattr(effective, "starlette_route", None), effective):
        template = getattr(candidate, "path_format", None) or getattr(candidate, "path", None)
        if template:
            return str(template)
    return getattr(scope.get("route"), "path", None) or UNROUTED


def create_service_app(
    name: str,
    *,
    routers: Sequence[APIRouter] = (),
    checks: Sequence[DependencyCheck] = (),
    description: str = "",
    lifespan: Lifespan | None = None,
    scrape_time: Sequence[metrics.ScrapeTimeGauges] = (),
    own_openapi: bool = True,
    open_routers: Sequence[APIRouter] = (),
    limit_bodies: bool = True,
) -> FastAPI:
    """``scrape_time``: gauges this service computes when Prometheus scrapes it.
    ``own_openapi=False`` leaves ``/openapi.json`` to a router of the caller's
    (the gateway serves the merged document of every service there).

    ``routers`` are the service's API: reads need a token when HEIMDALL_READ_TOKENS is
    set. ``open_routers`` never do (the page, forwarding routes whose upstream checks).
    Every error is a problem+json body (``heimdall.core.errors``); bodies are bounded
    (HEIMDALL_MAX_BODY_BYTES); other origins are allowed only as HEIMDALL_CORS_ORIGINS
    says."""
    prepare_computing_process()
    app = FastAPI(
        title=f"Heimdall {name}",
        version=__version__,
        description=description,
        lifespan=lifespan,
        openapi_url="/openapi.json" if own_openapi else None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service_name = name
    install_error_handlers(app)
    install_contract(app)
    if limit_bodies:  # the gateway's forwarder has its own limit
        app.add_middleware(BodySizeLimit)
    app.add_middleware(RequestMetrics)
    cors_origins = get_settings().cors_origins
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    exposed = metrics.service_registry(scrape_time)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["ops"],
        response_model=Ready,
        responses=problems(503, s503="A dependency is down: dependencies names it"),
    )
    async def ready() -> Ready | ProblemResponse:
        results = await run_checks(list(checks))
        failing = {dep: reason for dep, reason in results.items() if reason != "ok"}
        if failing:
            names = ", ".join(failing)
            detail = f"{name} is not ready: {names} not answering"
            body = Problem(
                title="Service Unavailable", status=503, detail=detail, instance="/ready"
            )
            return ProblemResponse(
                status_code=503,
                content={**body.model_dump(exclude_none=True), "dependencies": results},
            )
        return Ready(status="ready", dependencies=results)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        for gauges in scrape_time:
            await gauges.refresh()
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    app.include_router(docs_router(f"Heimdall {name}"))
    for router in routers:
        app.include_router(router, dependencies=[Depends(require_read_token)])
    for router in open_routers:
        app.include_router(router)
    return app
