"""Operational tasks that every worker serves."""

from __future__ import annotations

import os
import socket

from heimdall.core.celery_app import celery_app


@celery_app.task(name="heimdall.ops.ping", acks_late=False)
def ping() -> dict[str, object]:
    """Answer with who served the task: proves a worker consumes from the broker."""
    return {"pong": True, "hostname": socket.gethostname(), "pid": os.getpid()}
