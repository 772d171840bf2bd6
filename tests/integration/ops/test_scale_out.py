"""Scale-out: two worker processes on one broker, database and object store share a burst.

Each worker has its own metrics directory and port, as on separate hosts. Every
acquisition must run exactly once: one delivery, one recording, one set of
measurements and objects, and both workers must have taken part.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.core.settings import Settings
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

BURST = 8
FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}


def test_two_workers_share_a_burst_and_run_each_acquisition_once(
    clean_db: str,
    object_store: ObjectStore,
    simulator: RunningNetwork,
    no_faults: None,
    settings: Settings,
    start_service: StartService,
    tmp_path: Path,
) -> None:
    own = own_queues("scale-")
    api = start_service("rf_acquisition", own)
    workers = [
        start_worker_with_metrics(f"scale-worker-{n}", own, tmp_path / f"host-{n}") for n in (1, 2)
    ]
    try:
        for process, _ in workers:
            wait_until_consuming(process)
        task_ids = []
        for n in range(BURST):
            response = httpx.post(
                f"{api}/api/v1/acquisition/acquire",
                json={"frequency_mhz": 145.0 + 0.1 * n, "duration_seconds": 1},
                timeout=30,
            )
            assert response.status_code == 202, response.text
            task_ids.append(response.json()["task_id"])

        deadline = time.monotonic() + 120
        states: dict[str, str] = {}
        while len(states) < BURST:
            assert time.monotonic() < deadline, f"unfinished: {set(task_ids) - set(states)}"
            for task_id in set(task_ids) - set(states):
                state = httpx.get(f"{api}/api/v1/acquisition/status/{task_id}").json()["state"]
                if state in FINISHED:
                    states[task_id] = state
            time.sleep(0.2)
        assert set(states.values()) == {"SUCCESS"}, states

        # One set of measurements and objects per acquisition, one row per receiver.
        with sync_engine().connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT task_id::text, count(*), count(DISTINCT websdr_id) "
                    "FROM measurements GROUP BY task_id"
                )
            ).all()
        receivers = len(simulator.ports)
        assert sorted(rows) == sorted((t, receivers, receivers) for t in task_ids)
        for task_id in task_ids:
            keys = list(object_store.list_keys(settings.s3_bucket_raw, f"sessions/{task_id}/"))
            assert len(keys) == 2 * receivers, task_id

        # Each worker's own metrics: deliveries, recordings and successes.
        per_worker = [scrape(url) for _, url in workers]
        delivered = [
            sample(s, "worker_tasks_total", task="heimdall.acquisition.acquire_iq", state="SUCCESS")
            or 0
            for s in per_worker
        ]
        recorded = [sample(s, "acquisition_seconds_count") or 0 for s in per_worker]
        succeeded = [sample(s, "acquisitions_succeeded_total") or 0 for s in per_worker]
        assert all(n > 0 for n in succeeded), f"one worker did nothing: {succeeded}"
        assert sum(delivered) == sum(recorded) == sum(succeeded) == BURST, (
            delivered,
            recorded,
            succeeded,
        )
    finally:
        for process, _ in workers:
            process.stop()
