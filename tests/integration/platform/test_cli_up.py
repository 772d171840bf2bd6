"""`heimdall up` / `status` / `down` as an operator runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from heimdall.core.storage import ObjectStore
from tests.support.tcp_proxy import free_port

SERVICES = ("GATEWAY", "ACQUISITION", "TRAINING", "INFERENCE", "INGESTION")


def stack_env(tmp_path: Path) -> dict[str, str]:
    """Free ports for every service, so the test never collides with a dev stack."""
    env = {**os.environ, "HEIMDALL_STATE_DIR": str(tmp_path / "state")}
    for name in SERVICES:
        port = free_port()
        env[f"HEIMDALL_{name}_PORT"] = str(port)
        if name != "GATEWAY":
            env[f"HEIMDALL_{name}_URL"] = f"http://127.0.0.1:{port}"
    env["HEIMDALL_SIMULATOR_CONTROL_PORT"] = str(free_port())
    env["HEIMDALL_WORKER_METRICS_PORT"] = str(free_port())
    env["HEIMDALL_SIMULATOR_ENABLED"] = "false"
    return env


def heimdall(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heimdall", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_up_refuses_a_taken_port_and_starts_nothing(tmp_path: Path, database: str) -> None:
    env = stack_env(tmp_path)
    taken = int(env["HEIMDALL_TRAINING_PORT"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        result = heimdall("up", env=env, timeout=60)
    assert result.returncode != 0
    assert f"port {taken} (training) is already in use" in " ".join(result.stdout.split())
    for name in SERVICES:
        port = int(env[f"HEIMDALL_{name}_PORT"])
        if port != taken:
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{port}/health")


def test_up_detached_then_status_then_down(
    tmp_path: Path, database: str, object_store: ObjectStore
) -> None:
    env = stack_env(tmp_path)
    gateway = f"http://127.0.0.1:{env['HEIMDALL_GATEWAY_PORT']}"
    try:
        started = heimdall("up", "--detach", "--timeout", "120", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        for name in SERVICES:
            port = env[f"HEIMDALL_{name}_PORT"]
            assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).status_code == 200
        stations = httpx.get(f"{gateway}/api/v1/acquisition/stations", timeout=10)
        assert len(stations.json()) == 7
        status = heimdall("status", env=env, timeout=60)
        assert status.returncode == 0, status.stdout
        assert "worker" in status.stdout
    finally:
        stopped = heimdall("down", env=env, timeout=60)
    assert "Heimdall stopped" in stopped.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gateway}/health")
    assert heimdall("status", env=env, timeout=60).returncode != 0
