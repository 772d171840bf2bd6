"""Prometheus metrics shared by the services and the worker.

The worker runs a prefork pool, so it uses the client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``); every process that sets that variable reports
through one collector over the shared directory.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


# --- acquisition metrics (names are part of the operations contract) -----------

acquisitions_total = Counter("acquisitions", "Acquisitions requested")
acquisitions_succeeded_total = Counter("acquisitions_succeeded", "Acquisitions that succeeded")
acquisitions_failed_total = Counter("acquisitions_failed", "Acquisitions that failed")
websdr_failures_total = Counter(
    "websdr_failures", "Receivers that failed during an acquisition", ["websdr_id"]
)
acquisition_seconds = Histogram(
    "acquisition_seconds",
    "Wall time of one acquisition task",
    buckets=(1, 2, 5, 10, 20, 30),
)
iq_download_seconds = Histogram(
    "iq_download_seconds",
    "Wall time to record IQ from one receiver, beyond the requested duration",
    buckets=(0.1, 0.5, 1, 2, 5),
)
active_acquisitions = Gauge(
    "active_acquisitions", "Acquisitions being recorded now", multiprocess_mode="livesum"
)
celery_queue_depth = Gauge(
    "celery_queue_depth",
    "Messages waiting in the acquisition queue",
    multiprocess_mode="mostrecent",
)

# --- acquisition scheduling (issue 13; the lead merges this block) ---------------
acquisition_wait_seconds = Histogram(
    "acquisition_wait_seconds",
    "Time an acquisition waited for a free channel on every receiver",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
