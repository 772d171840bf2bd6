"""Metrics plumbing: dead pool processes forgotten, requests labelled by route, scrape-time gauges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, HTTPException
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

from heimdall.core import metrics
from heimdall.core.app import create_service_app

# A pool process: counts one task as running, says so, then waits to be killed.
RUNNING_TASK = """
from heimdall.core import metrics
metrics.worker_tasks_running.labels(task="heimdall.acquisition.acquire_iq").inc()
metrics.acquisitions_succeeded_total.inc()
print("running", flush=True)
import time; time.sleep(60)
"""


@pytest.fixture
def pool_processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Two processes sharing one multiprocess directory, each with a task running."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNING_TASK], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "running"
    yield processes
    for process in processes:
        process.kill()
        process.wait()


def running_tasks(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(
        "worker_tasks_running", {"task": "heimdall.acquisition.acquire_iq"}
    )


def test_a_sigkilled_pool_process_stops_counting_as_running(
    pool_processes: list[subprocess.Popen[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    raw = CollectorRegistry()
    multiprocess.MultiProcessCollector(raw, path=str(tmp_path))
    assert running_tasks(metrics.registry()) == 2

    killed = pool_processes[0]
    killed.send_signal(signal.SIGKILL)  # no shutdown hook runs
    killed.wait()
    assert running_tasks(raw) == 2  # what the plain collector still believes
    served = metrics.registry()
    assert running_tasks(served) == 1
    assert not list(tmp_path.glob(f"gauge_livesum_{killed.pid}.db"))
    # What the dead process counted stays counted: it did that work.
    assert served.get_sample_value("acquisitions_succeeded_total") == 2


def test_forget_dead_processes_keeps_the_living(
    pool_processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    assert metrics.forget_dead_processes(tmp_path) == []
    assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 2


def _requests(route: str, status: str, method: str = "GET") -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total", {"route": route, "method": method, "status": status}
    )
    return value or 0.0


async def test_requests_are_counted_by_route_template_method_and_status() -> None:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise HTTPException(404, "no thing 0")
        return {"thing_id": thing_id}

    @router.post("/explode")
    async def explode() -> None:
        raise RuntimeError("a handler that fails")

    app = create_service_app("metrics-test", routers=[router])
    before = {
        "ok": _requests("/things/{thing_id}", "200"),
        "missing": _requests("/things/{thing_id}", "404"),
        "unrouted": _requests("unrouted", "404"),
        "failed": _requests("/explode", "500", "POST"),
    }
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for thing_id in (1, 2, 3, 0):
            await client.get(f"/things/{thing_id}")
        await client.get("/no/such/path/42")
        assert (await client.post("/explode")).status_code == 500
        exposed = (await client.get("/metrics")).text
    assert _requests("/things/{thing_id}", "200") - before["ok"] == 3
    assert _requests("/things/{thing_id}", "404") - before["missing"] == 1
    assert _requests("unrouted", "404") - before["unrouted"] == 1
    assert _requests("/explode", "500", "POST") - before["failed"] == 1
    assert 'route="/things/1"' not in exposed and "/no/such/path" not in exposed
    assert 'http_request_seconds_bucket{le="0.005",method="GET",route="/things/{thing_id}"}' in (
        exposed
    )


async def test_scrape_time_gauges_hold_only_the_latest_read() -> None:
    reads = iter(
        [
            {metrics.CELERY_QUEUE_DEPTH: [(("acquisition",), 4.0), (("training",), 1.0)]},
            {metrics.CELERY_QUEUE_DEPTH: [(("acquisition",), 0.0)]},
            RuntimeError("broker down"),
        ]
    )

    async def read() -> metrics.GaugeSamples:
        value = next(reads)
        if isinstance(value, Exception):
            raise value
        return value

    gauges = metrics.ScrapeTimeGauges([metrics.CELERY_QUEUE_DEPTH], read)
    registry = CollectorRegistry()
    registry.register(gauges)
    await gauges.refresh()
    assert registry.get_sample_value("celery_queue_depth", {"queue": "training"}) == 1
    await gauges.refresh()
    assert registry.get_sample_value("celery_queue_depth", {"queue": "acquisition"}) == 0
    assert registry.get_sample_value("celery_queue_depth", {"queue": "training"}) is None
    await gauges.refresh()  # an unanswerable read leaves no stale value behind
    assert "celery_queue_depth{" not in generate_latest(registry).decode()
