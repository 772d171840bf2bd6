"""Processes the operations tests run: services on free ports, workers with metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from heimdall.core.settings import get_settings
from tests.conftest import STATE_DIR
from tests.integration.conftest import start_worker
from tests.support.processes import ManagedProcess, http_status, uvicorn_command, wait_until
from tests.support.tcp_proxy import free_port

StartService = Callable[[str, dict[str, str]], str]


def own_queues(suffix: str) -> dict[str, str]:
    """Environment of processes with queues of their own: no other test's worker takes
    their tasks, and killing their worker disturbs no other test. They localize nothing."""
    return {
        "HEIMDALL_QUEUE_PREFIX": f"{get_settings().queue_prefix}{suffix}",
        "HEIMDALL_LOCALIZE_AFTER_ACQUISITION": "false",
    }


@pytest.fixture
def start_service() -> Iterator[StartService]:
    """``start_service("rf_acquisition", env)`` -> its base URL, once /health answers."""
    started: list[ManagedProcess] = []

    def start(module: str, env: dict[str, str]) -> str:
        port = free_port()
        process = ManagedProcess(
            f"{module}-{port}",
            uvicorn_command(f"heimdall.services.{module}:app", port),
            env=env,
            log_dir=Path(STATE_DIR),
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(f"{base}/health") == 200, 60, f"{module} up")
        return base

    yield start
    for process in started:
        process.stop()


def start_worker_with_metrics(
    name: str, env: dict[str, str], metrics_dir: Path, *, concurrency: int = 2
) -> tuple[ManagedProcess, str]:
    """A worker serving its metrics on a free port; returns it and its /metrics URL."""
    port = free_port()
    process = start_worker(
        name,
        {"HEIMDALL_WORKER_METRICS_PORT": str(port), **env},
        metrics_dir,
        concurrency=concurrency,
    )
    return process, f"http://127.0.0.1:{port}/metrics"


def wait_until_consuming(process: ManagedProcess) -> None:
    """Until the worker's log says it consumes (its node is ready)."""
    try:
        wait_until(lambda: " ready." in process.log_path.read_text(errors="replace"), 60, "ready")
    except TimeoutError:
        process.stop()
        pytest.fail(f"{process.name} did not start:\n" + process.log_tail())


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape: (sample name, sorted labels) -> value."""
    text = httpx.get(url, timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    return scraped.get((name, tuple(sorted(labels.items()))))
