"""The whole local stack under load: trigger latency, acquisitions at scale, memory (issue 13).

Starts a real stack with ``heimdall up --detach`` (services, both worker kinds, the
seven simulated receivers with 4 channels each) on free ports, with a database,
queue names and buckets of its own, against this machine's PostgreSQL, RabbitMQ,
Redis and S3. Then measures, each figure beside its target and the floor of the
same run:

* trigger latency of ``POST /acquire`` (p50/p95/p99 over >= 500 requests) beside
  ``GET /health`` of the same server;
* one 2 s acquisition, trigger to SUCCESS;
* 5, 20 and 50 concurrent 2 s acquisitions: wall time, success rate, against the
  channel-limited floor ``ceil(N / channels) x duration``; peak memory of every
  process during the 50;
* the database write that ends an acquisition (7 measurement rows), p50/p99;
* localization latency for 7 receivers, p50/p95;
* a py-spy profile of any path that misses its target.

Prints the figures and writes them to docs/BENCHMARKS.md. Loopback only; every
loop is bounded. The stack, database, queues and buckets are removed at the end.

    .venv/bin/python benchmarks/bench_stack.py [--requests 500] [--concurrency 5 20 50]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import math
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

REPO = Path(__file__).resolve().parents[1]
RUN_ID = uuid.uuid4().hex[:8]
DATABASE = f"heimdall_bench_{RUN_ID}"
STATE_DIR = Path(tempfile.mkdtemp(prefix=f"heimdall-bench-{RUN_ID}-"))
# Made at import (the stack's settings name files in it): a harness that imports this
# module and never calls main() leaves nothing behind either.
atexit.register(shutil.rmtree, STATE_DIR, ignore_errors=True)
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
CHANNELS = 4
DURATION_S = 2.0
STATIONS = 7
FINISHED = ("SUCCESS", "FAILED", "CANCELLED")
TRIGGER_PAUSE_S = 0.03
BENCH_BEGIN = "<!-- bench_stack:begin -->"
BENCH_END = "<!-- bench_stack:end -->"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_environment() -> dict[str, str]:
    """Settings of the benchmark's own stack; this process uses them too."""
    env = {
        "HEIMDALL_ENVIRONMENT": "development",
        "HEIMDALL_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}",
        "HEIMDALL_QUEUE_PREFIX": f"bench-{RUN_ID}-",
        # The benchmark is one client sending hundreds of requests a second on purpose.
        "HEIMDALL_RATE_LIMIT_PER_MINUTE": "0",
        "HEIMDALL_S3_BUCKET_RAW": f"heimdall-bench-{RUN_ID}-raw",
        "HEIMDALL_S3_BUCKET_MODELS": f"heimdall-bench-{RUN_ID}-models",
        "HEIMDALL_STATE_DIR": str(STATE_DIR / "state"),
        "HEIMDALL_SIMULATOR_CONTROL_PORT": str(free_port()),
        "HEIMDALL_WORKER_METRICS_PORT": str(free_port()),
        "HEIMDALL_GATEWAY_PORT": str(free_port()),
    }
    for name in ("ACQUISITION", "TRAINING", "INFERENCE", "INGESTION"):
        port = free_port()
        env[f"HEIMDALL_{name}_PORT"] = str(port)
        env[f"HEIMDALL_{name}_URL"] = f"http://127.0.0.1:{port}"
    registry = yaml.safe_load((REPO / "src/heimdall/data/stations-simulated.yaml").read_text())
    for station in registry["stations"]:
        station["url"] = f"ws://127.0.0.1:{free_port()}"
        station["channels"] = CHANNELS
    stations_file = STATE_DIR / "stations.yaml"
    stations_file.write_text(yaml.safe_dump(registry))
    env["HEIMDALL_STATIONS_FILE"] = str(stations_file)
    return env


ENV = stack_environment()
os.environ.update(ENV)  # before any Heimdall module reads its settings

