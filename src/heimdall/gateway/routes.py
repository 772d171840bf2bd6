"""Which public paths the gateway forwards, and to which service.

- ``/api/v1/{area}/...`` to the service owning the area (``upstream_table``);
- the contract's short forms ``/acquisition/acquire``, ``/acquisition/status/{id}``
  and ``/acquisition/measurements/{id}``;
- the operator's page of data-ingestion-web: ``/``, ``/config.json``, ``/static/...``;
- anything else: 400 when its path is malformed or climbs out, 404 otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request, Response

from heimdall.core.errors import problem
from heimdall.gateway.paths import PathRefused
from heimdall.gateway.proxy import Forwarder, Upstream, forward_under, resolved_path

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

SHORT_FORMS = (
    ("/acquisition/acquire", "/acquisition/acquire", ["POST"]),
    ("/acquisition/status/{task_id}", "/acquisition/status", ["GET", "HEAD"]),
    ("/acquisition/measurements/{task_id}", "/acquisition/measurements", ["GET", "HEAD"]),
)

PAGE_FILES = ("/", "/config.json")


def _endpoint(
    forwarder: Forwarder, upstream: Upstream, prefix: str, target_prefix: str
) -> Callable[[Request], Awaitable[Response]]:
    # A closure, not default arguments: FastAPI would read those as request parameters.
    async def forward(request: Request) -> Response:
        return await forward_under(request, forwarder, upstream, prefix, target_prefix)

    return forward


def api_router(upstreams: Mapping[str, Upstream], forwarder: Forwarder) -> APIRouter:
    """``/api/v1/{area}`` and everything under it, for each area of ``upstreams``."""
    router = APIRouter(include_in_schema=False)
    for area, upstream in upstreams.items():
        prefix = f"/api/v1/{area}"
        forward = _endpoint(forwarder, upstream, prefix, prefix)
        router.add_api_route(prefix, forward, methods=METHODS)
        router.add_api_route(prefix + "/{rest:path}", forward, methods=METHODS)
    return router


def short_form_router(acquisition: Upstream, forwarder: Forwarder) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for route, prefix, methods in SHORT_FORMS:
        forward = _endpoint(forwarder, acquisition, prefix, "/api/v1" + prefix)
        router.add_api_route(route, forward, methods=methods)
    return router


def page_router(ingestion: Upstream, forwarder: Forwarder) -> APIRouter:
    """The operator's page and its assets, served by data-ingestion-web."""
    router = APIRouter(include_in_schema=False)

    async def page_file(request: Request) -> Response:
        return await forwarder(request, ingestion, request.scope["path"])

    static = _endpoint(forwarder, ingestion, "/static", "/static")
    for path in PAGE_FILES:
        router.add_api_route(path, page_file, methods=["GET", "HEAD"])
    router.add_api_route("/static/{rest:path}", static, methods=["GET", "HEAD"])
    return router


def refusal_router() -> APIRouter:
    """Last route: nothing else matched. A traversal attempt is a 400, the rest a 404."""
    router = APIRouter(include_in_schema=False)

    async def nothing_here(request: Request) -> Response:
        try:
            path = resolved_path(request)
        except PathRefused as exc:
            return problem(400, str(exc))
        if path.floor is not None:
            return problem(400, "'..' in the path")
        return problem(404, "no service serves this path")

    router.add_api_route("/{rest:path}", nothing_here, methods=METHODS)
    return router
