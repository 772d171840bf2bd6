"""The api-gateway in front of the real services: routes, forwarding, refusals, 503s."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from heimdall.core.settings import Settings
from heimdall.gateway.app import build_gateway
from tests.support.stack import ServiceStack, start_stack
from tests.support.tcp_proxy import free_port

TOKEN = "gateway-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNKNOWN = "00000000-0000-0000-0000-00000000beef"
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def stack(database: str) -> Iterator[ServiceStack]:
    services = start_stack(
        {"HEIMDALL_API_TOKENS": TOKEN, "HEIMDALL_GATEWAY_MAX_BODY_BYTES": str(MAX_BODY)}
    )
    yield services
    services.stop()


@pytest.fixture
def gateway(stack: ServiceStack, clean_db: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.urls["api-gateway"], timeout=30) as client:
        yield client


# (method, path at the gateway, path at the service, service, JSON body)
ROUTES: list[tuple[str, str, str, str, Any]] = [
    ("GET", "/api/v1/acquisition/stations", None, "rf-acquisition", None),
    ("GET", "/api/v1/acquisition/stations/state", None, "rf-acquisition", None),
    ("GET", "/api/v1/acquisition/sessions?limit=0", None, "rf-acquisition", None),
    ("GET", f"/api/v1/acquisition/spectrum/{UNKNOWN}/torino", None, "rf-acquisition", None),
    ("GET", f"/api/v1/acquisition/status/{UNKNOWN}", None, "rf-acquisition", None),
    ("GET", f"/api/v1/acquisition/measurements/{UNKNOWN}", None, "rf-acquisition", None),
    ("POST", f"/api/v1/acquisition/cancel/{UNKNOWN}", None, "rf-acquisition", None),
    ("POST", "/api/v1/acquisition/acquire", None, "rf-acquisition", {"frequency_mhz": -1}),
    ("POST", "/acquisition/acquire", "/api/v1/acquisition/acquire", "rf-acquisition", {}),
    (
        "GET",
        f"/acquisition/status/{UNKNOWN}",
        f"/api/v1/acquisition/status/{UNKNOWN}",
        "rf-acquisition",
        None,
    ),
    (
        "GET",
        f"/acquisition/measurements/{UNKNOWN}",
        f"/api/v1/acquisition/measurements/{UNKNOWN}",
        "rf-acquisition",
        None,
    ),
    ("GET", "/api/v1/training/known-sources", None, "training", None),
    ("POST", "/api/v1/training/known-sources", None, "training", {"name": ""}),
    ("GET", f"/api/v1/training/known-sources/{UNKNOWN}", None, "training", None),
    ("PATCH", f"/api/v1/training/known-sources/{UNKNOWN}", None, "training", {"name": "x"}),
    ("DELETE", f"/api/v1/training/known-sources/{UNKNOWN}", None, "training", None),
    ("GET", "/api/v1/training/jobs", None, "training", None),
    ("GET", f"/api/v1/training/jobs/{UNKNOWN}", None, "training", None),
    ("POST", f"/api/v1/training/jobs/{UNKNOWN}/cancel", None, "training", None),
    ("GET", "/api/v1/training/models", None, "training", None),
    ("GET", f"/api/v1/training/models/{UNKNOWN}", None, "training", None),
    ("POST", f"/api/v1/training/models/{UNKNOWN}/activate", None, "training", None),
    ("POST", "/api/v1/inference/localize", None, "inference", {"task_id": UNKNOWN}),
    ("GET", f"/api/v1/inference/localizations/{UNKNOWN}", None, "inference", None),
    ("GET", "/api/v1/sessions/recent?limit=3", None, "data-ingestion-web", None),
    ("GET", f"/api/v1/sessions/{UNKNOWN}", None, "data-ingestion-web", None),
    ("POST", f"/api/v1/sessions/approve/{UNKNOWN}", None, "data-ingestion-web", {}),
    ("POST", f"/api/v1/sessions/reject/{UNKNOWN}", None, "data-ingestion-web", None),
    (
        "PUT",
        f"/api/v1/sessions/{UNKNOWN}/known-source",
        None,
        "data-ingestion-web",
        {"known_source_id": None},
    ),
    ("GET", "/", None, "data-ingestion-web", None),
    ("GET", "/config.json", None, "data-ingestion-web", None),
    ("GET", "/static/js/main.js", None, "data-ingestion-web", None),
]

COMPARED_HEADERS = ("content-type", "www-authenticate", "content-security-policy", "etag")


@pytest.mark.parametrize(("method", "path", "upstream_path", "service", "body"), ROUTES)
def test_every_route_reaches_its_service_and_forwards_its_answer(
    gateway: httpx.Client,
    stack: ServiceStack,
    method: str,
    path: str,
    upstream_path: str | None,
    service: str,
    body: Any,
) -> None:
    direct = httpx.request(
        method, stack.urls[service] + (upstream_path or path), json=body, headers=AUTH, timeout=30
    )
    via = gateway.request(method, path, json=body, headers=AUTH)
    assert (via.status_code, via.content) == (direct.status_code, direct.content)
    for header in COMPARED_HEADERS:
        assert via.headers.get(header) == direct.headers.get(header), header


def test_client_errors_come_back_with_their_bodies_and_headers(gateway: httpx.Client) -> None:
    refused = gateway.post("/api/v1/acquisition/acquire", json={"frequency_mhz": 145.5})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="heimdall"'
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "a bearer token is required (HEIMDALL_API_TOKENS)",
        "instance": "/api/v1/acquisition/acquire",
    }

    invalid = gateway.post(
        "/api/v1/acquisition/acquire", json={"frequency_mhz": 145.5, "duration_seconds": 301}
    )
    assert invalid.status_code == 401  # the token is checked before the body
    invalid = gateway.post(
        "/api/v1/acquisition/acquire",
        json={"frequency_mhz": 145.5, "duration_seconds": 301},
        headers=AUTH,
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["loc"] == ["body", "duration_seconds"]
    assert "duration_seconds" in invalid.json()["detail"]

    missing = gateway.get(f"/api/v1/inference/localizations/{UNKNOWN}")
    assert missing.status_code == 404
    assert UNKNOWN in missing.json()["detail"]

    # The bearer token reaches the service: it answers past its guard.
    unknown_station = gateway.post(
        "/api/v1/acquisition/acquire",
        json={"frequency_mhz": 145.5, "duration_seconds": 1, "stations": ["nowhere"]},
        headers=AUTH,
    )
    assert unknown_station.status_code == 422
    assert "nowhere" in unknown_station.json()["detail"]


def test_the_page_through_the_gateway_keeps_its_security_policy(gateway: httpx.Client) -> None:
    page = gateway.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/static/js/main.js">' in page.text


def test_request_bodies_over_the_limit_are_refused(gateway: httpx.Client) -> None:
    big = b"x" * (MAX_BODY + 1)
    declared = gateway.post("/api/v1/acquisition/acquire", content=big, headers=AUTH)
    assert declared.status_code == 413
    assert str(MAX_BODY) in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for _ in range(0, len(big), 4096):
            yield b"x" * 4096

    streamed = gateway.post("/api/v1/acquisition/acquire", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    # A body under the limit goes through (the service answers 422 for it).
    small = gateway.post(
        "/api/v1/acquisition/acquire", content=b"{" + b" " * 1000 + b"}", headers=AUTH
    )
    assert small.status_code == 422


def raw_get(base_url: str, raw_path: str) -> tuple[int, bytes]:
    """A request with exactly this path: http.client sends it as written."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("GET", raw_path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