from heimdall.acquisition import repository  # noqa: E402
from heimdall.core.process import prepare_computing_process  # noqa: E402
from heimdall.core.settings import get_settings  # noqa: E402
from heimdall.training.evaluation import quantile_interval, wilson_interval  # noqa: E402

SETTINGS = get_settings()
API = f"http://127.0.0.1:{SETTINGS.acquisition_port}"


# --- figures -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Report:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.rows: list[tuple[str, str, str, str]] = []
        self.notes: list[str] = []
        self.missed: list[str] = []

    def add(self, figure: str, value: str, target: str, met: bool | None) -> None:
        verdict = "–" if met is None else ("met" if met else "**missed**")
        self.rows.append((figure, value, target, verdict))
        if met is False:
            self.missed.append(figure)
        if not self.quiet:
            print(f"  {figure:<58} {value:<34} target {target:<26} {verdict}", flush=True)

    def markdown(self) -> str:
        lines = [
            "| figure | measured | target | |",
            "|---|---|---|---|",
            *(f"| {f} | {v} | {t} | {m} |" for f, v, t, m in self.rows),
        ]
        return "\n".join(lines + [""] + self.notes)


# --- the stack -----------------------------------------------------------------------


def heimdall(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heimdall", *args],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def running_stack() -> Iterator[dict[str, int]]:
    """``heimdall up --detach`` with the benchmark's settings; the components' pids."""
    started = heimdall("up", "--detach", "--timeout", "180")
    if started.returncode != 0:
        raise SystemExit(f"heimdall up failed:\n{started.stdout}\n{started.stderr}")
    try:
        state = json.loads((Path(ENV["HEIMDALL_STATE_DIR"]) / "supervisor.json").read_text())
        yield {name: int(pid) for name, pid in state["children"].items()}
    finally:
        heimdall("down", timeout=120)


@contextlib.contextmanager
def object_store_for_the_run() -> Iterator[None]:
    """A SeaweedFS of the benchmark's own when nothing answers on the S3 port.

    The stack would start one itself, but stop it with the stack, and the
    localization phase reads the recordings back after the stack is down.
    """
    from heimdall.core.seaweed import endpoint_host_port, port_open, start_seaweed

    if port_open(*endpoint_host_port(SETTINGS)):
        yield
        return
    seaweed = start_seaweed(SETTINGS, STATE_DIR)
    try:
        yield
    finally:
        seaweed.terminate()
        try:
            seaweed.wait(timeout=30)
        except subprocess.TimeoutExpired:
            seaweed.kill()
            seaweed.wait()


def remove_everything() -> None:
    from heimdall.core.celery_app import ALL_QUEUES, celery_app, queue_name
    from heimdall.core.storage import ObjectStore

    with contextlib.suppress(Exception), celery_app.connection_for_write() as connection:
        channel = connection.channel()
        for base in (*ALL_QUEUES, "heimdall"):
            channel.queue_delete(queue_name(base))
            channel.exchange_delete(queue_name(base))
    store = ObjectStore(SETTINGS)
    for bucket in (SETTINGS.s3_bucket_raw, SETTINGS.s3_bucket_models):
        with contextlib.suppress(Exception):
            store.delete_prefix(bucket, "")
            store.client.remove_bucket(bucket)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(DATABASE)
            )
        )


def db() -> psycopg.Connection[Any]:
    return psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DATABASE}", autocommit=True)


def wait_finished(task_ids: list[str], timeout_s: float) -> list[tuple[str, datetime]]:
    """(state, finished_at) of each, once all have finished (polled in PostgreSQL)."""
    deadline = time.monotonic() + timeout_s
    with db() as conn:
        while True:
            rows = conn.execute(
                "SELECT status, finished_at FROM acquisitions WHERE task_id = ANY(%s::uuid[])",
                (task_ids,),
            ).fetchall()
            if len(rows) == len(task_ids) and all(r[0] in FINISHED for r in rows):
                return [(r[0], r[1]) for r in rows]
            if time.monotonic() > deadline:
                return [(r[0], r[1] or datetime.now(UTC)) for r in rows]
            time.sleep(0.25)


