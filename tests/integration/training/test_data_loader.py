"""The training data loader reads approved measurements only, by band and time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
from sqlalchemy.orm import Session

from heimdall.core.db import sync_engine
from heimdall.training.data import BATCH_COLUMNS, RFDataLoader
from heimdall.training.schemas import Selection
from tests.support.records import RECEIVERS, add_acquisition, add_known_source

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sample_sessions() -> dict[str, object]:
    beacon = add_known_source("beacon")
    return {
        "beacon": beacon,
        # approved, 2 m, known source, at T0
        "a": add_acquisition(approval="approved", known_source_id=beacon, recorded_at=T0),
        # approved, 2 m, no source, an hour later, one receiver without a dBm reading
        "b": add_acquisition(
            approval="approved",
            recorded_at=T0 + timedelta(hours=1),
            receivers=("torino", "milano", "genova"),
            power_dbm=None,
        ),
        # approved, 70 cm, a day later
        "c": add_acquisition(
            approval="approved", frequency_mhz=433.5, recorded_at=T0 + timedelta(days=1)
        ),
        # rejected and pending: never read
        "r": add_acquisition(approval="rejected", known_source_id=beacon, recorded_at=T0),
        "p": add_acquisition(approval="pending", known_source_id=beacon, recorded_at=T0),
    }


def loader_rows(selection: Selection, **kwargs: object) -> list[tuple[str, str]]:
    with Session(sync_engine()) as session:
        rows = RFDataLoader(session).rows(selection, **kwargs)  # type: ignore[arg-type]
    return [(str(r.task_id), r.websdr_id) for r in rows]


def task_ids(rows: list[tuple[str, str]]) -> list[str]:
    return sorted({task for task, _ in rows})


def test_only_approved_sessions_and_the_filters(clean_db: str) -> None:
    s = sample_sessions()
    a, b, c = str(s["a"]), str(s["b"]), str(s["c"])
    everything = loader_rows(Selection())
    assert task_ids(everything) == sorted([a, b, c])
    assert len(everything) == 7 + 3 + 7
    # Ordered by time, then session, then receiver.
    assert [r for t, r in everything if t == a] == sorted(RECEIVERS)
    assert task_ids(loader_rows(Selection(frequency_min_mhz=144, frequency_max_mhz=146))) == sorted(
        [a, b]
    )
    assert task_ids(loader_rows(Selection(frequency_min_mhz=145.5, frequency_max_mhz=145.5))) == (
        sorted([a, b])
    )
    assert task_ids(loader_rows(Selection(frequency_min_mhz=400))) == [c]
    # start inclusive, end exclusive
    assert task_ids(loader_rows(Selection(start=T0, end=T0 + timedelta(hours=1)))) == [a]
    assert task_ids(loader_rows(Selection(start=T0 + timedelta(hours=1)))) == sorted([b, c])
    assert task_ids(loader_rows(Selection(), known_sources_only=True)) == [a]
    assert loader_rows(Selection(), limit=2, offset=7) == everything[7:9]

    with Session(sync_engine()) as session:
        loader = RFDataLoader(session)
        assert loader.count(Selection()) == 17
        assert loader.count(Selection(end=T0)) == 0
        assert loader.sessions(Selection(), known_sources_only=True) == [(s["a"], s["beacon"])]
        assert [t for t, _ in loader.sessions(Selection())] == [s["a"], s["b"], s["c"]]
        one = loader.session_rows(s["b"])  # type: ignore[arg-type]
        assert [r.websdr_id for r in one] == ["genova", "milano", "torino"]
        assert all(r.power_dbm is None and r.snr_db == 20.0 for r in one)
        assert loader.session_rows(s["r"]) == [] and loader.session_rows(s["p"]) == []  # type: ignore[arg-type]


def test_batch_columns_have_one_length_and_explicit_dtypes(clean_db: str) -> None:
    s = sample_sessions()
    with Session(sync_engine()) as session:
        batch = RFDataLoader(session).batch(Selection(frequency_max_mhz=146))
        empty = RFDataLoader(session).batch(Selection(frequency_min_mhz=1000))
    assert tuple(batch) == BATCH_COLUMNS
    assert {a.shape for a in batch.values()} == {(10,)}
    assert {a.shape for a in empty.values()} == {(0,)}
    assert batch["frequency_mhz"].dtype == np.float64
    assert batch["gps_locked"].dtype == np.bool_ and batch["gps_locked"].all()
    assert batch["timestamp"].dtype == np.dtype("datetime64[us]")
    assert batch["timestamp"][0] == np.datetime64(T0.replace(tzinfo=None), "us")
    assert set(batch["task_id"]) == {str(s["a"]), str(s["b"])}
    # The session without dBm readings: NaN, not a zero that would look like a reading.
    b_rows = batch["task_id"] == str(s["b"])
    assert np.isnan(batch["power_dbm"][b_rows]).all()
    assert (batch["power_dbm"][~b_rows] == -90.0).all()
    assert list(batch["known_source_id"][~b_rows]) == [str(s["beacon"])] * 7
    assert list(batch["known_source_id"][b_rows]) == [None] * 3
    assert sorted(set(batch["websdr_id"])) == sorted(RECEIVERS)


async def test_measurements_endpoint(training: httpx.AsyncClient) -> None:
    s = sample_sessions()
    url = "/api/v1/training/data/measurements"
    page = (await training.get(url, params={"frequency_min_mhz": 144, "limit": 5})).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (17, 5, 0, 5)
    first = page["items"][0]
    assert first["task_id"] == str(s["a"]) and first["known_source_id"] == str(s["beacon"])
    assert first["snr_db"] == 20.0 and first["power_dbm"] == -90.0
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=2)).isoformat()}
    in_window = (await training.get(url, params={**window, "limit": 100})).json()
    assert {i["task_id"] for i in in_window["items"]} == {str(s["a"]), str(s["b"])}
    for bad in (
        {"frequency_min_mhz": 146, "frequency_max_mhz": 144},
        {"start": "2026-03-01T12:00:00"},  # no timezone
        {"start": window["end"], "end": window["start"]},
        {"limit": 0},
    ):
        assert (await training.get(url, params=bad)).status_code == 422, bad
