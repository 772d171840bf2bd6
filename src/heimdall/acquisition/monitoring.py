"""Acquisition and receiver state for Prometheus, read from the acquisitions table per scrape.

Nothing here is kept in memory between scrapes: a worker killed mid-recording
cannot leave a gauge inflated, and several workers on several hosts need no
shared counter. The database row is the record of state; these gauges only
read it (served by rf-acquisition, see ``heimdall.core.metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from heimdall.acquisition import repository
from heimdall.core import metrics
from heimdall.core.db import async_session_scope
from heimdall.models import AcquisitionState
from heimdall.stations.repository import channels_held, list_active

# An acquisition in PROGRESS this long past its requested duration is stuck: the
# receivers' own timeouts (connect, first frame, stall) and storing the recordings
# take far less.
OVERDUE_GRACE_S = 120.0
# How far back the receivers' recent history is read.
RECENT_FINISHED = 200

ACQUISITION_STATE_GAUGES = (
    metrics.ACTIVE_ACQUISITIONS,
    metrics.ACQUISITIONS_OVERDUE,
    metrics.RECEIVER_UP,
    metrics.RECEIVER_CONSECUTIVE_FAILURES,
    metrics.RECEIVER_BUSY_CHANNELS,
)


@dataclass(frozen=True, slots=True)
class FinishedAcquisition:
    succeeded: bool
    station_ids: Sequence[str]
    failed_station_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class ReceiverHealth:
    up: bool | None  # None: no finished acquisition says anything about it yet
    consecutive_failures: int


def receiver_health(
    station_ids: Iterable[str], finished: Iterable[FinishedAcquisition]
) -> dict[str, ReceiverHealth]:
    """Each receiver's latest outcome and its run of failures, from acquisitions newest first.

    A receiver failed in an acquisition that lists it among the errors, and
    delivered in a successful one that does not. A failed acquisition that does
    not name it (object storage down, say) tells nothing about the receiver.

    >>> recent = [
    ...     FinishedAcquisition(True, ["a", "b"], frozenset({"b"})),
    ...     FinishedAcquisition(False, ["a", "b"], frozenset({"b"})),
    ...     FinishedAcquisition(True, ["a", "b"], frozenset()),
    ...     FinishedAcquisition(True, ["a", "b"], frozenset({"b"})),
    ... ]
    >>> receiver_health(["a", "b", "c"], recent)["b"]
    ReceiverHealth(up=False, consecutive_failures=2)
    >>> receiver_health(["a", "b", "c"], recent)["a"], receiver_health(["c"], recent)["c"]
    (ReceiverHealth(up=True, consecutive_failures=0), ReceiverHealth(up=None, consecutive_failures=0))
    """
    outcomes: dict[str, list[bool]] = {station: [] for station in station_ids}
    for acquisition in finished:
        for station in acquisition.station_ids:
            if station not in outcomes:
                continue
            if station in acquisition.failed_station_ids:
                outcomes[station].append(False)
            elif acquisition.succeeded:
                outcomes[station].append(True)
    health = {}
    for station, delivered in outcomes.items():
        run = next((i for i, ok in enumerate(delivered) if ok), len(delivered))
        health[station] = ReceiverHealth(
            up=delivered[0] if delivered else None, consecutive_failures=run
        )
    return health


async def read_acquisition_state() -> metrics.GaugeSamples:
    """One scrape's values of ``ACQUISITION_STATE_GAUGES``."""
    async with async_session_scope() as session:
        stations = [s.id for s in await list_active(session)]
        running = await repository.in_progress_station_ids(session)
        held = await channels_held(session)
        overdue = await repository.count_overdue(session, grace_s=OVERDUE_GRACE_S)
        finished = [
            FinishedAcquisition(
                succeeded=status == AcquisitionState.SUCCESS.value,
                station_ids=ids,
                failed_station_ids=frozenset(e["station_id"] for e in errors),
            )
            for status, ids, errors in await repository.recent_finished(
                session, limit=RECENT_FINISHED
            )
        ]
    health = receiver_health(stations, finished)
    return {
        metrics.ACTIVE_ACQUISITIONS: [((), float(len(running)))],
        metrics.ACQUISITIONS_OVERDUE: [((), float(overdue))],
        metrics.RECEIVER_UP: [
            ((station,), float(h.up)) for station, h in health.items() if h.up is not None
        ],
        metrics.RECEIVER_CONSECUTIVE_FAILURES: [
            ((station,), float(h.consecutive_failures)) for station, h in health.items()
        ],
        # Unexpired channel leases: what the scheduler counts, waiting acquisitions excluded.
        metrics.RECEIVER_BUSY_CHANNELS: [
            ((station,), float(held.get(station, 0))) for station in stations
        ],
    }


def acquisition_state_gauges() -> metrics.ScrapeTimeGauges:
    return metrics.ScrapeTimeGauges(ACQUISITION_STATE_GAUGES, read_acquisition_state)