def wait_localized(task_ids: list[str], timeout_s: float = 60) -> None:
    """Let the chained localizations finish, so that one phase does not load the next."""
    deadline = time.monotonic() + timeout_s
    with db() as conn:
        while time.monotonic() < deadline:
            done = conn.execute(
                "SELECT count(*) FROM localizations WHERE task_id = ANY(%s::uuid[])",
                (task_ids,),
            ).fetchone()
            if done is not None and done[0] >= len(task_ids):
                return
            time.sleep(0.5)


# --- memory ------------------------------------------------------------------------


def proc_kib(path: str, field: str) -> int:
    """One ``field: <n> kB`` line of a /proc file (0 once the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid: int) -> int:
    return proc_kib(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    """Proportional set size: each page shared with other processes counted in part.

    A prefork worker's children share most of their pages with their parent, so the
    tree's summed RSS counts those pages once per process; its summed PSS counts them
    about once. Reading it walks the page tables (~3.5 ms for a 200 MB process here).
    """
    return proc_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found.extend(descendants(int(child)))
    return found


class MemorySampler:
    """Peak memory of each component (its processes summed), sampled: RSS and PSS."""

    def __init__(
        self, pids: dict[str, int], interval_s: float = 0.2, pss_interval_s: float = 2.0
    ) -> None:
        self.pids = pids
        self.interval_s = interval_s
        # The PSS of every component costs ~45 ms to read: every 0.2 s it would take a
        # fifth of a core from the run it measures.
        self.pss_every = max(1, round(pss_interval_s / interval_s))
        self.peak_kib: dict[str, int] = dict.fromkeys(pids, 0)
        self.peak_pss_kib: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sweep = 0
        while not self._stop.wait(self.interval_s):
            for name, pid in self.pids.items():
                tree = descendants(pid)
                self.peak_kib[name] = max(self.peak_kib[name], sum(map(rss_kib, tree)))
                # From the first sweep on: a run shorter than the PSS interval still has one.
                if sweep % self.pss_every == 0:
                    pss = sum(map(pss_kib, tree))
                    self.peak_pss_kib[name] = max(self.peak_pss_kib[name], pss)
            sweep += 1

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# --- profiles ------------------------------------------------------------------------


class Profile:
    """py-spy sampling a process while something runs; the hottest frames, summarised."""

    def __init__(self, pid: int, name: str, duration_s: float) -> None:
        self.name = name
        slug = "".join(c if c.isalnum() else "-" for c in name)
        self.path = STATE_DIR / f"profile-{slug}.txt"
        self.errors = STATE_DIR / f"profile-{slug}.err"
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
        self.process = (
            subprocess.Popen(
                [
                    py_spy or "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(math.ceil(duration_s)),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--subprocesses",
                    "--nonblocking",
                    "--output",
                    str(self.path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=self.errors.open("wb"),
            )
            if py_spy
            else None
        )

    def summary(self, top: int = 10) -> str:
        if self.process is None:
            return f"profile of {self.name}: py-spy not installed"
        self.process.wait(timeout=120)
        if not self.path.exists():
            said = self.errors.read_text(errors="replace").strip().splitlines()
            return f"profile of {self.name}: py-spy wrote nothing ({said[-1] if said else '?'})"
        inclusive: Counter[str] = Counter()
        leaf: Counter[str] = Counter()
        total = 0
        for line in self.path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [f for f in stack.split(";") if " (" in f and not f.startswith("process ")]
            if not frames:
                continue
            total += count
            leaf[frames[-1]] += count
            for frame in set(frames):
                if any(w in frame for w in WORK_FRAMES):
                    inclusive[frame] += count
        lines = [
            f"Profile of {self.name} (py-spy, {total} samples of running threads).",
            "Most time on the stack (inclusive; Heimdall and the libraries doing its work):",
            *(f"  {100 * n / total:5.1f} %  {f}" for f, n in inclusive.most_common(top)),
            "Most time in the function itself (self):",
            *(f"  {100 * n / total:5.1f} %  {f}" for f, n in leaf.most_common(top)),
        ]
        return "\n".join(lines)


# Inclusive time is shown for the code that does the work, not for the start-up chain
# (runpy, click, uvicorn's main, the event loop) that every sample has on its stack.
WORK_FRAMES = (
    "heimdall/",
    "sqlalchemy/",
    "psycopg/",
    "celery/app/",
    "kombu/messaging",
    "fastapi/routing",
    "pydantic/",
    "websockets/",
    "minio/",
    "numpy/",
    "scipy/",
)


# --- the measurements ------------------------------------------------------------------


def bench_trigger(report: Report, requests: int, pid: int | None) -> None:
    body = {"frequency_mhz": 145.5, "duration_seconds": DURATION_S, "stations": ["giaveno"]}
    health: list[float] = []
    trigger: list[float] = []
    profile = None
    with httpx.Client(base_url=API, timeout=30) as client:
        for index in range(requests + 20):
            if pid is not None and index == 20:
                profile = Profile(pid, "rf-acquisition during POST /acquire", 10)
            started = time.perf_counter()
            client.get("/health").raise_for_status()
            bare = time.perf_counter() - started
            started = time.perf_counter()
            accepted = client.post("/api/v1/acquisition/acquire", json=body)
            elapsed = time.perf_counter() - started
            accepted.raise_for_status()
            client.post(f"/api/v1/acquisition/cancel/{accepted.json()['task_id']}")
            # Let the worker take (and drop) the cancelled acquisition before the next
            # pair of requests, so that both are timed on a stack at rest.
            time.sleep(TRIGGER_PAUSE_S)
            if index >= 20:  # warm-up excluded
                health.append(bare * 1e3)
                trigger.append(elapsed * 1e3)
    p = {q: percentile(trigger, q) for q in (50, 95, 99)}
    h = {q: percentile(health, q) for q in (50, 95, 99)}
    ratio = p[50] / h[50]
    report.add(
        f"POST /acquire p50 / p95 / p99 ({requests} requests)",
        f"{p[50]:.2f} / {p[95]:.2f} / {p[99]:.2f} ms",
        "p50 <= 5 ms",
        p[50] <= 5.0,
    )
    report.add(
        "GET /health of the same server p50 / p95 / p99",
        f"{h[50]:.2f} / {h[95]:.2f} / {h[99]:.2f} ms",
        "(the floor)",
        None,
    )
    report.add("trigger p50 / bare endpoint p50", f"{ratio:.1f}x", "<= 3x", ratio <= 3.0)
    if profile is not None and (p[50] > 5.0 or ratio > 3.0):
        report.notes.append("```\n" + profile.summary() + "\n```")
    elif profile is not None:
        profile.summary()


def bench_commit_flush(report: Report, runs: int = 200) -> None:
    """What the WAL flush of one commit costs here: the same INSERT, flushed or not."""
    timings: dict[str, list[float]] = {"on": [], "off": []}
    with db() as conn:
        conn.execute("CREATE TABLE bench_flush (id uuid PRIMARY KEY, at timestamptz)")
        for mode in ("on", "off") * (runs // 2):
            conn.execute(f"SET synchronous_commit = {mode}")
            started = time.perf_counter()
            conn.execute("INSERT INTO bench_flush VALUES (gen_random_uuid(), now())")
            timings[mode].append((time.perf_counter() - started) * 1e3)
        conn.execute("DROP TABLE bench_flush")
    on, off = percentile(timings["on"], 50), percentile(timings["off"], 50)
    report.add(
        "one autocommitted INSERT, WAL flushed / not flushed, p50",
        f"{on:.2f} / {off:.2f} ms (the flush: {on - off:.2f} ms)",
        "(part of the trigger)",
        None,
    )


def trigger_all(count: int, body: dict[str, Any]) -> tuple[float, list[str]]:
    """Fire ``count`` acquisitions at once; (wall-clock time of the first, task ids)."""

    async def fire() -> list[str]:
        async with httpx.AsyncClient(base_url=API, timeout=60) as client:
            responses = await asyncio.gather(
                *(client.post("/api/v1/acquisition/acquire", json=body) for _ in range(count))
            )
        for response in responses:
            response.raise_for_status()
        return [r.json()["task_id"] for r in responses]

    started = time.time()
    return started, asyncio.run(fire())


def timeline(task_ids: list[str], queued: bool = True) -> str:
    """Where a wave's time goes, medians over the acquisitions (server-side clocks)."""
    with db() as conn:
        rows = conn.execute(
            "SELECT a.created_at, a.started_at, a.finished_at, min(m.timestamp), max(m.timestamp)"
            " FROM acquisitions a JOIN measurements m ON m.task_id = a.task_id"
            " WHERE a.task_id = ANY(%s::uuid[]) AND a.status = 'SUCCESS'"
            " GROUP BY a.task_id",
            (task_ids,),
        ).fetchall()
    if not rows:
        return "no successful acquisition to break down"
    first_created = min(r[0] for r in rows)
    ends = sorted(r[4].timestamp() + DURATION_S for r in rows)
    grant_to_sample, spread, end_to_success, handoff = [], [], [], []
    for _created, started, finished, first_sample, last_sample in rows:
        grant_to_sample.append(first_sample.timestamp() - started.timestamp())
        spread.append(last_sample.timestamp() - first_sample.timestamp())
        end_to_success.append(finished.timestamp() - last_sample.timestamp() - DURATION_S)
        before = [e for e in ends if e <= started.timestamp()]
        if (started - first_created).total_seconds() > 1.0 and before:
            handoff.append(started.timestamp() - before[-1])

    def ms(values: list[float]) -> str:
        return f"{1e3 * statistics.median(values):.0f} ms" if values else "–"

    handoff_text = f"channel freed -> next grant {ms(handoff)}; " if queued else ""
    return (
        f"{handoff_text}grant -> first sample {ms(grant_to_sample)}; "
        f"spread of the receivers' first samples {ms(spread)}; end of recording -> SUCCESS "
        f"{ms(end_to_success)} (medians over {len(rows)})"
    )


