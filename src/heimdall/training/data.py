"""Training data access (the plan's ``RFDataLoader``): measurements of approved sessions.

Only acquisitions an operator approved (state SUCCESS) are ever read: a rejected or
pending session cannot reach a fit through this module. Selections are a frequency band
(inclusive, on the measurement's frequency) and a time window (``start`` inclusive,
``end`` exclusive, on the measurement's timestamp: the GPS time its recording began).
Every query is SQLAlchemy Core with bound parameters.

Rows come as :class:`MeasurementRow`; the same selection as a columnar batch is a dict
of 1-D numpy arrays of one length (``pandas.DataFrame(batch)`` takes it as it is).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import Select, and_, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger, Text

from heimdall.models import Acquisition, AcquisitionState, Approval, Measurement
from heimdall.training.schemas import MeasurementRow, Selection

_m = Measurement.__table__.c
_a = Acquisition.__table__.c

#: The columns of a row, in order, as (name, SQL expression).
_ROW_COLUMNS = (
    ("task_id", _m.task_id),
    ("websdr_id", _m.websdr_id),
    ("known_source_id", _a.known_source_id),
    ("timestamp", _m.timestamp),
    ("frequency_mhz", _m.frequency_mhz),
    ("snr_db", _m.snr),
    ("frequency_offset_hz", _m.frequency_offset),
    ("power_dbm", _m.power_dbm),
    ("noise_floor_dbm", _m.noise_floor_dbm),
    ("signal_power_dbfs", _m.signal_power_dbfs),
    ("noise_floor_dbfs", _m.noise_floor_dbfs),
    ("occupied_bandwidth_hz", _m.occupied_bandwidth_hz),
    ("sample_rate_hz", _m.sample_rate_hz),
    ("gps_locked", _m.gps_locked),
    ("data_url", _m.data_url),
    ("meta_url", _m.meta_url),
)

#: Batch columns and their dtypes. Ids come as text (no per-row UUID objects), times
#: as microseconds since the epoch; missing floats are NaN.
_BATCH_COLUMNS: tuple[tuple[str, Any, np.dtype[Any]], ...] = (
    ("task_id", cast(_m.task_id, Text), np.dtype(object)),
    ("websdr_id", _m.websdr_id, np.dtype(object)),
    ("known_source_id", cast(_a.known_source_id, Text), np.dtype(object)),
    (
        "timestamp",
        cast(func.floor(func.extract("epoch", _m.timestamp) * 1_000_000), BigInteger),
        np.dtype("datetime64[us]"),
    ),
    ("frequency_mhz", _m.frequency_mhz, np.dtype(np.float64)),
    ("snr_db", _m.snr, np.dtype(np.float64)),
    ("frequency_offset_hz", _m.frequency_offset, np.dtype(np.float64)),
    ("power_dbm", _m.power_dbm, np.dtype(np.float64)),
    ("noise_floor_dbm", _m.noise_floor_dbm, np.dtype(np.float64)),
    ("signal_power_dbfs", _m.signal_power_dbfs, np.dtype(np.float64)),
    ("noise_floor_dbfs", _m.noise_floor_dbfs, np.dtype(np.float64)),
    ("occupied_bandwidth_hz", _m.occupied_bandwidth_hz, np.dtype(np.float64)),
    ("sample_rate_hz", _m.sample_rate_hz, np.dtype(np.float64)),
    ("gps_locked", _m.gps_locked, np.dtype(np.bool_)),
)
BATCH_COLUMNS = tuple(name for name, _, _ in _BATCH_COLUMNS)


def _approved(
    query: Select[Any],
    selection: Selection,
    *,
    task_ids: Sequence[uuid.UUID] | None,
    known_sources_only: bool,
) -> Select[Any]:
    conditions = [
        _a.approval == Approval.approved.value,
        _a.status == AcquisitionState.SUCCESS.value,
    ]
    if known_sources_only:
        conditions.append(_a.known_source_id.is_not(None))
    if task_ids is not None:
        conditions.append(_m.task_id.in_(list(task_ids)))
    if selection.frequency_min_mhz is not None:
        conditions.append(_m.frequency_mhz >= selection.frequency_min_mhz)
    if selection.frequency_max_mhz is not None:
        conditions.append(_m.frequency_mhz <= selection.frequency_max_mhz)
    if selection.start is not None:
        conditions.append(_m.timestamp >= selection.start)
    if selection.end is not None:
        conditions.append(_m.timestamp < selection.end)
    joined = Measurement.__table__.join(Acquisition.__table__, _a.task_id == _m.task_id)
    return query.select_from(joined).where(and_(*conditions))


def _fetch(session: Session, query: Select[Any]) -> list[tuple[Any, ...]]:
    """All rows of ``query`` through the session's connection (its transaction).

    On a synchronous psycopg connection the rows travel in PostgreSQL's binary format
    and skip SQLAlchemy's per-row processing: about twice as fast for 100,000 rows
    (benchmarks/bench_data_loader.py). The statement is still compiled by SQLAlchemy
    and its parameters bound by the driver.
    """
    connection = session.connection()
    raw = connection.connection.dbapi_connection
    if not isinstance(raw, psycopg.Connection):  # the async API's adapted connection
        return [tuple(row) for row in session.execute(query)]
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    with raw.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()


def _ordered(query: Select[Any]) -> Select[Any]:
    # Stable order (sessions in time, receivers by id) so pages do not overlap.
    return query.order_by(_m.timestamp, _m.task_id, _m.websdr_id)


class RFDataLoader:
    """Reads approved measurements through a caller's session (the caller owns it).

    Example (``session`` a SQLAlchemy session on Heimdall's database)::

        loader = RFDataLoader(session)
        batch = loader.batch(Selection(frequency_min_mhz=144, frequency_max_mhz=146))
        pandas.DataFrame(batch).groupby("websdr_id").power_dbm.mean()
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def rows(
        self,
        selection: Selection = Selection(),
        *,
        known_sources_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[MeasurementRow]:
        query = select(*(column.label(name) for name, column in _ROW_COLUMNS))
        query = _ordered(
            _approved(query, selection, task_ids=None, known_sources_only=known_sources_only)
        )
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        return [MeasurementRow(*row) for row in _fetch(self.session, query)]

    def count(self, selection: Selection = Selection(), *, known_sources_only: bool = False) -> int:
        query = _approved(
            select(func.count()), selection, task_ids=None, known_sources_only=known_sources_only
        )
        return int(self.session.execute(query).scalar_one())

    def sessions(
        self, selection: Selection = Selection(), *, known_sources_only: bool = False
    ) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
        """The approved sessions with a measurement in the selection: (task_id, known source)."""
        query = _approved(
            select(_m.task_id, _a.known_source_id, func.min(_m.timestamp).label("first")),
            selection,
            task_ids=None,
            known_sources_only=known_sources_only,
        ).group_by(_m.task_id, _a.known_source_id)
        rows = self.session.execute(query.order_by("first", _m.task_id)).all()
        return [(task_id, source_id) for task_id, source_id, _ in rows]

    def session_rows(self, task_id: uuid.UUID) -> list[MeasurementRow]:
        """The measurements of one session (empty unless it is approved)."""
        query = select(*(column.label(name) for name, column in _ROW_COLUMNS))
        query = _ordered(
            _approved(query, Selection(), task_ids=[task_id], known_sources_only=False)
        )
        return [MeasurementRow(*row) for row in _fetch(self.session, query)]

    def batch(
        self,
        selection: Selection = Selection(),
        *,
        known_sources_only: bool = False,
        task_ids: Sequence[uuid.UUID] | None = None,
    ) -> dict[str, np.ndarray]:
        """The selection as columns: ``{name: 1-D array}``, all of one length."""
        query = select(*(column.label(name) for name, column, _ in _BATCH_COLUMNS))
        query = _ordered(
            _approved(query, selection, task_ids=task_ids, known_sources_only=known_sources_only)
        )
        rows = _fetch(self.session, query)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(_BATCH_COLUMNS)
        batch: dict[str, np.ndarray] = {}
        for (name, _, dtype), values in zip(_BATCH_COLUMNS, columns, strict=True):
            if dtype.kind == "M":
                batch[name] = np.array(values, dtype=np.int64).view(dtype)
            elif dtype.kind == "f":
                # None (a NULL) becomes NaN under an explicit float dtype.
                batch[name] = np.array(values, dtype=dtype)
            else:
                array = np.empty(len(values), dtype=dtype)
                array[:] = values
                batch[name] = array
        return batch
