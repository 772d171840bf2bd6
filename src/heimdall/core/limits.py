"""Request body size limit for every service (413 before a handler reads the body).

A declared ``Content-Length`` over the limit is refused at once; a body sent without
one (chunked) is counted as it arrives and refused when it passes the limit. The
import endpoint, which takes recordings, has its own larger limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heimdall.core.errors import problem
from heimdall.core.settings import Settings, get_settings

#: Paths whose bodies may be larger than HEIMDALL_MAX_BODY_BYTES, with their own limit.
IMPORT_PATH = "/api/v1/acquisition/import"


def larger_bodies(settings: Settings) -> Mapping[str, int]:
    return {IMPORT_PATH: settings.import_max_bytes}


class _TooLarge(HTTPException):
    """Raised from ``receive``: handlers re-raise HTTP exceptions, so it ends as a 413."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, too_large(limit, setting))


def too_large(limit: int, setting: str) -> str:
    return f"request body larger than {limit} bytes ({setting})"


class BodySizeLimit:
    """Pure ASGI middleware: the limit is read from the settings on every request."""

    def __init__(self, app: ASGIApp, settings: Callable[[], Settings] = get_settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings()
        limit = larger_bodies(settings).get(scope["path"], settings.max_body_bytes)
        setting = (
            "HEIMDALL_IMPORT_MAX_BYTES"
            if scope["path"] == IMPORT_PATH
            else "HEIMDALL_MAX_BODY_BYTES"
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await problem(400, "invalid Content-Length", instance=scope["path"])(
                    scope, receive, send
                )
                return
            if int(declared) > limit:
                await self._refuse(scope, receive, send, limit, setting)
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit, setting)
            return message

        async def noted_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, noted_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, limit, setting)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int, setting: str) -> None:
        response = problem(413, too_large(limit, setting), instance=scope["path"])
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
