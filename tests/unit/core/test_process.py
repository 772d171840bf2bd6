"""The computing processes run BLAS on one thread and freeze their start-up objects."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from heimdall.core.process import freeze_startup_objects, limit_blas_threads


def test_limit_blas_threads_leaves_one_thread_per_blas_library() -> None:
    # From two threads (what the test machine's OpenBLAS starts with) down to one.
    assert np.ones((2, 2)) @ np.ones(2) is not None  # numpy's BLAS is loaded
    with threadpool_limits(limits=2, user_api="blas"):  # restored on exit
        limit_blas_threads()
        blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
        assert blas
        assert all(info["num_threads"] == 1 for info in blas)


def test_limit_blas_threads_also_reaches_libraries_not_imported_yet() -> None:
    # A fresh interpreter that limits before it imports numpy or scipy (a service whose
    # linear algebra is imported lazily) still gets one thread in every BLAS.
    program = (
        "import json\n"
        "from threadpoolctl import threadpool_info\n"
        "from heimdall.core.process import limit_blas_threads\n"
        "limit_blas_threads()\n"
        "import numpy, scipy.linalg\n"
        "print(json.dumps([i['num_threads'] for i in threadpool_info()"
        " if i['user_api'] == 'blas']))\n"
    )
    # Two threads unless limited, whatever the machine's core count.
    environment = {"OPENBLAS_NUM_THREADS": "2", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", program], env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    threads = json.loads(done.stdout)
    assert len(threads) >= 2  # numpy's and scipy's
    assert threads == [1] * len(threads)


def test_freeze_startup_objects_keeps_them_out_of_collections() -> None:
    survivors = [[index] for index in range(1_000)]  # lists: tracked by the collector
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= len(survivors)
        collectable = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
        assert not any(id(item) in collectable for item in survivors)
    finally:
        gc.unfreeze()


def _page_faults_of_repeated_frees(keep: bool) -> int:
    """Minor page faults of the second and later rounds of allocating and freeing 32
    arrays of 1 MB (a localization's pattern), in a fresh interpreter."""
    program = (
        "import resource, sys\n"
        "import numpy as np\n"
        "from heimdall.core.process import keep_freed_memory\n"
        "if sys.argv[1] == 'keep': assert keep_freed_memory()\n"
        "def round_():\n"
        "    arrays = [np.ones(2**17) for _ in range(32)]\n"  # 32 x 1 MB
        "    del arrays\n"
        "round_()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(5): round_()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "keep" if keep else "default"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_keep_freed_memory_stops_refaulting_the_same_memory() -> None:
    # glibc's defaults give the freed top of the heap back after each round, and the
    # next round faults its 32 MB in again: ~8 000 pages a round. Kept, it is reused.
    assert _page_faults_of_repeated_frees(keep=False) > 5 * 4_000
    assert _page_faults_of_repeated_frees(keep=True) < 1_000
