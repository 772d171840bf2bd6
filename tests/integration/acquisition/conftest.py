"""The acquisition stack for end-to-end tests: simulator, worker (S3 through a proxy), API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore
from heimdall.simulator.network import RunningNetwork, network_in_thread
from heimdall.simulator.scenario import load_scenario
from tests.conftest import STATE_DIR
from tests.support.processes import ManagedProcess, wait_until
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture(scope="session")
def simulator(database: str, settings: Settings) -> Iterator[RunningNetwork]:
    """The seven simulated receivers on free ports; the registry points at them."""
    with network_in_thread(
        load_scenario(settings.scenario_file), ephemeral=True, control_port=0
    ) as network:
        with sync_engine().begin() as conn:
            for receiver_id, port in network.ports.items():
                conn.execute(
                    text("UPDATE websdr_stations SET url = :url WHERE id = :id"),
                    {"url": f"ws://127.0.0.1:{port}", "id": receiver_id},
                )
        yield network


@pytest.fixture(scope="session")
def s3_proxy(object_store: ObjectStore, settings: Settings) -> Iterator[TcpProxy]:
    """The worker reaches S3 through this proxy, so a test can cut object storage."""
    from heimdall.core.seaweed import endpoint_host_port

    proxy = TcpProxy(*endpoint_host_port(settings)).start()
    yield proxy
    proxy.close()


def start_worker(name: str, env: dict[str, str], metrics_dir: Path) -> ManagedProcess:
    from heimdall.cli.supervisor import worker_command

    metrics_dir.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name,
        worker_command(concurrency=2),
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **env},
        log_dir=Path(STATE_DIR),
    )


@pytest.fixture(scope="session")
def worker_metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-metrics")


@pytest.fixture(scope="session")
def acquisition_worker(
    simulator: RunningNetwork, s3_proxy: TcpProxy, worker_metrics_dir: Path
) -> Iterator[ManagedProcess]:
    from heimdall.cli.supervisor import worker_answers

    process = start_worker(
        "acquisition-worker",
        {"HEIMDALL_S3_ENDPOINT": f"http://127.0.0.1:{s3_proxy.port}"},
        worker_metrics_dir,
    )
    try:
        wait_until(lambda: worker_answers(timeout_s=2), 60, "worker answering")
    except TimeoutError:
        process.stop()
        pytest.fail("worker did not start:\n" + process.log_tail())
    yield process
    process.stop()


@pytest.fixture
def no_faults(simulator: RunningNetwork) -> Iterator[None]:
    simulator.state.faults.clear()
    yield
    simulator.state.faults.clear()


@asynccontextmanager
async def in_process_api() -> AsyncIterator[httpx.AsyncClient]:
    from heimdall.services.rf_acquisition import app

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://rf-acquisition"
        ) as client,
    ):
        yield client


@pytest.fixture
async def api(
    clean_db: str, acquisition_worker: ManagedProcess, no_faults: None
) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api() as client:
        yield client
