"""The one Celery application: RabbitMQ broker, Redis result backend.

Tasks acknowledge late and are rejected (so redelivered) when their worker
process dies: an acquisition interrupted by a crash runs again, and the tasks
are written to be idempotent for exactly that reason. Two kinds of worker
consume the queues (``heimdall.core.worker``): acquisition workers (one process
records many acquisitions) and compute workers (localization, training).
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from heimdall.core.settings import get_settings

ACQUISITION_QUEUE = "acquisition"
LOCALIZATION_QUEUE = "localization"
TRAINING_QUEUE = "training"

# Every module that defines tasks; the worker imports them all at start-up.
TASK_MODULES = [
    "heimdall.core.tasks",
    "heimdall.acquisition.tasks",
    "heimdall.localization.tasks",
    "heimdall.training.tasks",
]
OPS_QUEUE = "ops"
DEFAULT_SOFT_TIME_LIMIT_S = 1800
DEFAULT_TIME_LIMIT_S = 1900
ALL_QUEUES = (ACQUISITION_QUEUE, LOCALIZATION_QUEUE, TRAINING_QUEUE, OPS_QUEUE)


def queue_name(base: str) -> str:
    return f"{get_settings().queue_prefix}{base}"


def create_celery() -> Celery:
    settings = get_settings()
    app = Celery("heimdall")
    exchange = Exchange(queue_name("heimdall"), type="direct")
    queues = {
        base: Queue(queue_name(base), exchange, routing_key=queue_name(base)) for base in ALL_QUEUES
    }

    def route(base: str) -> dict[str, str]:
        return {"queue": queue_name(base), "routing_key": queue_name(base)}

    app.conf.update(
        broker_url=settings.broker_url.get_secret_value(),
        result_backend=settings.result_backend_url.get_secret_value(),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_pool="prefork",
        task_track_started=True,
        # Every task has a time limit; tasks with a known bound set their own.
        task_soft_time_limit=DEFAULT_SOFT_TIME_LIMIT_S,
        task_time_limit=DEFAULT_TIME_LIMIT_S,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        # Fail fast when the broker is down at publish time: the API answers 503.
        broker_connection_timeout=3,
        broker_transport_options={"max_retries": 1, "interval_start": 0, "interval_step": 0.5},
        task_default_queue=queue_name(ACQUISITION_QUEUE),
        task_queues=list(queues.values()),
        task_routes={
            "heimdall.acquisition.*": route(ACQUISITION_QUEUE),
            "heimdall.localization.*": route(LOCALIZATION_QUEUE),
            "heimdall.training.*": route(TRAINING_QUEUE),
            "heimdall.ops.*": route(OPS_QUEUE),
        },
        include=TASK_MODULES,
    )
    return app


celery_app = create_celery()


def queue_depths(bases: tuple[str, ...] = ALL_QUEUES) -> dict[str, int]:
    """Messages waiting in each of our queues, by base name, over one broker connection.

    Raises when the broker cannot say: a caller that shows the figure must not
    show a made-up zero.
    """
    depths = {}
    with celery_app.connection_for_read() as connection:
        channel = connection.default_channel
        for base in bases:
            try:
                declared = channel.queue_declare(queue_name(base), passive=True)
            except connection.channel_errors:
                # Not declared yet (no worker ever started): nothing waits in it. A
                # failed passive declare closes the channel, so take a fresh one.
                depths[base] = 0
                channel = connection.channel()
                continue
            depths[base] = int(declared.message_count)
    return depths
