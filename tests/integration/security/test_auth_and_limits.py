"""Authentication, input limits, body size, rate limit and CORS, tried from outside.

Against the services as uvicorn processes (tokens required), except where a setting
must change mid-test: those use the in-process app, whose settings are read per request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from heimdall.core.app import create_service_app
from heimdall.core.db import sync_engine
from heimdall.core.settings import get_settings
from tests.integration.security.conftest import API_TOKEN, AUTH
from tests.support.asgi import service_client
from tests.support.stack import ServiceStack

SERVICES = ["rf-acquisition", "inference", "training", "data-ingestion-web"]
# Every operation that changes data, as the issue lists them: each must declare bearer auth.
MUTATING = {
    "POST /api/v1/acquisition/acquire",
    "POST /api/v1/acquisition/cancel/{task_id}",
    "POST /api/v1/acquisition/import",
    "POST /api/v1/inference/localize",
    "POST /api/v1/sessions/approve/{task_id}",
    "POST /api/v1/sessions/reject/{task_id}",
    "PUT /api/v1/sessions/{task_id}/known-source",
    "POST /api/v1/training/known-sources",
    "PATCH /api/v1/training/known-sources/{source_id}",
    "DELETE /api/v1/training/known-sources/{source_id}",
    "POST /api/v1/training/jobs",
    "POST /api/v1/training/jobs/{job_id}/cancel",
    "POST /api/v1/training/models/rollback",
    "POST /api/v1/training/models/{model_id}/activate",
}
TABLES = (
    "acquisitions",
    "measurements",
    "localizations",
    "known_sources",
    "training_sessions",
    "models",
    "model_activations",
    "websdr_stations",
)


def row_counts() -> dict[str, int]:
    with sync_engine().connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def operations(stack: ServiceStack) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(service base URL, method, path template, operation) of every documented operation."""
    for service in SERVICES:
        base = stack.urls[service]
        document = httpx.get(f"{base}/openapi.json", timeout=10).json()
        for path, item in document["paths"].items():
            for method, operation in item.items():
                yield base, method.upper(), path, operation


def concrete(path: str) -> str:
    return (
        path.replace("{task_id}", str(uuid.uuid4()))
        .replace("{source_id}", str(uuid.uuid4()))
        .replace("{job_id}", str(uuid.uuid4()))
        .replace("{model_id}", str(uuid.uuid4()))
    )


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and isinstance(body["detail"], str), body
    return body


def test_every_mutating_endpoint_refuses_no_token_401_and_a_wrong_one_403(
    stack: ServiceStack, clean_db: str
) -> None:
    before = row_counts()
    guarded = set()
    for base, method, path, operation in operations(stack):
        if method == "GET":
            assert "security" not in operation, path  # reads stay open by default
            continue
        guarded.add(f"{method} {path}")
        assert operation.get("security") == [{"bearer": []}], path
        assert {"401", "403"} <= set(operation["responses"]), path
        url = base + concrete(path)
        headers: dict[str, Any]
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Bearer wrong-token"}, 403),
        ({"Authorization": f"Bearer {API_TOKEN[:-1]}"}, 403),  # all but the last byte
        ({"Authorization": f"Bearer {API_TOKEN}x"}, 403),
        # Non-ASCII: the header's bytes are compared, never a 500.
        ({"Authorization": "Bearer ünïcødé-tøken".encode()}, 403),
        ({"Authorization": b"Bearer \xff\xfe\x80"}, 403),
    ):
        response = httpx.request(method, url, headers=headers, json={}, timeout=10)
        body = assert_problem(response, status)
        assert "WWW-Authenticate" in response.headers, (path, body)
    assert guarded == MUTATING
    assert row_counts() == before


