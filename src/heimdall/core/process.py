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
* Freed memory kept for the next request (glibc only). A localization allocates and
  frees tens of MB of ~1 MB arrays; glibc returns the freed top of its heap to the
  kernel, so the next one faults every page in afresh. The lag process did: ~2 100
  page faults, 4 of its 18 ms of CPU, in each call (docs/BENCHMARKS.md, issue 13).
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform

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


# mallopt(3) parameters of glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks at least this large are mapped apart, and unmapped when freed (glibc's own
#: ceiling for its adaptive threshold): the arrays of a localization stay below it.
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: Free memory at the top of the heap beyond this goes back to the kernel: above what
#: one localization frees at once, so the next one reuses it.
TRIM_THRESHOLD_BYTES = 256 * 2**20


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the
    kernel after every large free (which page-faults it back in on the next request).

    glibc adapts both thresholds to the largest block freed so far (trimming the heap's
    free top beyond twice it), so a call that frees many blocks of one size gives most
    of them back. Fixed here: the resident memory stays at the process's working peak,
    which the services' memory figures measure anyway. False where the C library is
    not glibc (nothing set).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def freeze_startup_objects() -> None:
    """Collect once, then move every surviving object out of future collections."""
    gc.collect()
    gc.freeze()


def prepare_computing_process() -> None:
    """All of the above: call once the process has imported what it runs."""
    limit_blas_threads()
    keep_freed_memory()
    freeze_startup_objects()
