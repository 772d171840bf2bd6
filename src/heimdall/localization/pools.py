"""Thread pools of the localization, started once per process and forgotten in a fork.

An S3 GET mostly waits on the store: the recordings' reads overlap on threads. A pool
per localization spent about a millisecond starting and joining its threads, so each
pool lives as long as the process. The correlations have none: their per-pair numpy
calls are too short to overlap, and on two threads they cost more CPU for no less wall
time (GIL convoys; docs/BENCHMARKS.md, issue 13).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

#: GETs to S3 at once (the samples of each recording, and its metadata when its row does
#: not carry it: up to 8 recordings' two objects): each mostly waits on the store, not
#: the CPU. The store client keeps as many connections.
READ_WORKERS = 16

_pool_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def _named_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """A thread pool started once per process (a pool per localization spent about a
    millisecond starting and joining its threads)."""
    with _pool_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return pool


def read_pool() -> ThreadPoolExecutor:
    """The threads recordings are read back from the object store on."""
    return _named_pool("recording-read", READ_WORKERS)


def forget_pools() -> None:
    """In a forked child (a prefork worker): the parent's pool objects came along, their
    threads did not, and the lock may have been held by one of them."""
    global _pools, _pool_lock
    _pools, _pool_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=forget_pools)
