"""One BLAS thread per computing process.

Heimdall's linear algebra is either small (3x3 normal equations, 13x3 Jacobians) or
long matrix-vector products in the TDOA peak refinement. OpenBLAS spreads the long
ones over its own threads, which then spin for a while after every call: against
the localization's second correlation thread, and against the ``localize`` that
follows the lags, which ran 2-3x slower right after them (docs/BENCHMARKS.md).
The services, the Celery workers and the benchmarks call ``limit_blas_threads``
once at start; the parallelism Heimdall wants is its own (receivers, lag pairs).
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def limit_blas_threads() -> None:
    """Make every BLAS library loaded in this process use a single thread, from now on."""
    threadpool_limits(limits=1, user_api="blas")
