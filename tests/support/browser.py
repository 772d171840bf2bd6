"""Debian's Chromium driven by Playwright, with every request checked to stay on loopback.

Playwright's own browser builds are never downloaded: the system Chromium is used.
A page under test fails its test when it sends a request off this machine, logs an
error to its console, raises, or gets a 4xx/5xx answer it did not expect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
ARTIFACTS = Path(
    os.environ.get(
        "HEIMDALL_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"
    )
)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page and everything it did that a test must see."""

    page: Page
    context: BrowserContext
    outside: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests left loopback: {self.outside}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.failed_responses == [], f"failed requests: {self.failed_responses}"

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


@contextmanager
def watched_page(browser: Browser, width: int, height: int) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    watched = Watched(page, context)

    def guard(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            watched.outside.append(url)
            route.abort()

    context.route("**/*", guard)
    page.on("request", lambda r: _check_host(watched, r.url))
    page.on("console", lambda m: m.type == "error" and watched.console_errors.append(m.text))
    page.on("pageerror", lambda e: watched.console_errors.append(str(e)))
    page.on(
        "response",
        lambda r: r.status >= 400 and watched.failed_responses.append(f"{r.status} {r.url}"),
    )
    # A view that closes aborts its polling request: that is not a failure.
    page.on(
        "requestfailed",
        lambda r: (
            r.failure != "net::ERR_ABORTED"
            and watched.failed_responses.append(f"{r.failure} {r.url}")
        ),
    )
    try:
        yield watched
    finally:
        context.close()


def _check_host(watched: Watched, url: str) -> None:
    parts = urlsplit(url)
    remote = parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK
    if remote and url not in watched.outside:
        watched.outside.append(url)
