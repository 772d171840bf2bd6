"""Errors every service maps the same way: a dependency that is down is a 503."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError


class DependencyUnavailable(RuntimeError):
    """A backing service (database, broker, object store) could not be reached."""


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": "PostgreSQL database unavailable"})

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return JSONResponse(
                status_code=503, content={"detail": "PostgreSQL database unavailable"}
            )
        raise exc

    @app.exception_handler(DependencyUnavailable)
    async def dependency_down(request: Request, exc: DependencyUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})
