"""Localization task: chained after every successful acquisition."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery.signals import worker_process_init

from heimdall.core import worker
from heimdall.core.celery_app import celery_app
from heimdall.core.db import session_scope
from heimdall.core.settings import get_settings
from heimdall.core.storage import ObjectStore
from heimdall.localization import service
from heimdall.localization.lag_process import lag_process

logger = logging.getLogger(__name__)


@worker_process_init.connect
def start_lag_process(**_: object) -> None:
    # A compute worker's child starts its lag process now (it imports for about a
    # second), not during its first localization.
    if worker.current_role == "compute":
        lag_process()


# A localization takes well under a second; the limits catch a pathological input.
@celery_app.task(
    name="heimdall.localization.localize", ignore_result=True, soft_time_limit=120, time_limit=150
)
def localize_acquisition(task_id: str, method: str = "auto") -> dict[str, Any]:
    settings = get_settings()
    try:
        with session_scope() as session:
            result = service.compute(
                session, ObjectStore(settings), settings, uuid.UUID(task_id), method=method
            )
            return {"task_id": task_id, "status": result.status, "method": result.method}
    except service.NotLocalizable as exc:
        logger.warning("not localizing %s: %s", task_id, exc)
        return {"task_id": task_id, "status": "not_localizable", "message": str(exc)}
