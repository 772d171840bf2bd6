"""Operational tasks that every worker serves."""

from __future__ import annotations

import os
import socket

from celery import Task
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from prometheus_client import multiprocess, start_http_server

from heimdall.core import metrics, worker
from heimdall.core.celery_app import celery_app
from heimdall.core.process import prepare_computing_process
from heimdall.core.settings import get_settings


@celery_app.task(name="heimdall.ops.ping", acks_late=False, soft_time_limit=10, time_limit=15)
def ping() -> dict[str, object]:
    """Answer with who served the task: proves a worker consumes from the broker."""
    return {"pong": True, "hostname": socket.gethostname(), "pid": os.getpid()}


@worker_init.connect
def serve_worker_metrics(**_: object) -> None:
    """Expose the worker's metrics for Prometheus, from the main process (before forking)."""
    settings = get_settings()
    if settings.worker_metrics_port and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        start_http_server(
            settings.worker_metrics_port, settings.bind_host, registry=metrics.registry()
        )


@worker_init.connect
@worker_process_init.connect
def prepare_for_tasks(**_: object) -> None:
    # The main process (solo/threads pools run tasks there) and every forked child.
    prepare_computing_process()


@worker_process_shutdown.connect
def forget_dead_child(pid: int | None = None, **_: object) -> None:
    # Live-summed gauges (worker_tasks_running) must not count a child that has gone.
    # A SIGKILLed child never gets here; metrics.registry() forgets it at the next scrape.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())


@worker_ready.connect
def start_acquisition_runtime(**_: object) -> None:
    # Its sweeper must run even before the first acquisition arrives.
    if worker.current_role == "acquisition":
        from heimdall.acquisition.runtime import get_runtime

        get_runtime()


@worker_shutdown.connect
def stop_acquisition_runtime(**_: object) -> None:
    if worker.current_role == "acquisition":
        from heimdall.acquisition.runtime import stop_runtime

        stop_runtime()


@task_prerun.connect
def count_task_started(task: Task | None = None, **_: object) -> None:
    if task is not None:
        metrics.worker_tasks_running.labels(task=task.name).inc()


@task_postrun.connect
def count_task_finished(task: Task | None = None, state: str | None = None, **_: object) -> None:
    if task is not None:
        metrics.worker_tasks_running.labels(task=task.name).dec()
        metrics.worker_tasks_total.labels(task=task.name, state=state or "UNKNOWN").inc()
