"""Shared by the acquisition tests: API processes of their own, outages, consistency checks."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore
from tests.conftest import STATE_DIR
from tests.support.processes import ManagedProcess, http_status, uvicorn_command, wait_until
from tests.support.tcp_proxy import free_port

FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}
# How late after its deadline the sweeper may end an acquisition (it sweeps every second).
SWEEP_SLACK = timedelta(seconds=3)


@pytest.fixture
def api_process_factory(clean_db: str) -> Iterator[Callable[[dict[str, str]], str]]:
    """Start rf-acquisition processes with their own settings; stopped at the end."""
    started: list[ManagedProcess] = []

    def start(env: dict[str, str]) -> str:
        port = free_port()
        process = ManagedProcess(
            f"rf-acquisition-{port}",
            uvicorn_command("heimdall.services.rf_acquisition:app", port),
            env=env,
            log_dir=Path(STATE_DIR),
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(f"{base}/health") == 200, 30, "rf-acquisition up")
        return base

    yield start
    for process in started:
        process.stop()


def database_answers() -> bool:
    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def postgresql_stopped() -> Iterator[None]:
    """The machine's PostgreSQL down for the duration of the block, and always up again.

    Other test runs share this server: keep the block to a few seconds.
    """
    subprocess.run(["pg_ctlcluster", "15", "main", "stop"], check=True, timeout=60)
    try:
        yield
    finally:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"],
            check=True,
            timeout=120,
        )
        wait_until(database_answers, 60, "PostgreSQL answering again")


def status_of(base: str | httpx.Client, task_id: str) -> dict[str, object]:
    """The status, tolerating the API's 503s while a dependency comes back."""
    url = f"/api/v1/acquisition/status/{task_id}"
    for _ in range(50):
        try:
            if isinstance(base, str):
                response = httpx.get(f"{base}{url}", timeout=10)
            else:
                response = base.get(url)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            state: dict[str, object] = response.json()
            return state
        time.sleep(0.2)
    raise AssertionError(f"status of {task_id} unavailable")


def wait_state(base: str, task_id: str, states: set[str], timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = status_of(base, task_id)
        if state["state"] in states:
            return state
        assert time.monotonic() < deadline, (
            f"{task_id} not in {states} within {timeout_s} s: {state}"
        )
        time.sleep(0.1)


def assert_consistent(store: ObjectStore, settings: Settings, timeout_s: float = 15) -> None:
    """Every acquisition finished by its deadline; database and object storage agree.

    SUCCESS: a SigMF pair per measurement and nothing else; otherwise no objects and
    no measurements. No channel is still leased. Clean-up after FAILED or CANCELLED
    runs just after the state is written, so it is given ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        problems = _inconsistencies(store, settings)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not problems, problems


def _inconsistencies(store: ObjectStore, settings: Settings) -> list[str]:
    problems = []
    with sync_engine().connect() as conn:
        acquisitions = conn.execute(
            text("SELECT task_id, status, finished_at, deadline_at FROM acquisitions")
        ).all()
        measured = dict(
            conn.execute(
                text("SELECT task_id, array_agg(websdr_id) FROM measurements GROUP BY task_id")
            ).all()
        )
        leases = conn.execute(text("SELECT count(*) FROM channel_leases")).scalar_one()
    if leases:
        problems.append(f"{leases} channel leases still held")
    for task_id, status, finished_at, deadline_at in acquisitions:
        keys = set(store.list_keys(settings.s3_bucket_raw, f"sessions/{task_id}/"))
        stations = measured.get(task_id) or []
        if status not in FINISHED:
            problems.append(f"{task_id} still {status}")
            continue
        if deadline_at is not None and finished_at > deadline_at + SWEEP_SLACK:
            problems.append(f"{task_id} finished {finished_at - deadline_at} after its deadline")
        if status == "SUCCESS":
            expected = {
                f"sessions/{task_id}/{s}.sigmf-{kind}"
                for s in stations
                for kind in ("data", "meta")
            }
            if not stations or keys != expected:
                problems.append(f"{task_id} SUCCESS: objects {sorted(keys)} != {sorted(expected)}")
        elif keys or stations:
            problems.append(f"{task_id} {status} kept {len(keys)} objects, {len(stations)} rows")
    return problems
