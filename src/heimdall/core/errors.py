"""One error shape for every service: RFC 9457 problem details (``application/problem+json``).

Every error any service answers (its own refusals, FastAPI's validation errors, a
dependency that is down, an unexpected exception) is a :class:`Problem`: ``type``,
``title``, ``status``, ``detail`` (always a sentence), ``instance`` (the path), and for
validation errors ``errors``, one entry per invalid field. A dependency that is down
is a 503; an unexpected exception a 500 whose body says nothing about its cause (the
log has it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


class DependencyUnavailable(RuntimeError):
    """A backing service (database, broker, object store) could not be reached."""


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path or header, then the field")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank", description="about:blank: see the status code")
    title: str = Field(description="The status code's phrase")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong with this request, for a person")
    instance: str | None = Field(default=None, description="The request's path")
    errors: list[FieldError] | None = Field(
        default=None, description="Validation errors (422): one per invalid field"
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> ProblemResponse:
    """The response for an error, in the one shape every service uses."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = Problem(title=title, status=status, detail=detail, instance=instance, errors=errors)
    return ProblemResponse(
        status_code=status,
        content=body.model_dump(exclude_none=True),
        headers=dict(headers) if headers else None,
    )


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for error in exc.errors():
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        out.append(FieldError(loc=loc, msg=str(error.get("msg", "")), type=str(error["type"])))
    return out


def _summary(errors: list[FieldError]) -> str:
    parts = [f"{'.'.join(str(p) for p in e.loc[1:]) or e.loc[0]}: {e.msg}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, instance=request.url.path, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> ProblemResponse:
        errors = _field_errors(exc)
        return problem(422, _summary(errors), instance=request.url.path, errors=errors)

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> ProblemResponse:
        return problem(503, "PostgreSQL database unavailable", instance=request.url.path)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> ProblemResponse:
        if exc.connection_invalidated:
            return problem(503, "PostgreSQL database unavailable", instance=request.url.path)
        log.error("database error on %s: %s", request.url.path, type(exc.orig).__name__)
        return problem(500, "internal error", instance=request.url.path)

    @app.exception_handler(DependencyUnavailable)
    async def dependency_down(request: Request, exc: DependencyUnavailable) -> ProblemResponse:
        return problem(503, str(exc), instance=request.url.path)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> ProblemResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal error", instance=request.url.path)


def problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


# What each documented error status means, wherever it is not said more precisely.
ERROR_MEANINGS: dict[int, str] = {
    400: "Malformed request",
    401: "A bearer token is required (HEIMDALL_API_TOKENS, or HEIMDALL_READ_TOKENS for reads)",
    403: "The bearer token is not one of the configured tokens",
    404: "No such resource",
    409: "The resource's state does not allow this",
    413: "Request body too large",
    415: "Unsupported content type",
    422: "Invalid request: each invalid field is in errors",
    429: "Too many requests from this client: wait Retry-After seconds",
    500: "Internal error (the log has its cause)",
    503: "A dependency (database, broker, object store) is unavailable",
}


def problems(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status code with the problem body.

    ``described`` overrides a meaning: ``problems(404, s409="already finished")``.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, *(int(key[1:]) for key in described)}):
        out[code] = {"description": described.get(f"s{code}", ERROR_MEANINGS.get(code, "Error"))}
    return out


def document_problems(schema: dict[str, Any], extra: Iterable[tuple[str, str, int]] = ()) -> None:
    """Give every documented error response of ``schema`` the problem body, and add the
    ``Problem`` component. ``extra``: (path, method, status) to document as well."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(components["Problem"].pop("$defs", {}))
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path, method, code in extra:
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is not None:
            operation.setdefault("responses", {}).setdefault(
                str(code), {"description": ERROR_MEANINGS.get(code, "Error")}
            )
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for code, response in operation.get("responses", {}).items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = problem_content()
