"""The localization's speed on two or more git trees, alternated in one sitting (issue 13).

This shared 2-core VM runs the same localization code up to twice as slowly from one
day to the next, and no fixed probe tracks it (docs/BENCHMARKS.md, "Issue 13's
localization target, 1 Dec morning"). A figure from another day therefore says nothing
about a change; only trees timed alternately, on the same recordings, in the same
sitting, can be compared.

The realistic scenarios of ``bench_localization`` (every receiver GPS-timed) are
rendered once with this checkout's simulator and pickled; each tree, checked out in a
temporary worktree, builds its own receivers, readings and captures from the pickle's
plain values and times ``tdoa_observations_from_recordings`` and ``localize``
on them in a fresh interpreter with its own ``src`` (lag process on, default
calibration, production window), tree after tree, round after round. A tree whose
classes take other fields (a changed ``IQCapture``, say) is reported as failed.

Run: PYTHONPATH=src python benchmarks/compare_localization.py REV [REV ...]
[--captures 2 5] [--scenarios 20] [--rounds 2] [--seed 1]; ``.`` is the working tree
as it is (uncommitted changes included). Prints one line per tree, round and capture
length: wall p50 / p95 of lags + ``localize``, ``localize``'s own p50, and the CPU of
this process (the lag process's is not counted). Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
RUNS_PER_SCENARIO = 3


def render(path: Path, captures_s: list[float], count: int, seed: int) -> None:
    """``count`` realistic scenarios per capture length, as ``bench_localization`` makes them."""
    from bench_localization import sessions

    from heimdall.localization.service import power_observations

    # Plain values, not this tree's objects: a tree whose classes live in other modules
    # (or have other defaults) still reads them, and builds its own.
    rendered = {}
    for capture_s in captures_s:
        recorded, receivers = sessions(capture_s, count, seed)
        rendered[capture_s] = (
            [r.model_dump() for r in receivers],
            [
                (
                    [p.model_dump() for p in power_observations(rows)],
                    [
                        {
                            "station": r.station.model_dump(),
                            "capture": {
                                f.name: getattr(r.capture, f.name) for f in fields(r.capture)
                            },
                            "snr_db": r.snr_db,
                            "occupied_bandwidth_hz": r.occupied_bandwidth_hz,
                        }
                        for r in recordings
                    ],
                    frequency_hz,
                )
                for rows, recordings, frequency_hz in recorded
            ],
        )
    with path.open("wb") as file:
        pickle.dump(rendered, file)


def time_tree(path: Path, capture_s: float) -> dict[str, float]:
    """Run in the tree's own interpreter: milliseconds of each stage, p50 and p95."""
    import gc
    import resource
    import time

    import numpy as np

    from heimdall.core.process import prepare_computing_process
    from heimdall.core.settings import get_settings
    from heimdall.localization import PowerObservation, Receiver, localize
    from heimdall.localization.pairs import TimedRecording, tdoa_observations_from_recordings
    from heimdall.localization.service import default_calibration
    from heimdall.receivers.capture import IQCapture

    settings = get_settings()
    calibration = default_calibration(settings)
    with path.open("rb") as file:
        plain_receivers, plain_sessions = pickle.load(file)[capture_s]
    receivers = [Receiver(**r) for r in plain_receivers]
    recorded = [
        (
            [PowerObservation(**p) for p in powers],
            [
                TimedRecording(
                    station=Receiver(**r["station"]),
                    capture=IQCapture(**r["capture"]),
                    snr_db=r["snr_db"],
                    occupied_bandwidth_hz=r["occupied_bandwidth_hz"],
                )
                for r in recordings
            ],
            frequency_hz,
        )
        for powers, recordings, frequency_hz in plain_sessions
    ]
    localize(receivers, [], [])
    prepare_computing_process()

    def once(powers: list, recordings: list, frequency_hz: float) -> float:
        pairs = tdoa_observations_from_recordings(recordings, window_s=settings.tdoa_window_s)
        started_s = time.perf_counter()
        localize(receivers, powers, pairs, calibration, frequency_hz=frequency_hz)
        return 1e3 * (time.perf_counter() - started_s)

    for session in recorded[:3]:  # what a running worker has cached
        once(*session)
    totals_ms, localize_ms, cpu_ms = [], [], []
    for _ in range(RUNS_PER_SCENARIO):
        for session in recorded:
            gc.collect()
            started_s, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            localize_ms.append(once(*session))
            totals_ms.append(1e3 * (time.perf_counter() - started_s))
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu_ms.append(1e3 * (after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime))
    return {
        "p50_ms": float(np.percentile(totals_ms, 50)),
        "p95_ms": float(np.percentile(totals_ms, 95)),
        "localize_p50_ms": float(np.percentile(localize_ms, 50)),
        "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
    }


