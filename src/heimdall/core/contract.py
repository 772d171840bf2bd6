"""Each service's OpenAPI document says every status code an operation can answer.

Routes declare what is theirs (``responses=problems(404, 409)``); what follows from
how a route is built is added here, from the route itself:

- a bearer-token guard (mutating, or reads under HEIMDALL_READ_TOKENS): 401, 403;
- a per-client rate limit: 429;
- parameters or a body: 422 (and a body: 413, HEIMDALL_MAX_BODY_BYTES);
- an ``/api/`` route: 503 (its database, broker or object store can be down).

Every error response is a :class:`heimdall.core.errors.Problem`
(``application/problem+json``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from heimdall.core.errors import document_problems
from heimdall.core.security import RATE_LIMIT_MARK, require_read_token, require_token


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


def implied_codes(route: APIRoute) -> set[int]:
    calls = list(_calls(route.dependant))
    codes: set[int] = set()
    if require_token in calls or require_read_token in calls:
        codes |= {401, 403}
    if any(getattr(call, RATE_LIMIT_MARK, False) for call in calls):
        codes.add(429)
    if _has_params(route.dependant):
        codes.add(422)
    if route.body_field is not None or route.openapi_extra and "requestBody" in route.openapi_extra:
        codes |= {413, 422}
    if route.path.startswith("/api/"):
        codes.add(503)
    return codes


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
            extra = [
                (route.path_format, method.lower(), code)
                for route in app.routes
                if isinstance(route, APIRoute) and route.include_in_schema
                for method in route.methods or ()
                for code in sorted(implied_codes(route))
            ]
            document_problems(schema, extra)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
