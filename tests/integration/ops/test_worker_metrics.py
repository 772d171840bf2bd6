"""A worker pool process SIGKILLed mid-recording leaves no gauge inflated."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from heimdall.core.storage import ObjectStore
from heimdall.simulator.network import RunningNetwork
from tests.integration.ops.conftest import (
    StartService,
    own_queues,
    sample,
    scrape,
    start_worker_with_metrics,
    wait_until_consuming,
)
from tests.support.processes import wait_until

ACQUIRE_IQ = "heimdall.acquisition.acquire_iq"


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the prefork pool of a Celery worker)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # The fields after the command name (which may hold spaces) start with state, ppid.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def test_a_sigkilled_pool_process_leaves_no_gauge_inflated(
    clean_db: str,
    object_store: ObjectStore,
    simulator: RunningNetwork,
    no_faults: None,
    start_service: StartService,
    tmp_path: Path,
) -> None:
    own = own_queues("sigkill-")
    api = start_service("rf_acquisition", own)
    worker, worker_metrics = start_worker_with_metrics(
        "worker-sigkill", own, tmp_path / "metrics", concurrency=1
    )
    try:
        wait_until_consuming(worker)
        response = httpx.post(
            f"{api}/api/v1/acquisition/acquire",
            json={"frequency_mhz": 145.5, "duration_seconds": 4},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        status_url = f"{api}/api/v1/acquisition/status/{response.json()['task_id']}"
        wait_until(lambda: httpx.get(status_url).json()["state"] == "PROGRESS", 60, "recording")
        time.sleep(1.0)  # mid-recording
        assert sample(scrape(worker_metrics), "worker_tasks_running", task=ACQUIRE_IQ) == 1
        assert sample(scrape(f"{api}/metrics"), "active_acquisitions") == 1
        (child,) = children_of(worker.process.pid)
        os.kill(child, signal.SIGKILL)

        # The broker redelivers the task to the pool's replacement process.
        wait_until(
            lambda: httpx.get(status_url).json()["state"] in {"SUCCESS", "FAILED"},
            90,
            "acquisition finished after the kill",
        )
        assert httpx.get(status_url).json()["state"] == "SUCCESS"
        assert children_of(worker.process.pid) != [child]
        worker_side = scrape(worker_metrics)
        assert sample(worker_side, "worker_tasks_running", task=ACQUIRE_IQ) == 0
        assert sample(worker_side, "acquisitions_succeeded_total") == 1
        assert sample(scrape(f"{api}/metrics"), "active_acquisitions") == 0
    finally:
        worker.stop()
