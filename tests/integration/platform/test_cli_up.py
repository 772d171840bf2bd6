"""`heimdall up` / `status` / `down` as an operator runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from heimdall.core.settings import PACKAGE_DATA
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
    # Its own queues: the run's other workers (another database) must not take its tasks.
    env["HEIMDALL_QUEUE_PREFIX"] = f"{env['HEIMDALL_QUEUE_PREFIX']}cli-"
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


def simulated_network_on_free_ports(tmp_path: Path) -> Path:
    """The seven simulated stations, on ports no other stack on this machine uses."""
    registry = yaml.safe_load((PACKAGE_DATA / "stations-simulated.yaml").read_text())
    for station in registry["stations"]:
        station["url"] = f"ws://127.0.0.1:{free_port()}"
    path = tmp_path / "stations.yaml"
    path.write_text(yaml.safe_dump(registry))
    return path


@pytest.fixture
def own_database(database: str) -> Iterator[str]:
    """The CLI's stack seeds its own registry, so it gets a database of its own."""
    url = f"{database}_cli"
    yield url
    name = url.rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )


def test_demo_then_acquire_status_locate_then_down(
    tmp_path: Path, own_database: str, object_store: ObjectStore
) -> None:
    env = stack_env(tmp_path)
    env["HEIMDALL_SIMULATOR_ENABLED"] = "true"
    env["HEIMDALL_STATIONS_FILE"] = str(simulated_network_on_free_ports(tmp_path))
    env["HEIMDALL_DATABASE_URL"] = own_database
    gateway = f"http://127.0.0.1:{env['HEIMDALL_GATEWAY_PORT']}"
    try:
        demo = heimdall("demo", "--duration", "2", env=env, timeout=300)
        out = " ".join(demo.stdout.split())
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "final state: SUCCESS" in out
        assert "estimated position" in out
        assert "error against the simulated truth" in out
        for station in ("giaveno", "montanaro", "torino", "coazze", "giovi", "genova", "milano"):
            assert station in out

        acquired = heimdall("acquire", "--frequency", "145.5", "--duration", "1", env=env)
        assert acquired.returncode == 0, acquired.stdout
        task_id = acquired.stdout.split("acquisition ", 1)[1].split()[0]
        shown = heimdall("status", task_id, env=env)
        assert shown.returncode == 0 and "SUCCESS" in shown.stdout
        located = heimdall("locate", task_id, env=env)
        assert located.returncode == 0, located.stdout
        assert "95 % ellipse" in " ".join(located.stdout.split())
        refused = heimdall("acquire", "--frequency", "145.5", "--duration", "301", env=env)
        assert refused.returncode != 0
        assert "refused (422)" in refused.stdout
        for name in SERVICES:
            port = env[f"HEIMDALL_{name}_PORT"]
            assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).status_code == 200
        stations = httpx.get(f"{gateway}/api/v1/acquisition/stations", timeout=10)
        assert len(stations.json()) == 7
        status = heimdall("status", env=env, timeout=60)
        assert status.returncode == 0, status.stdout
        assert "worker" in status.stdout
        assert "receiver-simulator" in status.stdout
    finally:
        stopped = heimdall("down", env=env, timeout=60)
    assert "Heimdall stopped" in stopped.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gateway}/health")
    after = heimdall("status", env=env, timeout=60)
    assert after.returncode != 0
    # Its unanswered worker pings leave nothing to print at exit (a Redis traceback did).
    assert "Traceback" not in after.stderr, after.stderr
