"""The api-gateway application: forwarding routes, merged OpenAPI, readiness of upstreams."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from heimdall.core.app import create_service_app
from heimdall.core.health import upstream as upstream_check
from heimdall.core.settings import Settings
from heimdall.gateway.openapi import merged_openapi
from heimdall.gateway.proxy import Forwarder, lifespan_with_client, upstream_table
from heimdall.gateway.routes import api_router, page_router, refusal_router, short_form_router


def _openapi_router(settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    upstreams = upstream_table(settings)

    @router.get("/openapi.json")
    async def openapi(request: Request) -> JSONResponse:
        app: FastAPI = request.app
        own = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        return JSONResponse(await merged_openapi(request.app.state.http, own, upstreams))

    return router


def build_gateway(settings: Settings) -> FastAPI:
    upstreams = upstream_table(settings)
    forwarder = Forwarder.for_settings(settings)
    return create_service_app(
        "api-gateway",
        # Every route forwards (the services check tokens) or is the page.
        open_routers=[
            _openapi_router(settings),
            api_router(upstreams, forwarder),
            short_form_router(upstreams["acquisition"], forwarder),
            page_router(upstreams["sessions"], forwarder),
            refusal_router(),  # last: whatever matched nothing else
        ],
        checks=[upstream_check(u.name, u.base_url) for u in upstreams.values()],
        description="The single public entry point: forwards /api/v1/... to the services "
        "and serves the operator's page; 503 names an upstream that is down.",
        lifespan=lifespan_with_client(settings),
        own_openapi=False,
        limit_bodies=False,
    )
