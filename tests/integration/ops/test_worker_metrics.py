"""A worker SIGKILLed mid-recording leaves no gauge inflated."""

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


def test_a_sigkilled_worker_leaves_no_gauge_inflated(
    clean_db: str,
    object_store: ObjectStore,
    simulator: RunningNetwork,
    no_faults: None,
    start_service: StartService,
    tmp_path: Path,
) -> None:
    # An acquisition worker records on threads of one process: that process is what a
    # crash takes down. Its replacement shares the metrics directory (as a restarted
    # container shares its volume) and must not count the dead process's task.
    own = own_queues("sigkill-")
    api = start_service("rf_acquisition", own)
    worker, worker_metrics = start_worker_with_metrics(
        "worker-sigkill", own, tmp_path / "metrics", concurrency=1
    )
    replacement = None
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
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=10)

        # The broker redelivers the task to the replacement, which takes over once the
        # dead worker's claim lapses.
        replacement, replacement_metrics = start_worker_with_metrics(
            "worker-after-sigkill", own, tmp_path / "metrics", concurrency=1
        )
        wait_until(
            lambda: httpx.get(status_url).json()["state"] in {"SUCCESS", "FAILED"},
            90,
            "acquisition finished after the kill",
        )
        assert httpx.get(status_url).json()["state"] == "SUCCESS"
        worker_side = scrape(replacement_metrics)
        assert sample(worker_side, "worker_tasks_running", task=ACQUIRE_IQ) == 0
        assert sample(worker_side, "acquisitions_succeeded_total") == 1
        assert sample(scrape(f"{api}/metrics"), "active_acquisitions") == 0
    finally:
        worker.stop()
        if replacement is not None:
            replacement.stop()
