"""Every service answers /health, /ready, /metrics and /docs; /ready names what is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from heimdall.core.storage import ObjectStore
from tests.conftest import STATE_DIR
from tests.support.asgi import service_client
from tests.support.processes import ManagedProcess, http_status, uvicorn_command, wait_until
from tests.support.tcp_proxy import TcpProxy, free_port

BACKEND_SERVICES = ["rf_acquisition", "training", "inference", "data_ingestion_web"]


@pytest.mark.parametrize("module", [*BACKEND_SERVICES, "gateway"])
async def test_health_metrics_and_docs(module: str, database: str) -> None:
    async with service_client(module) as client:
        health = await client.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "# TYPE" in metrics.text
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/openapi.json")).json()["info"]["title"].startswith("Heimdall")


@pytest.mark.parametrize("module", BACKEND_SERVICES)
async def test_ready_when_dependencies_answer(
    module: str, database: str, object_store: ObjectStore
) -> None:
    async with service_client(module) as client:
        response = await client.get("/ready")
    assert response.status_code == 200, response.text
    assert set(response.json()["dependencies"].values()) == {"ok"}


async def test_gateway_not_ready_names_the_missing_upstream() -> None:
    # No service runs on the configured upstream ports in this test run.
    async with service_client("gateway") as client:
        response = await client.get("/ready")
        proxied = await client.get("/api/v1/acquisition/stations")
    assert response.status_code == 503
    assert "rf-acquisition" in response.json()["detail"]
    assert proxied.status_code == 503
    assert "rf-acquisition" in proxied.json()["detail"]


@pytest.fixture
def postgres_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    yield proxy
    proxy.close()


def test_database_down_makes_ready_503_naming_postgresql_and_health_stays_up(
    database: str, postgres_proxy: TcpProxy
) -> None:
    port = free_port()
    url = database.replace("127.0.0.1:5432", f"127.0.0.1:{postgres_proxy.port}")
    service = ManagedProcess(
        "ingestion-behind-proxy",
        uvicorn_command("heimdall.services.data_ingestion_web:app", port),
        env={"HEIMDALL_DATABASE_URL": url},
        log_dir=Path(STATE_DIR),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{base}/ready") == 200, 30, "service ready")
        postgres_proxy.cut()
        response = httpx.get(f"{base}/ready", timeout=10)
        assert response.status_code == 503
        assert "PostgreSQL" in response.json()["detail"]
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        postgres_proxy.restore()
        wait_until(lambda: http_status(f"{base}/ready") == 200, 30, "ready again after restore")
    finally:
        service.stop()


def test_gateway_forwards_upstream_answers_as_they_are(database: str) -> None:
    upstream_port, gateway_port = free_port(), free_port()
    log_dir = Path(STATE_DIR)
    upstream = ManagedProcess(
        "acq-for-gateway",
        uvicorn_command("heimdall.services.rf_acquisition:app", upstream_port),
        env={},
        log_dir=log_dir,
    )
    gateway = ManagedProcess(
        "gateway",
        uvicorn_command("heimdall.services.gateway:app", gateway_port),
        env={"HEIMDALL_ACQUISITION_URL": f"http://127.0.0.1:{upstream_port}"},
        log_dir=log_dir,
    )
    try:
        wait_until(
            lambda: http_status(f"http://127.0.0.1:{upstream_port}/health") == 200, 30, "upstream"
        )
        wait_until(
            lambda: http_status(f"http://127.0.0.1:{gateway_port}/health") == 200, 30, "gateway"
        )
        direct = httpx.get(f"http://127.0.0.1:{upstream_port}/api/v1/acquisition/stations")
        via = httpx.get(f"http://127.0.0.1:{gateway_port}/api/v1/acquisition/stations")
        assert via.status_code == 200
        assert via.json() == direct.json()
        missing = httpx.get(f"http://127.0.0.1:{gateway_port}/api/v1/acquisition/no-such-thing")
        assert missing.status_code == 404  # the upstream's own answer, forwarded
        unknown_area = httpx.get(f"http://127.0.0.1:{gateway_port}/api/v1/nowhere/x")
        assert unknown_area.status_code == 404
        # The contract's short form reaches the same endpoint.
        unknown = "00000000-0000-0000-0000-000000000000"
        short = httpx.get(f"http://127.0.0.1:{gateway_port}/acquisition/status/{unknown}")
        assert short.status_code == 404
        assert unknown in short.json()["detail"]
    finally:
        gateway.stop()
        upstream.stop()
