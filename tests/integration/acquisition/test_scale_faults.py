"""Acquisition at scale and under faults (issue 13), on the real stack.

After each fault every acquisition ends SUCCESS, FAILED or CANCELLED by its deadline,
and PostgreSQL and S3 agree (``assert_consistent``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.core.settings import Settings, get_settings
from heimdall.core.storage import ObjectStore
from heimdall.simulator.faults import Fault, FaultKind
from heimdall.simulator.network import RunningNetwork
from tests.integration.acquisition.conftest import (
    assert_consistent,
    postgresql_stopped,
    status_of,
    wait_state,
)
from tests.integration.conftest import start_worker, wait_for_worker, worker_pair
from tests.support.processes import ManagedProcess, wait_until
from tests.support.tcp_proxy import TcpProxy

FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}
ApiFactory = Callable[[dict[str, str]], str]


def acquire(base: str, headers: dict[str, str] | None = None, **body: Any) -> str:
    response = httpx.post(
        f"{base}/api/v1/acquisition/acquire", json=body, headers=headers, timeout=30
    )
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def own_prefix(suffix: str) -> dict[str, str]:
    """Queue names of their own: killing or cutting these workers disturbs no other test."""
    return {"HEIMDALL_QUEUE_PREFIX": f"{get_settings().queue_prefix}{suffix}-"}


def scalar(query: str, **params: Any) -> Any:
    with sync_engine().connect() as conn:
        return conn.execute(text(query), params).scalar_one()


def keys_of(store: ObjectStore, settings: Settings, task_id: str) -> list[str]:
    return list(store.list_keys(settings.s3_bucket_raw, f"sessions/{task_id}/"))


# --- scheduling ----------------------------------------------------------------------


def test_channels_are_scheduled_first_come_with_queue_positions_and_a_deadline(
    acquisition_worker: ManagedProcess,
    api_process_factory: ApiFactory,
    object_store: ObjectStore,
    settings: Settings,
    no_faults: None,
) -> None:
    base = api_process_factory({})
    # giaveno has 4 channels: four run together, the fifth waits its turn, the
    # sixth cannot wait long enough, and one on other receivers runs at once.
    first = [acquire(base, frequency_mhz=145.5, duration_seconds=2, stations=["giaveno"])]
    first += [
        acquire(base, frequency_mhz=145.5, duration_seconds=2, stations=["giaveno"])
        for _ in range(3)
    ]
    fifth = acquire(base, frequency_mhz=145.5, duration_seconds=2, stations=["giaveno"])
    hurried = acquire(
        base, frequency_mhz=145.5, duration_seconds=2, stations=["giaveno"], max_wait_seconds=1
    )
    elsewhere = acquire(base, frequency_mhz=145.5, duration_seconds=2, stations=["torino"])
    waiting = status_of(base, fifth)
    assert waiting["state"] == "PENDING", waiting
    assert isinstance(waiting["queue_position"], int) and waiting["queue_position"] >= 1
    assert waiting["deadline_at"] is not None

    states = {t: wait_state(base, t, FINISHED, 30) for t in [*first, fifth, hurried, elsewhere]}
    assert [states[t]["state"] for t in first] == ["SUCCESS"] * 4, states
    assert states[fifth]["state"] == "SUCCESS", states[fifth]
    assert states[elsewhere]["state"] == "SUCCESS", states[elsewhere]
    assert states[hurried]["state"] == "FAILED", states[hurried]
    assert "no free channel" in str(states[hurried]["error_message"])
    assert "giaveno" in str(states[hurried]["error_message"])

    def started(task_id: str) -> datetime:
        return datetime.fromisoformat(str(states[task_id]["started_at"]))

    # The four recorded side by side, the fifth only once one of them had recorded its
    # 2 s (a channel is given back when the recording ends, before the storing), and
    # the one on torino did not wait for giaveno's queue.
    assert (max(map(started, first)) - min(map(started, first))).total_seconds() < 1.5
    assert (started(fifth) - min(map(started, first))).total_seconds() >= 1.9
    assert (started(elsewhere) - min(map(started, first))).total_seconds() < 1.5
    assert_consistent(object_store, settings)


def test_a_busy_receiver_is_tried_again_within_its_window(
    acquisition_worker: ManagedProcess,
    api_process_factory: ApiFactory,
    simulator: RunningNetwork,
    object_store: ObjectStore,
    settings: Settings,
    no_faults: None,
) -> None:
    base = api_process_factory({})
    simulator.state.faults["giaveno"] = Fault(kind=FaultKind.refuse)
    task_id = acquire(base, frequency_mhz=145.5, duration_seconds=1, stations=["giaveno", "torino"])
    time.sleep(0.6)  # refused a few times by now
    simulator.state.faults.pop("giaveno")
    state = wait_state(base, task_id, FINISHED, 30)
    assert state["state"] == "SUCCESS", state
    assert state["errors"] == []
    assert scalar("SELECT count(*) FROM measurements WHERE task_id = :t", t=task_id) == 2
    assert_consistent(object_store, settings)


def test_the_same_idempotency_key_gives_the_same_task(
    acquisition_worker: ManagedProcess,
    api_process_factory: ApiFactory,
    object_store: ObjectStore,
    settings: Settings,
    no_faults: None,
) -> None:
    base = api_process_factory({})
    body = {"frequency_mhz": 145.5, "duration_seconds": 1, "stations": ["torino", "milano"]}
    key = {"Idempotency-Key": "retry-after-a-timeout-1"}
    first = acquire(base, headers=key, **body)
    again = acquire(base, headers=key, **body)
    assert again == first
    other = httpx.post(
        f"{base}/api/v1/acquisition/acquire",
        json={**body, "duration_seconds": 2},
        headers=key,
        timeout=30,
    )
    assert other.status_code == 409
    assert first in other.json()["detail"]
    assert scalar("SELECT count(*) FROM acquisitions") == 1
    assert wait_state(base, first, FINISHED, 30)["state"] == "SUCCESS"
    assert_consistent(object_store, settings)


# --- PostgreSQL ----------------------------------------------------------------------


def test_postgresql_down_for_seconds_mid_recording_is_retried(
    acquisition_worker: ManagedProcess,
    api_process_factory: ApiFactory,
    object_store: ObjectStore,
    settings: Settings,
    no_faults: None,
) -> None:
    base = api_process_factory({})
    task_id = acquire(base, frequency_mhz=145.5, duration_seconds=3)
    wait_state(base, task_id, {"PROGRESS"}, 30)
    with postgresql_stopped():
        time.sleep(3)
    state = wait_state(base, task_id, FINISHED, 60)
    assert state["state"] == "SUCCESS", state
    assert scalar("SELECT count(*) FROM measurements WHERE task_id = :t", t=task_id) == 7
    assert_consistent(object_store, settings)


def test_postgresql_down_past_the_retry_budget_fails_naming_it(
    api_process_factory: ApiFactory,
    simulator: RunningNetwork,
    object_store: ObjectStore,
    settings: Settings,
    tmp_path: Path,
    no_faults: None,
) -> None:
    env = own_prefix("pgbudget")
    base = api_process_factory(env)
    with worker_pair("pgbudget", {**env, "HEIMDALL_DEPENDENCY_RETRY_S": "1"}, tmp_path):
        task_id = acquire(base, frequency_mhz=145.5, duration_seconds=2)
        wait_state(base, task_id, {"PROGRESS"}, 30)
        with postgresql_stopped():
            time.sleep(4)  # the recording ends meanwhile; its measurements cannot be stored
        state = wait_state(base, task_id, FINISHED, 60)
    assert state["state"] == "FAILED", state
    assert "PostgreSQL" in str(state["error_message"]), state
    assert_consistent(object_store, settings)


# --- object storage ---------------------------------------------------------------------


def test_object_storage_down_for_seconds_is_retried(
    acquisition_worker: ManagedProcess,
    api_process_factory: ApiFactory,
    s3_proxy: TcpProxy,
    object_store: ObjectStore,
    settings: Settings,
    no_faults: None,
) -> None:
    base = api_process_factory({})
    task_id = acquire(base, frequency_mhz=145.5, duration_seconds=2)
    wait_state(base, task_id, {"PROGRESS"}, 30)
    s3_proxy.cut()
    try:
        time.sleep(4)  # the recordings are written into the outage
    finally:
        s3_proxy.restore()
    state = wait_state(base, task_id, FINISHED, 60)
    assert state["state"] == "SUCCESS", state
    assert len(keys_of(object_store, settings, task_id)) == 14
    assert_consistent(object_store, settings)


# --- the broker ------------------------------------------------------------------------


def test_broker_cut_at_the_end_does_not_lose_the_chained_localization(
    api_process_factory: ApiFactory,
    simulator: RunningNetwork,
    object_store: ObjectStore,
    settings: Settings,
    tmp_path: Path,
    no_faults: None,
) -> None:
    env = own_prefix("broker")
    base = api_process_factory(env)
    proxy = TcpProxy("127.0.0.1", 5672).start()
    through_proxy = {
        **env,
        "HEIMDALL_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{proxy.port}//",
    }
    acquisition = start_worker("broker-acquisition", through_proxy, tmp_path)
    compute = start_worker(
        "broker-compute", {**env, "HEIMDALL_WORKER_METRICS_PORT": "0"}, tmp_path, role="compute"
    )
    try:
        wait_for_worker(acquisition)
        wait_for_worker(compute, "compute")
        task_id = acquire(base, frequency_mhz=145.5, duration_seconds=2)
        wait_state(base, task_id, {"PROGRESS"}, 30)
        proxy.cut()
        try:
            state = wait_state(base, task_id, FINISHED, 30)
            assert state["state"] == "SUCCESS", state
            # Decided in the SUCCESS transaction, not yet published.
            assert scalar("SELECT count(*) FROM task_outbox") == 1
            time.sleep(2)
        finally:
            proxy.restore()
        wait_until(
            lambda: scalar("SELECT count(*) FROM localizations WHERE task_id = :t", t=task_id) == 1,
            60,
            "the chained localization, published from the outbox",
        )
        assert scalar("SELECT count(*) FROM task_outbox") == 0
        assert_consistent(object_store, settings)
    finally:
        acquisition.stop()
        compute.stop()
        proxy.close()


# --- crashes --------------------------------------------------------------------------


def test_cancel_after_a_worker_crash_still_removes_the_first_attempts_objects(
    api_process_factory: ApiFactory,
    simulator: RunningNetwork,
    object_store: ObjectStore,
    settings: Settings,
    tmp_path: Path,
    no_faults: None,
) -> None:
    # A long connect timeout: the task must still be running when the worker dies.
    env = {**own_prefix("crashcancel"), "HEIMDALL_RECEIVER_CONNECT_TIMEOUT_S": "30"}
    base = api_process_factory(env)
    # milano never answers, so the task still runs after the others wrote their objects.
    simulator.state.faults["milano"] = Fault(kind=FaultKind.not_answering)
    first = start_worker("crash-then-cancel", env, tmp_path)
    second: ManagedProcess | None = None
    try:
        wait_for_worker(first)
        task_id = acquire(base, frequency_mhz=145.5, duration_seconds=1)
        wait_until(
            lambda: len(keys_of(object_store, settings, task_id)) >= 12, 30, "objects written"
        )
        first.kill_hard()
        cancelled = httpx.post(f"{base}/api/v1/acquisition/cancel/{task_id}", timeout=10)
        assert cancelled.status_code == 200, cancelled.text
        assert keys_of(object_store, settings, task_id)  # nobody was there to remove them
        second = start_worker("after-crash-and-cancel", env, tmp_path)
        wait_until(lambda: not keys_of(object_store, settings, task_id), 30, "objects removed")
        assert status_of(base, task_id)["state"] == "CANCELLED"
        assert_consistent(object_store, settings)
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_the_sweeper_ends_an_acquisition_stranded_past_its_deadline(
    api_process_factory: ApiFactory,
    simulator: RunningNetwork,
    object_store: ObjectStore,
    settings: Settings,
    tmp_path: Path,
    no_faults: None,
) -> None:
    # Claims that outlive the deadline: only the sweeper can end the acquisition.
    env = {
        **own_prefix("sweeper"),
        "HEIMDALL_ACQUISITION_FINISH_ALLOWANCE_S": "6",
        "HEIMDALL_CLAIM_TTL_S": "30",
    }
    base = api_process_factory(env)
    first = start_worker("stranded", env, tmp_path)
    second: ManagedProcess | None = None
    try:
        wait_for_worker(first)
        # Deadline: 5 s of wait + 2 s of recording + 6 s of allowance after the trigger.
        task_id = acquire(base, frequency_mhz=145.5, duration_seconds=2, max_wait_seconds=5)
        wait_state(base, task_id, {"PROGRESS"}, 30)
        first.kill_hard()
        # The next worker gets the message again, but the dead one's claim holds until
        # well after the deadline: the sweeper ends it.
        second = start_worker("sweeping", env, tmp_path)
        state = wait_state(base, task_id, FINISHED, 40)
        assert state["state"] == "FAILED", state
        assert "deadline" in str(state["error_message"]), state
        assert_consistent(object_store, settings)
    finally:
        first.stop()
        if second is not None:
            second.stop()