def test_reads_are_open_and_a_token_is_checked_before_the_body(stack: ServiceStack) -> None:
    base = stack.urls["rf-acquisition"]
    assert httpx.get(f"{base}/api/v1/acquisition/stations", timeout=10).status_code == 200
    # Unauthenticated: 401 whatever the body; authenticated: the body's own 422.
    bad = {"frequency_mhz": 145.5, "duration_seconds": 5e-324}
    assert httpx.post(f"{base}/api/v1/acquisition/acquire", json=bad).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"frequency_mhz": 145.5, "duration_seconds": 5e-324}, "duration_seconds"),
        ({"frequency_mhz": 145.5, "duration_seconds": 0.1}, "duration_seconds"),
        ({"frequency_mhz": 145.5, "duration_seconds": 301}, "duration_seconds"),
        ({"frequency_mhz": 1e9, "duration_seconds": 2}, "frequency_mhz"),
        ({"frequency_mhz": -1, "duration_seconds": 2}, "frequency_mhz"),
        ({"frequency_mhz": 145.5, "duration_seconds": 2, "stations": ["x" * 65]}, "stations"),
        ({"frequency_mhz": 145.5, "duration_seconds": 2, "stations": ["A'--"]}, "stations"),
        ({"frequency_mhz": 145.5, "duration_seconds": 2, "description": "d" * 1001}, "description"),
        ({"frequency_mhz": 145.5, "duration_seconds": 2, "description": "a\x00b"}, "description"),
    ],
)
def test_acquire_bounds_are_422_with_a_string_detail_and_field_errors(
    stack: ServiceStack, body: dict[str, Any], field: str
) -> None:
    response = httpx.post(
        f"{stack.urls['rf-acquisition']}/api/v1/acquisition/acquire", json=body, headers=AUTH
    )
    problem = assert_problem(response, 422)
    assert field in problem["detail"]
    assert problem["errors"][0]["loc"][:2] == ["body", field]


def test_frequency_outside_the_receivers_coverage_is_refused(
    stack: ServiceStack, clean_db: str
) -> None:
    response = httpx.post(
        f"{stack.urls['rf-acquisition']}/api/v1/acquisition/acquire",
        json={"frequency_mhz": 5000, "duration_seconds": 2},
        headers=AUTH,
    )
    assert "outside the coverage" in assert_problem(response, 422)["detail"]
    assert row_counts()["acquisitions"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/acquisition/sessions?offset=1000000000000",
        "/api/v1/acquisition/sessions?limit=0",
        "/api/v1/acquisition/sessions?limit=100000",
        "/api/v1/sessions/recent?offset=-1",
        "/api/v1/sessions/recent?frequency_min_mhz=inf",
        "/api/v1/sessions/recent?frequency_min_mhz=nan",
        "/api/v1/training/known-sources?offset=99999999999999999999",
        "/api/v1/training/data/measurements?limit=10001",
        f"/api/v1/acquisition/spectrum/{uuid.uuid4()}/{'s' * 65}",
        f"/api/v1/acquisition/spectrum/{uuid.uuid4()}/UPPER",
        "/api/v1/acquisition/status/not-a-uuid",
    ],
)
def test_pagination_and_identifier_bounds(stack: ServiceStack, path: str) -> None:
    area = path.split("/")[3]
    service = {"acquisition": "rf-acquisition", "sessions": "data-ingestion-web"}.get(area, area)
    assert_problem(httpx.get(stack.urls[service] + path, timeout=10), 422)


def test_unknown_ids_are_a_problem_404(stack: ServiceStack) -> None:
    missing = uuid.uuid4()
    for service, path in (
        ("rf-acquisition", f"/api/v1/acquisition/status/{missing}"),
        ("inference", f"/api/v1/inference/localizations/{missing}"),
        ("training", f"/api/v1/training/models/{missing}"),
        ("data-ingestion-web", f"/api/v1/sessions/{missing}"),
        ("rf-acquisition", "/no/such/route"),
    ):
        assert_problem(httpx.get(stack.urls[service] + path, timeout=10), 404)


