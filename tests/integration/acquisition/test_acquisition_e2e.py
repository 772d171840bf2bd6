"""Acquisition end to end on the real stack: API, broker, worker, PostgreSQL, S3, simulator."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, multiprocess
from sigmf import sigmffile
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore
from heimdall.simulator.network import RunningNetwork
from tests.support.tcp_proxy import TcpProxy

STATIONS = {"giaveno", "montanaro", "torino", "coazze", "giovi", "genova", "milano"}
FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}


async def wait_finished(
    api: httpx.AsyncClient, task_id: str, timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state: dict[str, Any] = (await api.get(f"/api/v1/acquisition/status/{task_id}")).json()
        if state["state"] in FINISHED:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"acquisition {task_id} not finished within {timeout_s} s: {state}")


async def acquire(api: httpx.AsyncClient, **body: Any) -> str:
    response = await api.post("/api/v1/acquisition/acquire", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "PENDING"
    return str(response.json()["task_id"])


async def set_fault(simulator: RunningNetwork, receiver_id: str, **fault: Any) -> None:
    """Through the simulator's control API, as an operator's test harness would."""
    async with httpx.AsyncClient() as client:
        response = await client.put(
            f"{simulator.control_url}/receivers/{receiver_id}/fault", json=fault
        )
    assert response.status_code == 200, response.text


def measurement_rows(task_id: str) -> int:
    with sync_engine().connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM measurements WHERE task_id = :t"), {"t": task_id}
            ).scalar_one()
        )


async def test_happy_path_records_every_receiver(
    api: httpx.AsyncClient, object_store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    started = time.monotonic()
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=5, description="happy path")
    state = await wait_finished(api, task_id)
    elapsed = time.monotonic() - started
    assert state["state"] == "SUCCESS", state
    assert state["progress"] == 100
    assert state["errors"] == []
    assert elapsed < 5 + 3, f"took {elapsed:.1f} s"

    measurements = (await api.get(f"/api/v1/acquisition/measurements/{task_id}")).json()
    assert {m["websdr_id"] for m in measurements} == STATIONS
    assert all(m["snr"] > 0 for m in measurements), [m["snr"] for m in measurements]
    assert all(m["power_dbm"] is not None and m["gps_locked"] for m in measurements)

    keys = sorted(object_store.list_keys(settings.s3_bucket_raw, f"sessions/{task_id}/"))
    assert keys == sorted(
        f"sessions/{task_id}/{s}.sigmf-{kind}" for s in STATIONS for kind in ("data", "meta")
    )
    # Readable by the sigmf package, with our GPS timestamps in the extension namespace.
    for suffix in ("sigmf-data", "sigmf-meta"):
        (tmp_path / f"torino.{suffix}").write_bytes(
            object_store.get_bytes(settings.s3_bucket_raw, f"sessions/{task_id}/torino.{suffix}")
        )
    recording = sigmffile.fromfile(str(tmp_path / "torino.sigmf-meta"))
    samples = recording.read_samples()
    sample_rate = recording.get_global_field("core:sample_rate")
    assert abs(len(samples) - 5 * sample_rate) <= 512
    capture = recording.get_captures()[0]
    assert capture["core:frequency"] == 145.5e6
    assert len(capture["heimdall:block_time_ns"]) == len(samples) // 512
    assert recording.get_global_field("core:geolocation")["type"] == "Point"
    # Each row carries its recording's metadata, the very document stored beside the
    # samples (the localization reads it from the row: one GET per recording).
    with sync_engine().connect() as conn:
        rows = conn.execute(
            text("SELECT websdr_id, sigmf_meta FROM measurements WHERE task_id = :t"),
            {"t": task_id},
        ).all()
    assert {r.websdr_id for r in rows} == STATIONS
    for row in rows:
        stored = object_store.get_bytes(
            settings.s3_bucket_raw, f"sessions/{task_id}/{row.websdr_id}.sigmf-meta"
        )
        assert row.sigmf_meta == json.loads(stored)


async def test_one_receiver_offline(api: httpx.AsyncClient, simulator: RunningNetwork) -> None:
    await set_fault(simulator, "genova", kind="down")
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=2)
    state = await wait_finished(api, task_id)
    assert state["state"] == "SUCCESS", state
    assert [e["station_id"] for e in state["errors"]] == ["genova"]
    assert "genova" in state["errors"][0]["error"]
    assert measurement_rows(task_id) == 6


async def test_too_few_receivers_fails_and_says_why(
    api: httpx.AsyncClient, simulator: RunningNetwork
) -> None:
    for receiver_id in ("genova", "giovi", "milano", "torino", "montanaro"):
        await set_fault(simulator, receiver_id, kind="refuse")
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1)
    state = await wait_finished(api, task_id)
    assert state["state"] == "FAILED"
    assert "only 2 of 7 receivers delivered" in state["error_message"]
    assert measurement_rows(task_id) == 0


async def test_five_concurrent_acquisitions_do_not_mix(api: httpx.AsyncClient) -> None:
    frequencies = [145.5, 145.3, 144.8, 433.5, 435.0]
    task_ids = [await acquire(api, frequency_mhz=f, duration_seconds=1) for f in frequencies]
    states = [await wait_finished(api, t, timeout_s=120) for t in task_ids]
    assert [s["state"] for s in states] == ["SUCCESS"] * 5, states
    for task_id, frequency in zip(task_ids, frequencies, strict=True):
        rows = (await api.get(f"/api/v1/acquisition/measurements/{task_id}")).json()
        assert len(rows) == 7
        assert {r["task_id"] for r in rows} == {task_id}
        assert {r["frequency_mhz"] for r in rows} == {frequency}


async def test_cancel_removes_objects_and_rows(
    api: httpx.AsyncClient, simulator: RunningNetwork, object_store: ObjectStore, settings: Settings
) -> None:
    # One receiver never answers, so the task is still running after the others wrote.
    await set_fault(simulator, "milano", kind="not_answering")
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1)
    prefix = f"sessions/{task_id}/"
    deadline = time.monotonic() + 20
    while len(list(object_store.list_keys(settings.s3_bucket_raw, prefix))) < 12:
        assert time.monotonic() < deadline, "the healthy receivers never wrote their recordings"
        await asyncio.sleep(0.1)
    asked = time.monotonic()
    response = await api.post(f"/api/v1/acquisition/cancel/{task_id}")
    assert response.status_code == 200
    assert response.json() == {"task_id": task_id, "state": "CANCELLED"}
    status = (await api.get(f"/api/v1/acquisition/status/{task_id}")).json()
    assert status["state"] == "CANCELLED"
    assert time.monotonic() - asked < 1.0
    deadline = time.monotonic() + 10
    while list(object_store.list_keys(settings.s3_bucket_raw, prefix)):
        assert time.monotonic() < deadline, "objects of the cancelled task were not removed"
        await asyncio.sleep(0.2)
    assert measurement_rows(task_id) == 0
    again = await api.post(f"/api/v1/acquisition/cancel/{task_id}")
    assert again.status_code == 409


async def test_object_storage_down_fails_naming_it(
    api: httpx.AsyncClient, s3_proxy: TcpProxy
) -> None:
    s3_proxy.cut()
    try:
        task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1)
        state = await wait_finished(api, task_id)
    finally:
        s3_proxy.restore()
    assert state["state"] == "FAILED"
    assert state["error_message"].startswith("MinIO/S3 object storage unreachable at ")
    assert measurement_rows(task_id) == 0


async def test_sessions_list_and_metrics(
    api: httpx.AsyncClient,
    simulator: RunningNetwork,
    worker_metrics_dir: Path,
    worker_metrics_port: int,
) -> None:
    await set_fault(simulator, "milano", kind="refuse")  # so a receiver failure is counted
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1, description="listed")
    await wait_finished(api, task_id)
    sessions = (await api.get("/api/v1/acquisition/sessions", params={"state": "SUCCESS"})).json()
    listed = next(s for s in sessions if s["task_id"] == task_id)
    assert listed["websdr_count"] == 6
    assert listed["approval"] == "pending"
    assert listed["description"] == "listed"

    api_metrics = (await api.get("/metrics")).text
    assert "acquisitions_total" in api_metrics
    # State read from the database and the broker when scraped.
    for line in (
        "active_acquisitions 0.0",
        'receiver_up{websdr_id="milano"} 0.0',
        'receiver_up{websdr_id="torino"} 1.0',
        'receiver_consecutive_failures{websdr_id="milano"} 1.0',
        'receiver_busy_channels{websdr_id="milano"} 0.0',
        'celery_queue_depth{queue="acquisition"} 0.0',
    ):
        assert line in api_metrics.splitlines(), line
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(worker_metrics_dir))
    samples = {s.name: s.value for m in registry.collect() for s in m.samples}
    assert samples["acquisitions_succeeded_total"] >= 1
    assert samples["acquisition_seconds_count"] >= 1
    assert samples["iq_download_seconds_count"] >= 6
    assert any(
        s.name == "websdr_failures_total" and s.labels == {"websdr_id": "milano"} and s.value >= 1
        for m in registry.collect()
        for s in m.samples
    )
    assert "worker_tasks_running" in samples
    # The same figures, as Prometheus scrapes them from the worker.
    async with httpx.AsyncClient() as client:
        scraped = (await client.get(f"http://127.0.0.1:{worker_metrics_port}/metrics")).text
    for name in (
        "acquisitions_succeeded_total",
        "websdr_failures_total",
        "acquisition_seconds_bucket",
        "iq_download_seconds_bucket",
        "worker_tasks_running",
        "localization_seconds_bucket",
    ):
        assert name in scraped, name


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"frequency_mhz": 145.5, "duration_seconds": -1}, "greater than or equal to 0.5"),
        ({"frequency_mhz": 145.5, "duration_seconds": 301}, "less than or equal to 300"),
        (
            {"frequency_mhz": 145.5, "duration_seconds": 1, "stations": ["atlantis"]},
            "unknown station ids: atlantis",
        ),
        ({"frequency_mhz": 1200.0, "duration_seconds": 1}, "outside the coverage"),
        (
            {"frequency_mhz": 145.5, "duration_seconds": 1, "description": "x" * 1001},
            "at most 1000",
        ),
    ],
)
async def test_bad_requests_are_refused_and_never_queued(
    api: httpx.AsyncClient, body: dict[str, Any], needle: str
) -> None:
    response = await api.post("/api/v1/acquisition/acquire", json=body)
    assert response.status_code == 422
    assert needle in json.dumps(response.json())
    with sync_engine().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM acquisitions")).scalar_one() == 0


async def test_malformed_json_and_unknown_task(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/acquisition/acquire",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    unknown = "00000000-0000-0000-0000-000000000000"
    for method, path in (
        ("GET", f"/api/v1/acquisition/status/{unknown}"),
        ("POST", f"/api/v1/acquisition/cancel/{unknown}"),
        ("GET", f"/api/v1/acquisition/measurements/{unknown}"),
    ):
        answer = await api.request(method, path)
        assert answer.status_code == 404
        assert unknown in answer.json()["detail"]
    assert (await api.get("/api/v1/acquisition/status/not-a-uuid")).status_code == 422
