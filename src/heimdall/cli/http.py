"""How the CLI talks to the platform: HTTP through the gateway, bearer token when configured."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from heimdall.core.settings import get_settings


def gateway(area: str) -> str:
    """The gateway's base URL for one API area (``acquisition``, ``training``, ...)."""
    settings = get_settings()
    return f"http://{settings.bind_host}:{settings.gateway_port}/api/v1/{area}"


def auth_headers() -> dict[str, str]:
    tokens = get_settings().api_tokens
    return {"Authorization": f"Bearer {tokens[0].get_secret_value()}"} if tokens else {}


def error_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text
    return str(detail)


def call(
    console: Console, client: httpx.Client, method: str, url: str, **kwargs: Any
) -> Any | None:
    """One API call; prints why and returns None when it cannot be made or is refused."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        console.print(f"[red]cannot reach the API at {url}:[/] {exc}")
        return None
    if response.status_code >= 300:
        console.print(f"[red]refused ({response.status_code}):[/] {error_text(response)}")
        return None
    return response.json() if response.content else {}


def request(console: Console, method: str, url: str, **kwargs: Any) -> Any | None:
    """One call in its own client; anything but GET carries the bearer token."""
    if method != "GET":
        kwargs.setdefault("headers", auth_headers())
    with httpx.Client(timeout=30) as client:
        return call(console, client, method, url, **kwargs)


FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}


def follow_progress(
    console: Console, fetch: Callable[[], dict[str, Any]], interval_s: float = 0.3
) -> dict[str, Any]:
    """Poll a ``{state, progress}`` resource with a progress bar until it finishes."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("PENDING", total=100)
        while True:
            state = fetch()
            description = state["state"]
            if state.get("queue_position") is not None:  # an acquisition waiting for channels
                description = f"PENDING: waiting for channels, #{state['queue_position']} in line"
            progress.update(bar, completed=state["progress"], description=description)
            if state["state"] in FINISHED:
                return state
            time.sleep(interval_s)