TRAVERSALS = [
    "/api/v1/acquisition/../training/known-sources",
    "/api/v1/acquisition/..",
    "/api/v1/acquisition/%2e%2e/training/known-sources",
    "/api/v1/acquisition/%2E%2e/training/known-sources",
    "/api/v1/acquisition/.%2E/training/known-sources",
    "/api/v1/acquisition/..%2ftraining%2fknown-sources",
    "/api/v1/acquisition/..%2Ftraining/known-sources",
    "/api/v1/acquisition/stations%2f..%2f..%2ftraining",
    "/api/v1/acquisition/..\\training\\known-sources",
    "/api/v1/acquisition/%5c..%5ctraining",
    "/api/v1/acquisition/%252e%252e/training/known-sources",
    "/api/v1/sessions/../../v1/training/known-sources",
    "/api/v1/../v1/training/known-sources",
    "/static/../api/v1/training/known-sources",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    f"/acquisition/status/..%2f..%2fcancel%2f{UNKNOWN}",
    "/acquisition/acquire/..",
]


def test_imports_may_be_larger_than_other_bodies(gateway: httpx.Client) -> None:
    # Over the gateway's limit, under HEIMDALL_IMPORT_MAX_BYTES: it reaches the service,
    # which answers (415: not multipart) instead of the gateway's 413.
    big = gateway.post(
        "/api/v1/acquisition/import",
        content=b"x" * (4 * MAX_BODY),
        headers={**AUTH, "Content-Type": "application/octet-stream"},
    )
    assert big.status_code == 415, big.text


