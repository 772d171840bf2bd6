"""Dependencies failing around an acquisition: each is cut with a proxy we own."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.core.storage import ObjectStore
from heimdall.simulator.network import RunningNetwork
from tests.integration.conftest import start_worker
from tests.support.processes import ManagedProcess, wait_until
from tests.support.tcp_proxy import TcpProxy

BODY = {"frequency_mhz": 145.5, "duration_seconds": 1}


def acquisition_count() -> int:
    with sync_engine().connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM acquisitions")).scalar_one())


def test_postgresql_down_at_trigger_is_503(clean_db: str, api_process_factory) -> None:  # type: ignore[no-untyped-def]
    proxy = TcpProxy("127.0.0.1", 5432).start()
    try:
        url = clean_db.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        base = api_process_factory({"HEIMDALL_DATABASE_URL": url})
        proxy.cut()
        response = httpx.post(f"{base}/api/v1/acquisition/acquire", json=BODY, timeout=30)
    finally:
        proxy.close()
    assert response.status_code == 503
    assert "PostgreSQL" in response.json()["detail"]
    assert acquisition_count() == 0


def test_broker_down_at_trigger_is_503_without_orphan_row(
    clean_db: str,
    api_process_factory,  # type: ignore[no-untyped-def]
) -> None:
    proxy = TcpProxy("127.0.0.1", 5672).start()
    try:
        base = api_process_factory(
            {"HEIMDALL_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{proxy.port}//"}
        )
        proxy.cut()
        response = httpx.post(f"{base}/api/v1/acquisition/acquire", json=BODY, timeout=30)
    finally:
        proxy.close()
    assert response.status_code == 503
    assert "RabbitMQ" in response.json()["detail"]
    assert acquisition_count() == 0


def test_worker_killed_mid_task_is_redelivered_and_completes_once(
    clean_db: str,
    simulator: RunningNetwork,
    object_store: ObjectStore,
    tmp_path: Path,
    api_process_factory,  # type: ignore[no-untyped-def]
) -> None:
    # A worker and an API of their own (their own queue names), so killing this
    # worker cannot disturb the other tests' worker.
    from heimdall.core.settings import get_settings

    own = {"HEIMDALL_QUEUE_PREFIX": f"{get_settings().queue_prefix}kill-"}
    base = api_process_factory(own)
    first = start_worker("worker-to-kill", own, tmp_path / "m1")
    second: ManagedProcess | None = None
    try:
        response = httpx.post(
            f"{base}/api/v1/acquisition/acquire",
            json={"frequency_mhz": 145.5, "duration_seconds": 4},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        status_url = f"{base}/api/v1/acquisition/status/{task_id}"
        wait_until(lambda: httpx.get(status_url).json()["state"] == "PROGRESS", 60, "task running")
        time.sleep(1.5)  # mid-recording
        first.kill_hard()
        second = start_worker("worker-after-kill", own, tmp_path / "m2")
        wait_until(
            lambda: httpx.get(status_url).json()["state"] in {"SUCCESS", "FAILED"},
            90,
            "task finished after redelivery",
        )
        state = httpx.get(status_url).json()
        assert state["state"] == "SUCCESS", state
        rows = httpx.get(f"{base}/api/v1/acquisition/measurements/{task_id}").json()
        assert sorted(r["websdr_id"] for r in rows) == sorted(simulator.ports)
        keys = list(object_store.list_keys(get_settings().s3_bucket_raw, f"sessions/{task_id}/"))
        assert len(keys) == 2 * len(simulator.ports)
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_redis_down_does_not_touch_acquisitions(
    clean_db: str,
    acquisition_worker: ManagedProcess,
    api_process_factory,  # type: ignore[no-untyped-def]
) -> None:
    # The acquisition row is the record of state; the result backend is only a transport.
    proxy = TcpProxy("127.0.0.1", 6379).start()
    try:
        base = api_process_factory(
            {"HEIMDALL_RESULT_BACKEND_URL": f"redis://127.0.0.1:{proxy.port}/0"}
        )
        proxy.cut()
        response = httpx.post(f"{base}/api/v1/acquisition/acquire", json=BODY, timeout=30)
        assert response.status_code == 202, response.text
        status_url = f"{base}/api/v1/acquisition/status/{response.json()['task_id']}"
        wait_until(
            lambda: httpx.get(status_url).json()["state"] == "SUCCESS", 60, "acquisition done"
        )
    finally:
        proxy.close()


def test_mutating_endpoints_need_a_bearer_token_when_tokens_are_set(
    clean_db: str,
    api_process_factory,  # type: ignore[no-untyped-def]
) -> None:
    base = api_process_factory({"HEIMDALL_API_TOKENS": "alpha-token,beta-token"})
    acquire_url = f"{base}/api/v1/acquisition/acquire"
    missing = httpx.post(acquire_url, json=BODY)
    wrong = httpx.post(acquire_url, json=BODY, headers={"Authorization": "Bearer nope"})
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert missing.headers["www-authenticate"] == 'Bearer realm="heimdall"'
    assert missing.headers["content-type"] == "application/problem+json"
    unknown = "00000000-0000-0000-0000-000000000000"
    cancel = httpx.post(f"{base}/api/v1/acquisition/cancel/{unknown}")
    assert cancel.status_code == 401
    assert acquisition_count() == 0
    # Reading needs no token; a valid one lets the request through to validation.
    assert httpx.get(f"{base}/api/v1/acquisition/stations").status_code == 200
    invalid = httpx.post(
        acquire_url,
        json={"frequency_mhz": 145.5, "duration_seconds": 0},
        headers={"Authorization": "Bearer beta-token"},
    )
    assert invalid.status_code == 422
