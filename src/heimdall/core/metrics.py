"""Prometheus metrics shared by the services and the worker.

The worker runs a prefork pool, so it uses the client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``); every process that sets that variable reports
through one collector over the shared directory.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY
