"""Each service's OpenAPI document says every status code an operation can answer.

Routes declare what is theirs (``responses=problems(404, 409)``); what follows from
how a route is built is added here, from the route itself:

- a bearer-token guard (mutating, or reads under HEIMDALL_READ_TOKENS): 401, 403;
- a per-client rate limit: 429;
- parameters or a body: 422 (and a body: 413, HEIMDALL_MAX_BODY_BYTES, and 400 when it
  cannot be decoded at all);
- an ``/api/`` route: 503 (its database, broker or object store can be down).

Every error response is a :class:`heimdall.core.errors.Problem`
(``application/problem+json``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import _get_api_route_for_openapi, get_openapi  # the OpenAPI view
from fastapi.routing import APIRoute, iter_route_contexts

from heimdall.core.errors import document_problems
from heimdall.core.security import RATE_LIMIT_MARK, require_read_token, require_token

SECURITY_NOTE = (
    "One of HEIMDALL_API_TOKENS for every operation that changes data, when it is set "
    "(always in production); reads too when HEIMDALL_READ_TOKENS is set."
)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _has_params(dependant: Dependant) -> bool:
    if dependant.path_params or dependant.query_params or dependant.header_params:
        return True
    if dependant.body_params or dependant.cookie_params:
        return True
    return any(_has_params(sub) for sub in dependant.dependencies)


def guarded(route: Any) -> bool:
    return require_token in _calls(route.dependant)


def implied_codes(route: Any) -> set[int]:
    calls = list(_calls(route.dependant))
    codes: set[int] = set()
    if require_token in calls or require_read_token in calls:
        codes |= {401, 403}
    if any(getattr(call, RATE_LIMIT_MARK, False) for call in calls):
        codes.add(429)
    if _has_params(route.dependant):
        codes.add(422)
    if route.body_field is not None or route.openapi_extra and "requestBody" in route.openapi_extra:
        codes |= {400, 413, 422}  # 400: a body that is not text or not the media type
    if route.path.startswith("/api/"):
        codes.add(503)
    return codes


def api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's documented routes as the OpenAPI document sees them (APIRoute-like
    contexts): with the prefix and the dependencies of every router they were
    included through."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            route = _get_api_route_for_openapi(context)
            if route is not None and route.include_in_schema:
                yield route


def install_contract(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the document that lists every error response."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            routes = list(api_routes(app))
            extra = [
                (route.path_format, method.lower(), code)
                for route in routes
                for method in route.methods or ()
                for code in sorted(implied_codes(route))
            ]
            document_problems(schema, extra)
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": SECURITY_NOTE}
            }
            for route in routes:
                if guarded(route):
                    for method in route.methods or ():
                        schema["paths"][route.path_format][method.lower()]["security"] = [
                            {"bearer": []}
                        ]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
