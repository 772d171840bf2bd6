"""Build a Heimdall service: FastAPI app with /health, /ready, /metrics and OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from heimdall import __version__
from heimdall.core.docs import docs_router
from heimdall.core.errors import install_error_handlers
from heimdall.core.health import DependencyCheck, run_checks
from heimdall.core.metrics import registry
from heimdall.core.process import prepare_computing_process

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    name: str,
    *,
    routers: Sequence[APIRouter] = (),
    checks: Sequence[DependencyCheck] = (),
    description: str = "",
    lifespan: Lifespan | None = None,
    before_scrape: Sequence[Callable[[], Awaitable[None]]] = (),
    own_openapi: bool = True,
) -> FastAPI:
    """``own_openapi=False`` leaves ``/openapi.json`` to a router of the caller's
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
    async def metrics() -> Response:
        for refresh in before_scrape:
            await refresh()
        return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)

    app.include_router(docs_router(f"Heimdall {name}"))
    for router in routers:
        app.include_router(router)
    return app