def bench_single(report: Report, repeats: int = 5) -> list[str]:
    elapsed: list[float] = []
    task_ids = []
    with httpx.Client(base_url=API, timeout=30) as client:
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.post(
                "/api/v1/acquisition/acquire",
                json={"frequency_mhz": 145.5, "duration_seconds": DURATION_S},
            )
            task_id = response.json()["task_id"]
            while True:
                state = client.get(f"/api/v1/acquisition/status/{task_id}").json()
                if state["state"] in FINISHED:
                    break
                time.sleep(0.005)
            elapsed.append(time.perf_counter() - started)
            assert state["state"] == "SUCCESS", state
            task_ids.append(task_id)
            wait_localized([task_id])
    median = statistics.median(elapsed)
    breakdown = timeline(task_ids, queued=False)
    print(f"    {breakdown}", flush=True)
    report.notes.append(f"* one at a time: {breakdown}.")
    report.add(
        f"one {DURATION_S:g} s acquisition, trigger to SUCCESS (median of {repeats})",
        f"{median:.2f} s (max {max(elapsed):.2f} s; floor {DURATION_S:g} s)",
        f"<= {DURATION_S + 0.5:g} s",
        median <= DURATION_S + 0.5,
    )
    return task_ids


def bench_concurrent(
    report: Report, count: int, sample: contextlib.AbstractContextManager[Any]
) -> tuple[list[str], float, float]:
    floor_s = math.ceil(count / CHANNELS) * DURATION_S
    target_s = 1.15 * floor_s + 0.5
    with sample:
        started, task_ids = trigger_all(
            count, {"frequency_mhz": 145.5, "duration_seconds": DURATION_S}
        )
        results = wait_finished(task_ids, timeout_s=3 * floor_s + 60)
    wall_s = max(f.timestamp() for _, f in results) - started
    succeeded = sum(1 for s, _ in results if s == "SUCCESS")
    low, high = wilson_interval(succeeded, count) or [0.0, 1.0]
    report.add(
        f"{count} concurrent {DURATION_S:g} s acquisitions ({CHANNELS} channels each)",
        f"{wall_s:.1f} s = {wall_s / floor_s:.2f}x floor {floor_s:g} s; "
        f"{100 * succeeded / count:.0f} % SUCCESS (95 % Wilson {100 * low:.0f}-{100 * high:.0f} %)",
        f"<= {target_s:.1f} s, 100 %",
        wall_s <= target_s and succeeded == count,
    )
    breakdown = timeline(task_ids)
    if not report.quiet:
        print(f"    {breakdown}", flush=True)
        report.notes.append(f"* {count} concurrent: {breakdown}.")
    wait_localized(task_ids, timeout_s=120)
    return task_ids, wall_s, target_s


