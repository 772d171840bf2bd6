"""Set-up of a computing process (service, Celery worker, benchmark) for steady latency.

* One BLAS thread. Heimdall's linear algebra is either small (3x3 normal equations,
  13x3 Jacobians) or long matrix-vector products in the TDOA peak refinement. OpenBLAS
  spreads the long ones over its own threads, which then spin for a while after every
  call: against the localization's own threads (then a second correlation thread), and
  against the ``localize`` that follows the lags, which ran 2-3x slower right after
  them. The parallelism Heimdall wants is its own (receivers, recordings read back).
* The objects alive at start-up frozen out of the garbage collector. A full collection
  walks every tracked object: with the ~140 000 of a process that has imported the
  stack, one took ~110 ms in the middle of a localization. Frozen, the long-lived
  start-up objects are no longer walked; what a request or task allocates still is.
"""

from __future__ import annotations

import gc
import os

from threadpoolctl import threadpool_limits


def limit_blas_threads() -> None:
    """Make every BLAS library of this process use a single thread, from now on.

    ``threadpool_limits`` reaches only the libraries already loaded, and numpy and scipy
    each bring their own OpenBLAS, which reads its thread count from the environment
    when it loads: that is set too, for what loads later (and for child processes). A
    process that limited before importing scipy's linear algebra kept two threads there,
    and under load a 6 x 6 triangular solve (the TDOA pair whitening) took 5-8 ms
    instead of 25 us, waiting for a second thread the scheduler ran late.
    """
    for variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    threadpool_limits(limits=1, user_api="blas")


def freeze_startup_objects() -> None:
    """Collect once, then move every surviving object out of future collections."""
    gc.collect()
    gc.freeze()


def prepare_computing_process() -> None:
    """Both of the above: call once the process has imported what it runs."""
    limit_blas_threads()
    freeze_startup_objects()
