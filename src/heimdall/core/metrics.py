"""Prometheus metrics of every Heimdall process; names and labels are the operations contract.

Three kinds, by where the truth lives:

* **Events** (counters, histograms) are counted by the process that sees them:
  the API counts requests, the worker counts acquisitions and localizations.
* **State** (what is in progress now, how each receiver is doing, queue depths) is
  read when Prometheus scrapes, from the database and the broker: a gauge that a
  process increments and decrements stays wrong forever when that process is
  SIGKILLed between the two. ``ScrapeTimeGauges`` serve those (rf-acquisition).
* **Worker process state** (tasks running in each pool process) is a live-summed
  gauge over the prefork children; ``registry()`` forgets the children that died
  without a word, so their last value does not stay summed in.

The worker runs a prefork pool, so it uses the client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``); every process that sets that variable reports
through one collector over the shared directory. Services are one process each.
Labelled counters are created at zero for their known label values, so that the
first event after a process starts is counted by ``rate()`` and ``increase()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# The *_created series double every counter and no dashboard or rule reads them.
disable_created_metrics()

# A scrape waits this long for the database or the broker, within Prometheus' 10 s timeout.
SCRAPE_READ_TIMEOUT_S = 5.0
LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is someone else's
        return True
    return True


def forget_dead_processes(path: str | Path) -> list[int]:
    """Drop the live-gauge files of processes that no longer exist; return their pids.

    A prefork child killed by SIGKILL (or the OOM killer) never runs its shutdown
    hook, so its ``livesum`` contribution would stay in the sum until the directory
    is wiped. Checked at every scrape, the sum only ever holds processes alive now.
    """
    dead = set()
    for entry in Path(path).iterdir():
        match = LIVE_GAUGE_FILE.match(entry.name)
        if match and not _process_exists(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(path))
    return sorted(dead)


class LiveProcessesCollector:
    """The multiprocess collector, after forgetting the processes that died unannounced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._files = multiprocess.MultiProcessCollector(None, path=path)

    def collect(self) -> Iterable[object]:
        forget_dead_processes(self.path)
        return self._files.collect()


