"""The sweeper: nothing stays stranded, whatever crashed or went down.

Every acquisition worker process runs it every ``sweep_interval_s``; a PostgreSQL
advisory lock lets one process sweep at a time. One sweep:

1. fails every PENDING or PROGRESS acquisition past its deadline (reason stated), and
   drops the channel leases nobody renews any more;
2. publishes again the acquisitions no live task holds (their worker died and its
   claim lapsed, or their message never reached a worker);
3. removes the objects of cancelled or failed acquisitions that nobody removed
   (a worker crashed, or object storage was down when it tried);
4. publishes the outbox messages that could not be published after their commit
   (the broker was down), such as the localization chained to a success.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition import ACQUIRE_TASK, repository
from heimdall.core import metrics
from heimdall.core.celery_app import celery_app
from heimdall.core.retry import database_unavailable

if TYPE_CHECKING:
    from heimdall.acquisition.runtime import AcquisitionRuntime

logger = logging.getLogger(__name__)

DEADLINE_MESSAGES = {
    repository.PENDING: (
        "deadline passed while waiting for a free channel on every receiver "
        "(or for a worker to take the acquisition)"
    ),
    repository.PROGRESS: (
        "deadline passed while recording: the worker stopped renewing its claim "
        "(crashed or cut off) and no other attempt finished it"
    ),
}
# Outbox messages younger than this are still being published by their own worker.
OUTBOX_GRACE_S = 2.0


def publish(task_name: str, args: list[Any]) -> None:
    """Publish one task now, or raise (broker down): no hidden retries."""
    celery_app.send_task(task_name, args=args, retry=False, ignore_result=True)


class Sweeper:
    def __init__(self, runtime: AcquisitionRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await self.sweep_once()
            except Exception as exc:
                if not database_unavailable(exc):
                    logger.exception("sweep failed")

    async def sweep_once(self) -> None:
        ttl_s = self.settings.claim_ttl_s

        async def decide(
            session: AsyncSession,
        ) -> tuple[list[tuple[uuid.UUID, str]], list[uuid.UUID]]:
            if not await repository.try_lock_sweeper(session):
                return [], []
            failed = await repository.fail_past_deadline(session, DEADLINE_MESSAGES)
            await repository.drop_lapsed_leases(session)
            lost = await repository.orphans(
                session, grace_s=ttl_s / 2, unclaimed_after_s=10 * ttl_s, hold_off_s=ttl_s
            )
            return failed, lost

        failed, lost = await self.runtime.db(decide)
        for task_id, state in failed:
            metrics.acquisitions_failed_total.inc()
            logger.warning("acquisition %s failed by the sweeper (was %s)", task_id, state)
        for task_id in lost:
            logger.warning("acquisition %s has no live task; publishing it again", task_id)
            try:
                await asyncio.to_thread(publish, ACQUIRE_TASK, [str(task_id)])
            except Exception as exc:
                logger.warning("could not publish %s again (retried later): %s", task_id, exc)
        for task_id in await self.runtime.db(repository.cleanup_candidates):
            await self.runtime.remove_objects(task_id)
        await relay_outbox(self.runtime, OUTBOX_GRACE_S)


async def relay_outbox(runtime: AcquisitionRuntime, older_than_s: float) -> int:
    """Publish what the outbox holds; stops at the first refusal (the broker is down)."""
    sent = 0
    async with runtime.sessions() as session, session.begin():
        for message in await repository.unpublished(session, older_than_s):
            try:
                await asyncio.to_thread(publish, message.task_name, list(message.args))
            except Exception as exc:
                await repository.publish_failed(session, message.id, f"{type(exc).__name__}: {exc}")
                break
            await repository.published(session, message.id)
            sent += 1
    return sent


async def publish_now(
    runtime: AcquisitionRuntime, message_id: uuid.UUID, task_name: str, args: list[object]
) -> bool:
    """Publish a just-committed outbox message; on failure the sweeper publishes it later."""
    try:
        await asyncio.to_thread(publish, task_name, args)
    except Exception as exc:
        logger.warning("could not publish %s now (the sweeper will): %s", task_name, exc)
        return False
    try:
        await runtime.db(lambda s: repository.published(s, message_id))
    except Exception as exc:  # published but not crossed out: at worst published twice
        logger.warning("outbox message %s not removed: %s", message_id, exc)
    return True
