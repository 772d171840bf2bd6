"""Training data loader: 100,000 approved measurement rows, loaded as a batch and as rows.

Creates a scratch PostgreSQL database (dropped at the end), migrates it, inserts
~14,300 approved acquisitions of seven receivers (100,000 measurements) plus as many
rejected rows that the loader must skip, and times ``RFDataLoader`` over them.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_data_loader.py
Prints figures; asserts nothing (the target is < 1 s for the 100,000-row batch).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

DATABASE = f"heimdall_bench_loader_{uuid.uuid4().hex[:8]}"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
os.environ["HEIMDALL_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"

from sqlalchemy.orm import Session  # noqa: E402  (after the database URL is set)

from heimdall.core.db import sync_engine  # noqa: E402
from heimdall.core.migrate import migrate_and_seed  # noqa: E402
from heimdall.training.data import RFDataLoader  # noqa: E402
from heimdall.training.schemas import Selection  # noqa: E402

RECEIVERS = ("coazze", "genova", "giaveno", "giovi", "milano", "montanaro", "torino")
ROWS = 100_000
REPEATS = 5
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fill(approved_rows: int) -> None:
    """Approved sessions with ``approved_rows`` measurements, and as many rejected ones."""
    sessions = -(-approved_rows // len(RECEIVERS))
    with (
        psycopg.connect(os.environ["HEIMDALL_DATABASE_URL"].replace("+psycopg", "")) as conn,
        conn.cursor() as cursor,
    ):
        for approval in ("approved", "rejected"):
            with cursor.copy(
                "COPY acquisitions (task_id, frequency_mhz, duration_seconds, station_ids, "
                "status, progress, approval, created_at) FROM STDIN"
            ) as acquisitions:
                tasks = []
                for index in range(sessions):
                    task_id = uuid.uuid4()
                    when = T0 + timedelta(minutes=index)
                    frequency = 145.5 if index % 2 else 433.5
                    tasks.append((task_id, when, frequency))
                    acquisitions.write_row(
                        (task_id, frequency, 5.0, '["torino"]', "SUCCESS", 100.0, approval, when)
                    )
            written = 0
            with cursor.copy(
                "COPY measurements (id, timestamp, task_id, websdr_id, frequency_mhz, snr, "
                "frequency_offset, power_dbm, noise_floor_dbm, signal_power_dbfs, "
                "noise_floor_dbfs, occupied_bandwidth_hz, sample_rate_hz, sample_count, "
                "gps_locked, data_url, meta_url) FROM STDIN"
            ) as measurements:
                for task_id, when, frequency in tasks:
                    for index, receiver in enumerate(RECEIVERS):
                        if written == approved_rows:
                            break
                        written += 1
                        url = f"s3://raw/sessions/{task_id}/{receiver}.sigmf"
                        measurements.write_row(
                            (
                                uuid.uuid4(), when, task_id, receiver, frequency,
                                20.0 + index, 1.5, -90.0 - index, -120.0, -30.0, -60.0,
                                5400.0, 12000.0, 60000, True, url + "-data", url + "-meta",
                            )
                        )  # fmt: skip
        conn.execute("ANALYZE")


def median_s(action: Callable[[], int]) -> tuple[float, int]:
    count = action()  # warm the connection pool and PostgreSQL's caches
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings), count


def main() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    try:
        migrate_and_seed()
        started = time.perf_counter()
        fill(ROWS)
        print(
            f"inserted {ROWS} approved + {ROWS} rejected rows in {time.perf_counter() - started:.1f} s"
        )
        everything, band = Selection(), Selection(frequency_min_mhz=144, frequency_max_mhz=146)
        with Session(sync_engine()) as session:
            loader = RFDataLoader(session)
            cases = {
                "batch, all approved rows": lambda: len(loader.batch(everything)["task_id"]),
                "batch, 2 m band only": lambda: len(loader.batch(band)["task_id"]),
                "rows, all approved rows": lambda: len(loader.rows(everything)),
            }
            for name, action in cases.items():
                seconds, count = median_s(action)
                print(f"{name:28s} {count:7d} rows  median {seconds * 1e3:7.1f} ms  (target < 1 s)")
    finally:
        sync_engine.cache_clear()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
            )


if __name__ == "__main__":
    main()
