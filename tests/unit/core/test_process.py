"""The computing processes run BLAS on one thread and freeze their start-up objects."""

from __future__ import annotations

import gc

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


def test_freeze_startup_objects_keeps_them_out_of_collections() -> None:
    survivors = [[index] for index in range(1_000)]  # lists: tracked by the collector
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= len(survivors)
        collectable = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
        assert not any(id(item) in collectable for item in survivors)
    finally:
        gc.unfreeze()
