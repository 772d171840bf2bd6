"""Build a Heimdall service: FastAPI app with /health, /ready, /metrics and OpenAPI."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heimdall import __version__
from heimdall.core import metrics
from heimdall.core.docs import docs_router
from heimdall.core.errors import install_error_handlers
from heimdall.core.health import DependencyCheck, run_checks
from heimdall.core.process import prepare_computing_process

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
            # The router stored the matched route in the scope on its way in.
            route = getattr(scope.get("route"), "path", None) or UNROUTED
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            metrics.http_requests_total.labels(route, method, str(status)).inc()
            metrics.http_request_seconds.labels(route, method).observe(
                time.perf_counter() - started
            )


def create_service_app(
    name: str,
    *,
    routers: Sequence[APIRouter] = (),
    checks: Sequence[DependencyCheck] = (),
    description: str = "",
    lifespan: Lifespan | None = None,
    scrape_time: Sequence[metrics.ScrapeTimeGauges] = (),
    own_openapi: bool = True,
) -> FastAPI:
    """``scrape_time``: gauges this service computes when Prometheus scrapes it.
    ``own_openapi=False`` leaves ``/openapi.json`` to a router of the caller's
    (the gateway serves the merged document of every service there)."""
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
    app.add_middleware(RequestMetrics)
    exposed = metrics.service_registry(scrape_time)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        results = await run_checks(list(checks))
        failing = {dep: reason for dep, reason in results.items() if reason != "ok"}
        if failing:
            names = ", ".join(failing)
            return JSONResponse(
                status_code=503,
                content={
                    "status": "unavailable",
                    "detail": f"{name} is not ready: {names} not answering",
                    "dependencies": results,
                },
            )
        return JSONResponse({"status": "ready", "dependencies": results})

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        for gauges in scrape_time:
            await gauges.refresh()
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    app.include_router(docs_router(f"Heimdall {name}"))
    for router in routers:
        app.include_router(router)
    return app
