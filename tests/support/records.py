"""Rows written straight into the test database, for tests that need many or odd states.

The acquisition row is the record of state, so a test may put one in any state the
worker could have left it in; the seeded station registry supplies the receivers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from heimdall.core.db import sync_engine
from heimdall.localization.calibration import Calibration
from heimdall.models import Acquisition, KnownSource, Measurement, Model

RECEIVERS = ("coazze", "genova", "giaveno", "giovi", "milano", "montanaro", "torino")


def add_known_source(name: str = "beacon", **fields: object) -> uuid.UUID:
    values: dict[str, object] = {
        "latitude": 44.9,
        "longitude": 8.2,
        "altitude_m": 300.0,
        "frequency_mhz": 145.5,
        **fields,
    }
    source_id = uuid.uuid4()
    with Session(sync_engine()) as session, session.begin():
        session.add(KnownSource(id=source_id, name=name, **values))
    return source_id


def add_acquisition(
    *,
    status: str = "SUCCESS",
    approval: str = "pending",
    frequency_mhz: float = 145.5,
    known_source_id: uuid.UUID | None = None,
    recorded_at: datetime | None = None,
    receivers: Sequence[str] = RECEIVERS,
    power_dbm: float | None = -90.0,
) -> uuid.UUID:
    """An acquisition with one measurement per receiver (SUCCESS only), all at ``recorded_at``."""
    recorded_at = recorded_at or datetime.now(UTC)
    task_id = uuid.uuid4()
    with Session(sync_engine()) as session, session.begin():
        session.add(
            Acquisition(
                task_id=task_id,
                frequency_mhz=frequency_mhz,
                duration_seconds=1.0,
                station_ids=list(receivers),
                status=status,
                progress=100.0 if status == "SUCCESS" else 0.0,
                errors=[],
                approval=approval,
                known_source_id=known_source_id,
                created_at=recorded_at - timedelta(seconds=1),
            )
        )
        session.flush()
        if status == "SUCCESS":
            session.add_all(
                measurement(task_id, receiver, frequency_mhz, recorded_at, power_dbm)
                for receiver in receivers
            )
    return task_id


def measurement(
    task_id: uuid.UUID,
    receiver: str,
    frequency_mhz: float,
    recorded_at: datetime,
    power_dbm: float | None,
) -> Measurement:
    return Measurement(
        id=uuid.uuid4(),
        task_id=task_id,
        websdr_id=receiver,
        timestamp=recorded_at,
        frequency_mhz=frequency_mhz,
        snr=20.0,
        frequency_offset=1.5,
        power_dbm=power_dbm,
        noise_floor_dbm=-120.0,
        signal_power_dbfs=-30.0,
        noise_floor_dbfs=-60.0,
        occupied_bandwidth_hz=5400.0,
        sample_rate_hz=12000.0,
        sample_count=12000,
        gps_locked=True,
        data_url=f"s3://nowhere/sessions/{task_id}/{receiver}.sigmf-data",
        meta_url=f"s3://nowhere/sessions/{task_id}/{receiver}.sigmf-meta",
    )


def add_model(version: int, *, calibration: Calibration | None = None) -> uuid.UUID:
    """An inactive calibration version in the registry, as a training job would leave it."""
    calibration = calibration or Calibration(
        version=f"calibration-v{version}", gain_offsets_db={"torino": 1.5}
    )
    model_id = uuid.uuid4()
    with Session(sync_engine()) as session, session.begin():
        session.add(
            Model(
                id=model_id,
                name="calibration",
                version=version,
                kind="calibration",
                parameters=calibration.model_dump(mode="json"),
                metrics={},
                created_at=datetime.now(UTC) + timedelta(milliseconds=version),
            )
        )
    return model_id


def review_of(task_id: object) -> tuple[str, str | None, str | None]:
    """(approval, reviewed_by, comment) as stored on the acquisition."""
    with sync_engine().connect() as conn:
        row = conn.execute(
            text("SELECT approval, reviewed_by, review_note FROM acquisitions WHERE task_id = :t"),
            {"t": task_id},
        ).one()
    return row.approval, row.reviewed_by, row.review_note
