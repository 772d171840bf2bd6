"""The two kinds of Celery worker process and how they are started.

* ``acquisition``: the threads pool, many acquisitions per process. Recording is
  asyncio I/O; every task of the process runs on one shared event loop
  (``heimdall.acquisition.runtime``), so a waiting or recording acquisition costs
  a parked thread and a few sockets, not a process.
* ``compute``: the prefork pool for localization and training, CPU-bound work that
  must never queue behind a long recording.

Both also consume the ``ops`` queue. Scale-out is more processes of either kind,
on this host or others, on the same broker, database and object storage.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from heimdall.core.celery_app import (
    ACQUISITION_QUEUE,
    LOCALIZATION_QUEUE,
    OPS_QUEUE,
    TRAINING_QUEUE,
    celery_app,
    queue_name,
)
from heimdall.core.settings import Settings, get_settings


@dataclass(frozen=True, slots=True)
class WorkerRole:
    name: str
    queues: tuple[str, ...]
    pool: str
    concurrency: Callable[[Settings], int]
    #: The queue a readiness ping goes to: only this kind of worker answers it.
    ping_queue: str


ROLES = {
    "acquisition": WorkerRole(
        "acquisition",
        (ACQUISITION_QUEUE, OPS_QUEUE),
        "threads",
        lambda s: s.acquisition_concurrency,
        ACQUISITION_QUEUE,
    ),
    "compute": WorkerRole(
        "compute",
        (LOCALIZATION_QUEUE, TRAINING_QUEUE, OPS_QUEUE),
        "prefork",
        lambda s: s.compute_concurrency,
        LOCALIZATION_QUEUE,
    ),
}

#: The role of this process, once ``run_worker`` has started it.
current_role: str | None = None


def worker_argv(role: WorkerRole, settings: Settings) -> list[str]:
    return [
        "worker",
        f"--pool={role.pool}",
        f"--concurrency={role.concurrency(settings)}",
        f"--queues={','.join(queue_name(q) for q in role.queues)}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        # A unique node name unless one is configured (a container's, with %h): two
        # workers named alike on one broker fight over their remote-control queue.
        f"--hostname={settings.worker_node_name or f'heimdall-{role.name}-{uuid.uuid4().hex[:8]}@%h'}",
    ]


def run_worker(role_name: str) -> None:
    """Run a worker of this role in this process until it is told to stop."""
    global current_role
    role = ROLES[role_name]
    current_role = role.name
    celery_app.worker_main(worker_argv(role, get_settings()))