def two_second_metadata() -> dict[str, Any]:
    """The SigMF metadata of a 2 s KiwiSDR capture (~2.4 kB), as a measurement row keeps it."""
    import numpy as np

    from heimdall.dsp.signals import make_capture
    from heimdall.receivers.sigmf_io import sigmf_metadata

    capture = make_capture(
        np.zeros(int(2 * 12_000), np.complex64), 12_000.0, start_time_ns=1_700_000_000 * 10**9
    )
    return sigmf_metadata(capture, latitude=45.0, longitude=7.0, altitude_m=300.0)


def bench_db_write(report: Report, iterations: int = 300) -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from heimdall.models import Acquisition

    async def run() -> list[float]:
        engine = create_async_engine(SETTINGS.sync_database_url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        with db() as conn:
            (stations,) = conn.execute("SELECT array_agg(id) FROM websdr_stations").fetchone()
        meta = two_second_metadata()
        timings = []
        try:
            for _ in range(iterations + 20):
                task_id = uuid.uuid4()
                async with sessions() as session, session.begin():
                    session.add(
                        Acquisition(
                            task_id=task_id,
                            frequency_mhz=145.5,
                            duration_seconds=DURATION_S,
                            station_ids=stations,
                            status="PROGRESS",
                            holder="bench",
                            progress=0.0,
                            errors=[],
                        )
                    )
                rows = [
                    {
                        "id": uuid.uuid4(),
                        "task_id": task_id,
                        "websdr_id": station,
                        "timestamp": datetime.now(UTC),
                        "frequency_mhz": 145.5,
                        "snr": 20.0,
                        "frequency_offset": 1.0,
                        "power_dbm": -100.0,
                        "noise_floor_dbm": -120.0,
                        "signal_power_dbfs": -20.0,
                        "noise_floor_dbfs": -40.0,
                        "occupied_bandwidth_hz": 5000.0,
                        "sample_rate_hz": 12001.0,
                        "sample_count": 24064,
                        "gps_locked": True,
                        "data_url": f"s3://bench/{task_id}/{station}.sigmf-data",
                        "meta_url": f"s3://bench/{task_id}/{station}.sigmf-meta",
                        "sigmf_meta": meta,  # as a live 2 s capture's row carries it
                    }
                    for station in stations
                ]
                started = time.perf_counter()
                async with sessions() as session, session.begin():
                    await repository.commit_success(
                        session,
                        task_id,
                        "bench",
                        measurements=rows,
                        errors=[],
                        result={"receivers_selected": STATIONS},
                        then=("heimdall.localization.localize", [str(task_id)]),
                    )
                timings.append((time.perf_counter() - started) * 1e3)
        finally:
            await engine.dispose()
        return timings[20:]

    timings = asyncio.run(run())
    p50, p99 = percentile(timings, 50), percentile(timings, 99)
    report.add(
        f"DB write ending an acquisition ({STATIONS} measurement rows + state + outbox)",
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({iterations} runs)",
        "p99 <= 10 ms",
        p99 <= 10.0,
    )


def machine_probe(report: Report, runs: int = 15) -> None:
    """A fixed numpy and Python workload, no Heimdall code: how fast the machine is now.

    The same code read 25 % slower within half an hour on this shared VM (30 Nov
    evening); a run's figures read against this one tell the machine from the code.
    Its user and system CPU are printed apart: its FFTs' temporaries (2-4 MB) are
    mapped afresh each time, and on 1 Dec the page faults were 40 % of the probe
    (150-170 ms; 65-75 ms with glibc told to keep its heap) while the localization,
    which faults almost nothing, ran at the same speed either way. The user CPU is
    the figure to set beside the localization's.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    rows = (rng.standard_normal((8, 32_768)) + 1j * rng.standard_normal((8, 32_768))).astype(
        np.complex64
    )
    timings, user_ms, system_ms = [], [], []
    for _ in range(runs + 2):
        started, cpu_started = time.perf_counter(), resource.getrusage(resource.RUSAGE_THREAD)
        for _ in range(10):
            spectra = np.fft.fft(rows, axis=1)
            np.abs(np.fft.ifft(spectra * np.conj(spectra[0]), axis=1)).argmax(axis=1)
        total = 0
        for k in range(200_000):
            total += k & 7
        timings.append((time.perf_counter() - started) * 1e3)
        cpu = resource.getrusage(resource.RUSAGE_THREAD)
        user_ms.append((cpu.ru_utime - cpu_started.ru_utime) * 1e3)
        system_ms.append((cpu.ru_stime - cpu_started.ru_stime) * 1e3)
    report.add(
        "machine probe: 10 x (8 x 32768-point FFT, correlate) + a 200 000-step Python loop",
        f"p50 {percentile(timings[2:], 50):.1f} ms (CPU user {percentile(user_ms[2:], 50):.0f} "
        f"/ system {percentile(system_ms[2:], 50):.0f} ms)",
        "(the machine's speed)",
        None,
    )


def bench_localization(report: Report, task_ids: list[str], runs: int = 200) -> None:
    """``service.compute`` in this process over the stored acquisitions, ``runs`` times.

    200 runs, not 40: a p95 over 40 is the second-slowest run, which moved by ~10 ms
    from one run of the benchmark to the next (docs/BENCHMARKS.md); over 200 its
    order-statistic interval is printed beside it, and is meaningful.
    """
    from heimdall.core.db import session_scope
    from heimdall.core.storage import ObjectStore
    from heimdall.localization import service

    store = ObjectStore(SETTINGS)

    def localize_each(count: int) -> list[float]:
        """Milliseconds of ``service.compute`` for ``count`` runs over the acquisitions."""
        timings = []
        for index in range(count):
            task_id = uuid.UUID(task_ids[index % len(task_ids)])
            with session_scope() as session:
                started = time.perf_counter()
                service.compute(session, store, SETTINGS, task_id, method="auto")
                timings.append(1e3 * (time.perf_counter() - started))
                session.rollback()
        return timings

    timings = localize_each(runs + 3)[3:]  # the first ones warm what a worker keeps
    p50 = percentile(timings, 50)
    p95, p95_low, p95_high = quantile_interval(timings, 0.95)
    report.add(
        f"localization, {STATIONS} receivers x {DURATION_S:g} s (in-process, {runs} runs)",
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms (95 % interval {p95_low:.0f}-{p95_high:.0f} ms)",
        "p95 <= 50 ms",
        p95 <= 50.0,
    )
    if p95 > 50.0:  # where the time goes: this process and its lag process, the same runs
        profile = Profile(
            os.getpid(), "in-process localization and its lag process", sum(timings) / 1e3
        )
        localize_each(runs)  # idle samples after the runs are not recorded
        report.notes.append("```\n" + profile.summary() + "\n```")
    with db() as conn:
        served = [
            float(r[0])
            for r in conn.execute(
                "SELECT (detail->>'latency_ms')::float FROM localizations WHERE detail ? 'latency_ms'"
            )
        ]
    if served:
        report.add(
            f"localization as served by the compute worker during the runs ({len(served)})",
            f"p50 {percentile(served, 50):.0f} ms, p95 {percentile(served, 95):.0f} ms",
            "(under load)",
            None,
        )


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def write_benchmarks_md(report: Report, header: str) -> None:
    path = REPO / "docs" / "BENCHMARKS.md"
    text = path.read_text()
    section = f"{BENCH_BEGIN}\n{header}\n\n{report.markdown()}\n{BENCH_END}"
    if BENCH_BEGIN in text and BENCH_END in text:
        before, rest = text.split(BENCH_BEGIN, 1)
        after = rest.split(BENCH_END, 1)[1]
        text = before + section + after
    else:
        text = (
            text.rstrip("\n")
            + "\n\n## The whole stack (`benchmarks/bench_stack.py`, issue 13)\n\n"
            + section
            + "\n"
        )
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    prepare_computing_process()
    report = Report()
    load_before = load_average()
    started = time.monotonic()
    memory: MemorySampler | None = None
    localized: list[str] = []
    cleanup = contextlib.ExitStack()
    # Unwound last in, first out: the run's objects go before the S3 server stops.
    cleanup.callback(shutil.rmtree, STATE_DIR, ignore_errors=True)
    cleanup.enter_context(object_store_for_the_run())
    cleanup.callback(remove_everything)
    try:
        print(f"starting a stack of its own (state in {STATE_DIR}) ...", flush=True)
        with running_stack() as pids:
            print(f"components: {pids}", flush=True)
            bench_trigger(report, args.requests, pids.get("rf-acquisition"))
            bench_commit_flush(report)
            localized += bench_single(report)
            for count in args.concurrency:
                sampler: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
                if count == max(args.concurrency):
                    memory = MemorySampler(pids)
                    sampler = memory
                task_ids, wall_s, target_s = bench_concurrent(report, count, sampler)
                localized += task_ids[:5]
                if wall_s > target_s and "acquisition-worker" in pids:
                    profile = Profile(pids["acquisition-worker"], "acquisition worker", 2 * wall_s)
                    bench_concurrent(Report(quiet=True), count, contextlib.nullcontext())
                    report.notes.append("```\n" + profile.summary() + "\n```")
            if memory is not None:
                for name, kib in sorted(memory.peak_kib.items()):
                    worker = name == "acquisition-worker"
                    report.add(
                        f"peak memory, {name}, during {max(args.concurrency)} concurrent",
                        f"{kib / 1024:.0f} MB (PSS {memory.peak_pss_kib[name] / 1024:.0f} MB)",
                        "<= 500 MB" if worker else "–",
                        (kib / 1024 <= 500) if worker else None,
                    )
        bench_db_write(report)
        machine_probe(report)
        bench_localization(report, localized)
    finally:
        cleanup.close()
    load_after = load_average()
    header = (
        f"Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.monotonic() - started:.0f} s, "
        f"load average before {load_before}, after {load_after} (1/5/15 min), on the shared "
        "2-core machine: other work ran at the same time, so read these as upper bounds. "
        f"Receivers: {STATIONS} simulated KiwiSDRs with {CHANNELS} channels each; every "
        "acquisition records all of them. Missed: " + (", ".join(report.missed) or "none") + "."
    )
    print(header)
    if args.no_write:
        print("\n".join(report.notes))
    else:
        write_benchmarks_md(report, header)
        print("written to docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
