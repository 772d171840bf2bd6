"""Fixtures on the real backing services: PostgreSQL, RabbitMQ, Redis, S3, a worker.

PostgreSQL, RabbitMQ and Redis are the machine's own services. S3 is the
configured endpoint when it answers, otherwise SeaweedFS started here. The
worker is a real ``celery worker`` process consuming this run's queues.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from heimdall.core.db import async_engine, sync_engine
from heimdall.core.migrate import ensure_database, migrate_and_seed
from heimdall.core.seaweed import endpoint_host_port, port_open, start_seaweed
from heimdall.core.settings import Settings, get_settings
from heimdall.core.storage import ObjectStore
from heimdall.simulator.network import RunningNetwork, network_in_thread
from heimdall.simulator.scenario import load_scenario
from tests.conftest import STATE_DIR, TEST_DATABASE
from tests.support.asgi import service_client
from tests.support.processes import ManagedProcess, wait_until
from tests.support.tcp_proxy import TcpProxy, free_port

# Tables emptied between tests; the station registry is kept (it is seeded once).
MUTABLE_TABLES = (
    "channel_leases",
    "task_outbox",
    "measurements",
    "localizations",
    "acquisitions",
    "model_activations",
    "models",
    "training_sessions",
    "known_sources",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[str]:
    """A fresh database for this run, migrated to head and seeded."""
    url = settings.sync_database_url
    ensure_database(url)
    migrate_and_seed(settings)
    yield url
    sync_engine.cache_clear()
    async_engine.cache_clear()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(TEST_DATABASE)
            )
        )


@pytest.fixture(scope="session", autouse=True)
def remove_this_runs_queues() -> Iterator[None]:
    """Leave no queue of this run behind in the shared broker."""
    yield
    from heimdall.core.celery_app import ALL_QUEUES, celery_app

    run = get_settings().queue_prefix
    own = ("kill", "cli", "scale", "sigkill", "pgbudget", "broker", "crashcancel", "sweeper")
    prefixes = [run, *(f"{run}{suffix}-" for suffix in own)]
    names = [f"{p}{q}" for p in prefixes for q in (*ALL_QUEUES, "heimdall")]
    with celery_app.connection_for_write() as connection:
        channel = connection.channel()
        for name in names:
            # Deleting what does not exist is harmless in AMQP 0-9-1 for these calls.
            channel.queue_delete(name)
            channel.exchange_delete(name)


@pytest.fixture
def clean_db(database: str) -> Iterator[str]:
    """Isolation between tests: every mutable table starts empty.

    A worker may still be finishing the previous test's work (a localization reads
    acquisitions then measurements, the TRUNCATE locks them the other way round):
    PostgreSQL ends one side of such a deadlock, and the TRUNCATE is tried again.
    """
    for attempt in range(5):
        try:
            with sync_engine().begin() as conn:
                conn.execute(text(f"TRUNCATE {', '.join(MUTABLE_TABLES)} CASCADE"))
            break
        except OperationalError as exc:
            if not isinstance(exc.orig, psycopg.errors.DeadlockDetected) or attempt == 4:
                raise
            time.sleep(0.2)
    yield database


@pytest.fixture(scope="session")
def object_store(settings: Settings) -> Iterator[ObjectStore]:
    """A real S3 server with this run's buckets; SeaweedFS is started if none answers."""
    host, port = endpoint_host_port(settings)
    seaweed = None
    if not port_open(host, port):
        seaweed = start_seaweed(settings, Path(STATE_DIR))
    store = ObjectStore(settings)

    def buckets_ready() -> bool:
        try:
            store.ensure_buckets()
        except Exception:
            return False
        return True

    wait_until(buckets_ready, 60, "S3 buckets created")
    yield store
    for bucket in (settings.s3_bucket_raw, settings.s3_bucket_models):
        try:
            store.delete_prefix(bucket, "")
            store.client.remove_bucket(bucket)
        except Exception as exc:  # leave the server running; report, don't hide
            print(f"could not remove test bucket {bucket}: {exc}")
    if seaweed is not None:
        seaweed.terminate()
        try:
            seaweed.wait(timeout=15)
        except subprocess.TimeoutExpired:
            seaweed.kill()


@pytest.fixture(scope="session")
def worker(
    database: str, object_store: ObjectStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    """A real Celery worker (the compute kind: prefork) consuming this run's queues."""
    process = start_worker("worker", {}, tmp_path_factory.mktemp("prometheus"), role="compute")
    wait_for_worker(process, "compute")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


# --- the acquisition stack: simulator, worker (S3 through a proxy), in-process API ---


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


def start_worker(
    name: str,
    env: dict[str, str],
    metrics_dir: Path,
    role: str = "acquisition",
    *,
    concurrency: int | None = None,
) -> ManagedProcess:
    from heimdall.cli.supervisor import worker_command

    metrics_dir.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name,
        worker_command(role),
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **({f"HEIMDALL_{role.upper()}_CONCURRENCY": str(concurrency)} if concurrency else {}),
            **env,
        },
        log_dir=Path(STATE_DIR),
    )


def wait_for_worker(process: ManagedProcess, role: str = "acquisition") -> None:
    """Until the worker serves a ping task; a worker that never does fails the test run."""
    from heimdall.cli.supervisor import worker_answers

    prefix = process.env.get("HEIMDALL_QUEUE_PREFIX")
    try:
        wait_until(
            lambda: worker_answers(role, timeout_s=2, queue_prefix=prefix),
            60,
            f"{role} worker answering",
        )
    except TimeoutError:
        process.stop()
        pytest.fail(f"{process.name} did not start:\n" + process.log_tail())


@contextlib.contextmanager
def worker_pair(
    name: str, env: dict[str, str], metrics_dir: Path
) -> Iterator[tuple[ManagedProcess, ManagedProcess]]:
    """An acquisition worker and a compute worker sharing ``env`` (and queue names)."""
    acquisition = start_worker(f"{name}-acquisition", env, metrics_dir)
    compute = start_worker(
        f"{name}-compute",
        {**env, "HEIMDALL_WORKER_METRICS_PORT": "0"},
        metrics_dir,
        role="compute",
    )
    try:
        wait_for_worker(acquisition)
        wait_for_worker(compute, "compute")
        yield acquisition, compute
    finally:
        acquisition.stop()
        compute.stop()


@pytest.fixture(scope="session")
def worker_metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-metrics")


@pytest.fixture(scope="session")
def worker_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def acquisition_worker(
    simulator: RunningNetwork,
    s3_proxy: TcpProxy,
    worker_metrics_dir: Path,
    worker_metrics_port: int,
) -> Iterator[ManagedProcess]:
    with worker_pair(
        "worker",
        {
            "HEIMDALL_S3_ENDPOINT": f"http://127.0.0.1:{s3_proxy.port}",
            "HEIMDALL_WORKER_METRICS_PORT": str(worker_metrics_port),
        },
        worker_metrics_dir,
    ) as (acquisition, _):
        yield acquisition


@pytest.fixture
def no_faults(simulator: RunningNetwork) -> Iterator[None]:
    simulator.state.faults.clear()
    yield
    simulator.state.faults.clear()


@pytest.fixture
async def api(
    clean_db: str, acquisition_worker: ManagedProcess, no_faults: None
) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client("rf_acquisition") as client:
        yield client