@pytest.mark.parametrize("raw_path", TRAVERSALS)
def test_paths_leaving_their_prefix_are_refused_with_400(
    stack: ServiceStack, raw_path: str
) -> None:
    status, body = raw_get(stack.urls["api-gateway"], raw_path)
    assert status == 400, body
    assert b"known_sources" not in body and b"items" not in body


def test_dot_segments_inside_the_prefix_are_normalised(stack: ServiceStack) -> None:
    status, body = raw_get(
        stack.urls["api-gateway"], "/api/v1/acquisition/state/..//./stations/../stations"
    )
    assert status == 200, body
    direct = httpx.get(stack.urls["rf-acquisition"] + "/api/v1/acquisition/stations")
    assert body == direct.content


def test_docs_merge_every_services_api(gateway: httpx.Client) -> None:
    document = gateway.get("/openapi.json").json()
    assert document["x-heimdall-services"] == {
        "data-ingestion-web": "ok",
        "inference": "ok",
        "rf-acquisition": "ok",
        "training": "ok",
    }
    for path in (
        "/api/v1/acquisition/acquire",
        "/api/v1/acquisition/stations/state",
        "/api/v1/training/known-sources",
        "/api/v1/training/models/{model_id}/activate",
        "/api/v1/inference/localize",
        "/api/v1/sessions/recent",
        "/api/v1/sessions/approve/{task_id}",
        "/health",
    ):
        assert path in document["paths"], path
    # The services' own ops routes are not the gateway's to show.
    assert "/metrics" not in document["paths"]
    referenced = {
        value.rsplit("/", 1)[1]
        for value in _refs(document["paths"])
        if value.startswith("#/components/schemas/")
    }
    assert referenced <= set(document["components"]["schemas"])
    docs = gateway.get("/docs")
    assert docs.status_code == 200
    assert "/docs/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    assert gateway.get("/docs/swagger-ui-bundle.js").status_code == 200


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


# --- upstreams that are down or silent: an in-process gateway in front of nothing ---


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@asynccontextmanager
async def gateway_in_front_of(urls: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = build_gateway(Settings(**urls, gateway_upstream_timeout_s=1.0))  # type: ignore[arg-type]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        yield client


DOWN_ROUTES = [
    ("/api/v1/acquisition/stations", "rf-acquisition"),
    (f"/acquisition/status/{UNKNOWN}", "rf-acquisition"),
    ("/api/v1/training/models", "training"),
    (f"/api/v1/inference/localizations/{UNKNOWN}", "inference"),
    ("/api/v1/sessions/recent", "data-ingestion-web"),
    ("/", "data-ingestion-web"),
    ("/static/js/main.js", "data-ingestion-web"),
]
URL_FIELDS = ("acquisition_url", "training_url", "inference_url", "ingestion_url")


@pytest.mark.parametrize(("path", "service"), DOWN_ROUTES)
async def test_an_upstream_that_is_down_is_a_503_naming_it(path: str, service: str) -> None:
    closed = {name: f"http://127.0.0.1:{free_port()}" for name in URL_FIELDS}
    async with gateway_in_front_of(closed) as client:
        response = await client.get(path)
    assert response.status_code == 503
    assert response.json()["detail"].startswith(f"{service} service unavailable")


@pytest.mark.parametrize(("path", "service"), DOWN_ROUTES)
async def test_an_upstream_that_does_not_answer_is_a_503_naming_it(
    silent_server: int, path: str, service: str
) -> None:
    silent = {name: f"http://127.0.0.1:{silent_server}" for name in URL_FIELDS}
    async with gateway_in_front_of(silent) as client:
        response = await client.get(path)
    assert response.status_code == 503
    assert response.json()["detail"] == f"{service} service did not answer in time"


async def test_docs_still_served_when_upstreams_are_down() -> None:
    closed = {name: f"http://127.0.0.1:{free_port()}" for name in URL_FIELDS}
    async with gateway_in_front_of(closed) as client:
        document = (await client.get("/openapi.json")).json()
    assert document["info"]["title"] == "Heimdall api-gateway"
    assert "/health" in document["paths"]
    assert set(document["x-heimdall-services"].values()) == {"unavailable: ConnectError"}
    assert "Not included" in document["info"]["description"]