@contextlib.contextmanager
def checked_out(revisions: list[str]) -> Iterator[dict[str, Path]]:
    """Each revision's ``src`` in a temporary detached worktree (``.``: this checkout's)."""
    with tempfile.TemporaryDirectory(prefix="heimdall-compare-") as scratch:
        trees: dict[str, Path] = {}
        try:
            for number, revision in enumerate(revisions):
                if revision == ".":
                    trees[revision] = REPOSITORY / "src"
                    continue
                tree = Path(scratch) / f"tree{number}"
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(REPOSITORY),
                        "worktree",
                        "add",
                        "--detach",
                        "--quiet",
                        str(tree),
                        revision,
                    ],
                    check=True,
                )
                trees[revision] = tree / "src"
            yield trees
        finally:
            for revision, src in trees.items():
                if revision != ".":
                    subprocess.run(
                        [
                            "git",
                            "-C",
                            str(REPOSITORY),
                            "worktree",
                            "remove",
                            "--force",
                            str(src.parent),
                        ],
                        check=False,
                    )


def timed_in_tree(src: Path, rendered: Path, capture_s: float) -> str:
    """One tree's figures as a line of text: its own interpreter, its own ``src``."""
    answer = subprocess.run(
        [sys.executable, __file__, "--child", str(rendered), str(capture_s)],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
    )
    if answer.returncode != 0:
        return "failed (" + (answer.stderr.strip().splitlines() or ["?"])[-1] + ")"
    figures = json.loads(answer.stdout.strip().splitlines()[-1])
    return (
        f"p50 {figures['p50_ms']:.1f} / p95 {figures['p95_ms']:.1f} ms, "
        f"localize p50 {figures['localize_p50_ms']:.1f} ms, "
        f"CPU p50 {figures['cpu_p50_ms']:.1f} ms"
    )


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="*", help="git revisions; '.' is the working tree")
    parser.add_argument("--captures", type=float, nargs="+", default=[2.0])
    parser.add_argument("--scenarios", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("PICKLE", "CAPTURE_S"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_tree(Path(args.child[0]), float(args.child[1]))))
        return
    if not args.revisions:
        parser.error("name at least one revision")
    with tempfile.TemporaryDirectory(prefix="heimdall-compare-") as scratch:
        rendered = Path(scratch) / "sessions.pkl"
        render(rendered, args.captures, args.scenarios, args.seed)
        print(
            f"{args.scenarios} realistic scenarios (seed {args.seed}) x {RUNS_PER_SCENARIO} "
            f"runs per tree and round; load average before {load_average()}"
        )
        with checked_out(args.revisions) as trees:
            for round_number in range(1, args.rounds + 1):
                for capture_s in args.captures:
                    for revision, src in trees.items():
                        print(
                            f"round {round_number}, {capture_s:g} s captures, {revision:>12}: "
                            + timed_in_tree(src, rendered, capture_s),
                            flush=True,
                        )
    print(f"load average after {load_average()}")


if __name__ == "__main__":
    main()
