"""Queries on acquisitions, measurements and channel leases. They flush at most; callers commit.

The API side reads and cancels (``requests``); the worker side (all async, on the
acquisition runtime's event loop) claims (``claims``), schedules channels
(``channels``), records progress and finishes (``completion``); the sweeper and the
outbox relay have theirs. Claims and leases carry expiry times compared with
PostgreSQL's own clock. Callers use ``repository.<name>``: one namespace, several files.
"""

from heimdall.acquisition.repository.channels import (
    claimed_waiters,
    free_channels,
    full_stations,
    lock_channel_bookkeeping,
    release_lease_set,
    release_leases,
    start_granted,
    waiters_and_free_channels,
)
from heimdall.acquisition.repository.claims import (
    Claimed,
    State,
    claim,
    claim_state,
    release_claim,
    renew,
    restart_from_pending,
    start_import,
    states,
)
from heimdall.acquisition.repository.common import (
    ACTIVE_STATES,
    CHANNEL_LOCK_KEY,
    LIVE,
    PENDING,
    PROGRESS,
    SWEEPER_LOCK_KEY,
)
from heimdall.acquisition.repository.completion import (
    commit_success,
    mark_cleaned,
    mark_failed,
    record_receiver_finished,
)
from heimdall.acquisition.repository.outbox import (
    publish_failed,
    published,
    unpublished,
)
from heimdall.acquisition.repository.requests import (
    by_idempotency_key,
    cancel_if_active,
    count_overdue,
    get,
    in_progress_station_ids,
    insert_new,
    measurement_of,
    measurements_of,
    queue_position,
    recent_finished,
    recent_sessions,
    remove,
)
from heimdall.acquisition.repository.sweeper import (
    cleanup_candidates,
    drop_lapsed_leases,
    fail_past_deadline,
    orphans,
    try_lock_sweeper,
)

__all__ = [
    "ACTIVE_STATES",
    "CHANNEL_LOCK_KEY",
    "Claimed",
    "LIVE",
    "PENDING",
    "PROGRESS",
    "SWEEPER_LOCK_KEY",
    "State",
    "by_idempotency_key",
    "cancel_if_active",
    "claim",
    "claim_state",
    "claimed_waiters",
    "cleanup_candidates",
    "commit_success",
    "count_overdue",
    "drop_lapsed_leases",
    "fail_past_deadline",
    "free_channels",
    "full_stations",
    "get",
    "in_progress_station_ids",
    "insert_new",
    "lock_channel_bookkeeping",
    "mark_cleaned",
    "mark_failed",
    "measurement_of",
    "measurements_of",
    "orphans",
    "publish_failed",
    "published",
    "queue_position",
    "recent_finished",
    "recent_sessions",
    "record_receiver_finished",
    "release_claim",
    "release_lease_set",
    "release_leases",
    "remove",
    "renew",
    "restart_from_pending",
    "start_granted",
    "start_import",
    "states",
    "try_lock_sweeper",
    "unpublished",
    "waiters_and_free_channels",
]
