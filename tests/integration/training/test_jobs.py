"""Training jobs: refused without data, fail with a message, cancel, broker down."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.orm import Session

from heimdall.core.db import sync_engine
from heimdall.core.storage import ObjectStore
from heimdall.models import TrainingSession
from heimdall.training.tasks import run_training_job
from tests.conftest import STATE_DIR
from tests.support.processes import ManagedProcess, http_status, uvicorn_command, wait_until
from tests.support.records import add_acquisition, add_known_source
from tests.support.tcp_proxy import TcpProxy, free_port

NO_DATA = "no approved session of a known source in the selection"


def job_rows() -> list[tuple[str, str | None]]:
    with sync_engine().connect() as conn:
        rows = conn.execute(text("SELECT status, error_message FROM training_sessions"))
        return [(r.status, r.error_message) for r in rows]


def model_count() -> int:
    with sync_engine().connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM models")).scalar_one())


def add_job(**parameters: object) -> uuid.UUID:
    """A PENDING job row as the API writes it (bypassing its data check)."""
    job_id = uuid.uuid4()
    with Session(sync_engine()) as session, session.begin():
        session.add(
            TrainingSession(id=job_id, parameters={"folds": 5, "activate": "auto", **parameters})
        )
    return job_id


async def test_no_approved_known_source_session_is_a_clear_409(
    training: httpx.AsyncClient,
) -> None:
    beacon = add_known_source("beacon")
    add_acquisition(approval="rejected", known_source_id=beacon)
    add_acquisition(approval="pending", known_source_id=beacon)
    add_acquisition(approval="approved")  # approved, but of no known source
    add_acquisition(approval="approved", known_source_id=beacon, frequency_mhz=433.5)
    refused = await training.post(
        "/api/v1/training/jobs", json={"frequency_min_mhz": 144, "frequency_max_mhz": 146}
    )
    assert refused.status_code == 409
    assert NO_DATA in refused.json()["detail"]
    assert "144-146 MHz" in refused.json()["detail"]
    assert job_rows() == []


async def test_job_requests_are_validated(training: httpx.AsyncClient) -> None:
    for bad in (
        {"folds": 1},
        {"folds": 11},
        {"activate": "always"},
        {"frequency_min_mhz": 146, "frequency_max_mhz": 144},
        {"start": "2026-03-01T00:00:00"},
        {"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        {"learning_rate": 0.1},
    ):
        response = await training.post("/api/v1/training/jobs", json=bad)
        assert response.status_code == 422, bad
    assert job_rows() == []


def test_a_job_without_data_ends_failed_with_the_reason(
    clean_db: str, object_store: ObjectStore
) -> None:
    beacon = add_known_source("beacon")
    add_acquisition(approval="rejected", known_source_id=beacon)
    job_id = add_job()
    outcome = run_training_job(job_id)
    assert outcome["state"] == "FAILED"
    [(status, message)] = job_rows()
    assert status == "FAILED" and message is not None and NO_DATA in message
    assert model_count() == 0
    # A redelivered message for a finished job changes nothing.
    assert run_training_job(job_id)["state"] == "FAILED"


def test_one_session_is_not_enough_and_says_so(clean_db: str, object_store: ObjectStore) -> None:
    beacon = add_known_source("beacon")
    add_acquisition(approval="approved", known_source_id=beacon)
    job_id = add_job()
    assert run_training_job(job_id)["state"] == "FAILED"
    [(_, message)] = job_rows()
    assert message is not None and "cross-validation needs at least 2" in message


async def test_cancel(training: httpx.AsyncClient, object_store: ObjectStore) -> None:
    job_id = add_job()
    cancelled = await training.post(f"/api/v1/training/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "CANCELLED"
    assert cancelled.json()["finished_at"] is not None
    again = await training.post(f"/api/v1/training/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert "CANCELLED" in again.json()["detail"]
    # The task, arriving later, finds the cancel and does nothing.
    assert run_training_job(job_id)["state"] == "CANCELLED"
    assert job_rows() == [("CANCELLED", None)] and model_count() == 0
    unknown = uuid.uuid4()
    assert (await training.post(f"/api/v1/training/jobs/{unknown}/cancel")).status_code == 404
    assert (await training.get(f"/api/v1/training/jobs/{unknown}")).status_code == 404


async def test_jobs_are_listed_newest_first(training: httpx.AsyncClient) -> None:
    first, second = add_job(), add_job(frequency_min_mhz=144.0)
    with sync_engine().begin() as conn:
        conn.execute(
            text("UPDATE training_sessions SET created_at = :t WHERE id = :id"),
            {"t": datetime.now(UTC) - timedelta(minutes=1), "id": first},
        )
    page = (await training.get("/api/v1/training/jobs")).json()
    assert [j["job_id"] for j in page["items"]] == [str(second), str(first)]
    shown = (await training.get(f"/api/v1/training/jobs/{second}")).json()
    assert (shown["state"], shown["progress"], shown["model_id"]) == ("PENDING", 0, None)
    assert shown["parameters"]["frequency_min_mhz"] == 144.0


def test_broker_down_is_503_without_an_orphan_job(clean_db: str) -> None:
    beacon = add_known_source("beacon")
    add_acquisition(approval="approved", known_source_id=beacon)
    proxy = TcpProxy("127.0.0.1", 5672).start()
    port = free_port()
    service = ManagedProcess(
        f"training-{port}",
        uvicorn_command("heimdall.services.training:app", port),
        env={"HEIMDALL_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{proxy.port}//"},
        log_dir=Path(STATE_DIR),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(f"{base}/health") == 200, 30, "training up")
        proxy.cut()
        response = httpx.post(f"{base}/api/v1/training/jobs", json={}, timeout=30)
    finally:
        service.stop()
        proxy.close()
    assert response.status_code == 503
    assert "RabbitMQ" in response.json()["detail"]
    assert job_rows() == []
