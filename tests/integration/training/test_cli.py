"""`heimdall sources / review / train / models` against the services behind a real gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import STATE_DIR
from tests.support.processes import ManagedProcess, http_status, uvicorn_command, wait_until
from tests.support.records import add_acquisition, add_model, review_of
from tests.support.tcp_proxy import free_port


@pytest.fixture
def gateway_env(clean_db: str) -> Iterator[dict[str, str]]:
    """Gateway, data-ingestion-web and training as processes on free ports."""
    ports = {name: free_port() for name in ("GATEWAY", "INGESTION", "TRAINING")}
    env = {
        "HEIMDALL_GATEWAY_PORT": str(ports["GATEWAY"]),
        "HEIMDALL_INGESTION_URL": f"http://127.0.0.1:{ports['INGESTION']}",
        "HEIMDALL_TRAINING_URL": f"http://127.0.0.1:{ports['TRAINING']}",
    }
    apps = {
        "GATEWAY": "heimdall.services.gateway:app",
        "INGESTION": "heimdall.services.data_ingestion_web:app",
        "TRAINING": "heimdall.services.training:app",
    }
    processes = [
        ManagedProcess(
            f"cli-{name.lower()}-{port}",
            uvicorn_command(apps[name], port),
            env=env,
            log_dir=Path(STATE_DIR),
        )
        for name, port in ports.items()
    ]
    try:
        for port in ports.values():
            url = f"http://127.0.0.1:{port}/health"
            wait_until(lambda url=url: http_status(url) == 200, 30, url)  # type: ignore[misc]
        yield {**os.environ, **env, "COLUMNS": "250"}
    finally:
        for process in processes:
            process.stop()


def heimdall(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heimdall", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_operator_loop_from_a_terminal(gateway_env: dict[str, str]) -> None:
    added = heimdall(
        gateway_env,
        *("sources", "add", "--name", "Superga", "--lat", "45.08", "--lon", "7.77"),
        *("--frequency", "145.5", "--alt", "670", "--eirp", "37"),
    )
    assert added.returncode == 0, added.stdout + added.stderr
    listed = heimdall(gateway_env, "sources")
    assert listed.returncode == 0 and "Superga" in listed.stdout

    waiting, done = add_acquisition(), add_acquisition(approval="approved")
    queue = heimdall(gateway_env, "review")
    assert queue.returncode == 0, queue.stdout + queue.stderr
    assert str(waiting) in queue.stdout and str(done) not in queue.stdout
    approved = heimdall(
        gateway_env, "review", "--approve", str(waiting), "--comment", "good", "--reviewer", "ada"
    )
    assert approved.returncode == 0, approved.stdout
    assert review_of(waiting) == ("approved", "ada", "good")
    # By the first characters of its id, as the review list can be read in a narrow
    # terminal; too short or matching nothing is refused with why.
    rejected = heimdall(gateway_env, "review", "--reject", str(done)[:8])
    assert rejected.returncode == 0, rejected.stdout
    assert review_of(done)[0] == "rejected"
    short = heimdall(gateway_env, "review", "--reject", str(done)[:3])
    assert short.returncode == 1 and "at least 4" in short.stdout
    nothing = heimdall(gateway_env, "review", "--reject", "zzzz")
    assert nothing.returncode == 1 and "no session among the newest" in " ".join(
        nothing.stdout.split()
    )
    unknown = heimdall(gateway_env, "review", "--approve", "00000000-0000-0000-0000-000000000001")
    assert unknown.returncode == 1 and "refused (404)" in unknown.stdout

    # No approved session of a known source: the job is refused with the reason.
    refused = heimdall(gateway_env, "train", "--wait")
    assert refused.returncode == 1
    assert "no approved session of a known source" in " ".join(refused.stdout.split())

    model_id = add_model(1)
    assert "default calibration" in heimdall(gateway_env, "models").stdout
    activated = heimdall(gateway_env, "models", "--activate", str(model_id))
    assert activated.returncode == 0 and "calibration-v1" in activated.stdout
    assert "active" in heimdall(gateway_env, "models").stdout
    rolled = heimdall(gateway_env, "models", "--rollback")
    assert rolled.returncode == 0 and "default-v1" in rolled.stdout
    again = heimdall(gateway_env, "models", "--rollback")
    assert again.returncode == 1 and "refused (409)" in again.stdout