def registry() -> CollectorRegistry:
    """The process's metrics: the multiprocess directory's when one is set, else the default."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        collected = CollectorRegistry()
        collected.register(LiveProcessesCollector(path))  # type: ignore[arg-type]
        return collected
    return REGISTRY


# --- scrape-time gauges: state read from its record when Prometheus asks ----------


@dataclass(frozen=True, slots=True)
class DerivedGauge:
    """A gauge whose value is computed at scrape time rather than kept in memory."""

    name: str
    documentation: str
    labelnames: tuple[str, ...] = ()


# Samples of one scrape: gauge -> [(label values in labelnames order, value)].
GaugeSamples = Mapping[DerivedGauge, Iterable[tuple[tuple[str, ...], float]]]


class ScrapeTimeGauges:
    """A collector of ``DerivedGauge``s that an async reader fills before each scrape.

    ``refresh()`` replaces every value at once, so nothing survives from an earlier
    scrape. When the reader fails (database down), the gauges have no samples: an
    absent series is honest, a stale one is not. The failure is logged.
    """

    def __init__(self, gauges: Iterable[DerivedGauge], read: Callable[[], Awaitable[GaugeSamples]]):
        self.gauges = tuple(gauges)
        self._read = read
        self._samples: GaugeSamples = {}

    async def refresh(self) -> None:
        try:
            self._samples = await asyncio.wait_for(self._read(), SCRAPE_READ_TIMEOUT_S)
        except Exception as exc:  # a metric must never break the scrape
            logger.warning("scrape-time gauges %s unavailable: %s", self._names(), exc)
            self._samples = {}

    def _names(self) -> str:
        return ", ".join(g.name for g in self.gauges)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for gauge in self.gauges:
            yield GaugeMetricFamily(gauge.name, gauge.documentation, labels=gauge.labelnames)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for gauge in self.gauges:
            family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=gauge.labelnames)
            for labels, value in self._samples.get(gauge, ()):
                family.add_metric(list(labels), value)
            yield family


def service_registry(extra: Iterable[Collector]) -> CollectorRegistry:
    """What one service's ``/metrics`` serves: the process's metrics and its own collectors."""
    combined = CollectorRegistry()
    combined.register(registry())
    for collector in extra:
        combined.register(collector)
    return combined


# --- acquisitions (worker; acquisitions_total is counted by rf-acquisition) -------

acquisitions_total = Counter("acquisitions", "Acquisitions requested")
acquisitions_succeeded_total = Counter("acquisitions_succeeded", "Acquisitions that succeeded")
acquisitions_failed_total = Counter("acquisitions_failed", "Acquisitions that failed")
websdr_failures_total = Counter(
    "websdr_failures", "Receivers that failed during an acquisition", ["websdr_id"]
)
acquisition_seconds = Histogram(
    "acquisition_seconds",
    "Wall time of one acquisition task (recordings last up to 300 s)",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 180, 240, 300, 330, 400, 600),
)
iq_download_seconds = Histogram(
    "iq_download_seconds",
    "Wall time to record IQ from one receiver, beyond the requested duration",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30),
)

# --- acquisition and receiver state (rf-acquisition reads them at scrape time) -----

ACTIVE_ACQUISITIONS = DerivedGauge(
    "active_acquisitions", "Acquisitions being recorded now (state PROGRESS in the database)"
)
ACQUISITIONS_OVERDUE = DerivedGauge(
    "acquisitions_overdue",
    "Acquisitions still in PROGRESS well past their requested duration (stuck)",
)
RECEIVER_UP = DerivedGauge(
    "receiver_up",
    "1 when the receiver delivered in the last finished acquisition that selected it, else 0",
    ("websdr_id",),
)
RECEIVER_CONSECUTIVE_FAILURES = DerivedGauge(
    "receiver_consecutive_failures",
    "Finished acquisitions in a row, most recent first, in which the receiver failed",
    ("websdr_id",),
)
RECEIVER_BUSY_CHANNELS = DerivedGauge(
    "receiver_busy_channels",
    "Channels of the receiver that Heimdall's acquisitions in PROGRESS hold now",
    ("websdr_id",),
)
CELERY_QUEUE_DEPTH = DerivedGauge(
    "celery_queue_depth", "Messages waiting in a Celery queue (from RabbitMQ)", ("queue",)
)

# --- localization (inference service and worker) ------------------------------------

LOCALIZATION_METHODS = ("auto", "rss", "tdoa", "fused")
LOCALIZATION_OUTCOMES = ("ok", "insufficient_receivers", "error")
localizations_total = Counter(
    "localizations",
    "Localizations computed, by the method used (the one asked for when none could be) and outcome",
    ["method", "outcome"],
)
localization_seconds = Histogram(
    "localization_seconds",
    "Wall time of one localization (loading recordings, TDOA lags, estimation)",
    ["method"],
    buckets=(0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 30),
)
for _method in LOCALIZATION_METHODS:
    localization_seconds.labels(method=_method)
    for _outcome in LOCALIZATION_OUTCOMES:
        localizations_total.labels(method=_method, outcome=_outcome)


def observe_localization(method: str, outcome: str, seconds: float) -> None:
    localizations_total.labels(method=method, outcome=outcome).inc()
    localization_seconds.labels(method=method).observe(seconds)


# --- training jobs (worker) -----------------------------------------------------------

TRAINING_JOB_STATES = ("started", "succeeded", "failed", "cancelled")
training_jobs_total = Counter(
    "training_jobs",
    "Calibration training jobs: started, then succeeded, failed or cancelled",
    ["state"],
)
for _state in TRAINING_JOB_STATES:
    training_jobs_total.labels(state=_state)

# --- worker processes ----------------------------------------------------------------

worker_tasks_running = Gauge(
    "worker_tasks_running",
    "Celery tasks executing now in this worker's pool processes",
    ["task"],
    multiprocess_mode="livesum",
)
worker_tasks_total = Counter(
    "worker_tasks",
    "Celery tasks finished by this worker, by task and final state",
    ["task", "state"],
)

# --- HTTP (every service, by route template: never the raw path) ---------------------

http_requests_total = Counter(
    "http_requests", "HTTP requests answered", ["route", "method", "status"]
)
http_request_seconds = Histogram(
    "http_request_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# --- acquisition scheduling (issue 13; the lead merges this block) ---------------
acquisition_wait_seconds = Histogram(
    "acquisition_wait_seconds",
    "Time an acquisition waited for a free channel on every receiver",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
