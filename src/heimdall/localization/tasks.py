"""Localization task: chained after every successful acquisition."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from heimdall.core.celery_app import celery_app
from heimdall.core.db import session_scope
from heimdall.core.settings import get_settings
from heimdall.core.storage import ObjectStore
from heimdall.localization import service

logger = logging.getLogger(__name__)


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