def test_bodies_over_the_limit_are_413_declared_or_streamed(stack: ServiceStack) -> None:
    url = f"{stack.urls['training']}/api/v1/training/known-sources"
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    declared = httpx.post(url, content=big, headers={**AUTH, "Content-Type": "application/json"})
    assert_problem(declared, 413)

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    streamed = httpx.post(
        url, content=chunks(), headers={**AUTH, "Content-Type": "application/json"}, timeout=30
    )
    assert_problem(streamed, 413)
    # Unauthenticated and oversized: refused before anything is read.
    assert httpx.post(url, content=big).status_code == 413


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


async def test_acquire_and_localize_are_rate_limited_per_client(
    env: pytest.MonkeyPatch, database: str
) -> None:
    env.setenv("HEIMDALL_RATE_LIMIT_BURST", "3")
    env.setenv("HEIMDALL_RATE_LIMIT_PER_MINUTE", "6")
    get_settings.cache_clear()
    invalid = {"frequency_mhz": 145.5, "duration_seconds": 0}  # counted, then refused
    async with service_client("rf_acquisition") as api:
        answers = [
            (await api.post("/api/v1/acquisition/acquire", json=invalid)).status_code
            for _ in range(4)
        ]
        assert answers == [422, 422, 422, 429]
        limited = await api.post("/api/v1/acquisition/acquire", json=invalid)
        assert_problem(limited, 429)
        assert 1 <= int(limited.headers["Retry-After"]) <= 10
        # Another client (behind the gateway, which writes X-Forwarded-For) is not limited.
        other = await api.post(
            "/api/v1/acquisition/acquire", json=invalid, headers={"X-Forwarded-For": "10.0.0.9"}
        )
        assert other.status_code == 422
        # Reads are not limited.
        assert (await api.get("/api/v1/acquisition/stations")).status_code == 200
    async with service_client("inference") as inference:
        body = {"task_id": str(uuid.uuid4())}
        codes = [
            (await inference.post("/api/v1/inference/localize", json=body)).status_code
            for _ in range(4)
        ]
        assert codes[-1] == 429 and 429 not in codes[:3]


async def test_read_tokens_guard_reads_and_cannot_write(
    env: pytest.MonkeyPatch, database: str
) -> None:
    env.setenv("HEIMDALL_API_TOKENS", API_TOKEN)
    env.setenv("HEIMDALL_READ_TOKENS", "a-read-only-token-of-enough-length-0001")
    get_settings.cache_clear()
    reader = {"Authorization": "Bearer a-read-only-token-of-enough-length-0001"}
    async with service_client("training") as training:
        path = "/api/v1/training/known-sources"
        assert_problem(await training.get(path), 401)
        assert_problem(await training.get(path, headers={"Authorization": "Bearer no"}), 403)
        assert (await training.get(path, headers=reader)).status_code == 200
        assert (await training.get(path, headers=AUTH)).status_code == 200  # API tokens read
        refused = await training.post(path, json={}, headers=reader)
        assert_problem(refused, 403)
        # A non-ASCII token works: its UTF-8 bytes are what the client sends.
        env.setenv("HEIMDALL_READ_TOKENS", "lecture-réservée-aux-opérateurs-ünïcødé")
        get_settings.cache_clear()
        utf8 = {"Authorization": "Bearer lecture-réservée-aux-opérateurs-ünïcødé".encode()}
        assert (await training.get(path, headers=utf8)).status_code == 200
        # Operations stay open: a load balancer's probe needs no token.
        assert (await training.get("/health")).status_code == 200


async def test_cors_only_for_configured_origins(env: pytest.MonkeyPatch) -> None:
    allowed = "https://ops.example"
    preflight = {"Access-Control-Request-Method": "POST"}

    async def ask(app: Any, origin: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.options("/health", headers={"Origin": origin, **preflight})

    closed = create_service_app("cors-none")
    assert "access-control-allow-origin" not in (await ask(closed, allowed)).headers
    env.setenv("HEIMDALL_CORS_ORIGINS", allowed)
    get_settings.cache_clear()
    opened = create_service_app("cors-some")
    ok = await ask(opened, allowed)
    assert ok.headers["access-control-allow-origin"] == allowed
    other = await ask(opened, "https://evil.example")
    assert "access-control-allow-origin" not in other.headers
