"""The computing processes run BLAS on one thread."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from heimdall.core.blas import limit_blas_threads


def test_limit_blas_threads_leaves_one_thread_per_blas_library() -> None:
    # From two threads (what the test machine's OpenBLAS starts with) down to one.
    assert np.ones((2, 2)) @ np.ones(2) is not None  # numpy's BLAS is loaded
    with threadpool_limits(limits=2, user_api="blas"):  # restored on exit
        limit_blas_threads()
        blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
        assert blas
        assert all(info["num_threads"] == 1 for info in blas)
