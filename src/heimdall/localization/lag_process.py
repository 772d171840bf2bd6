"""A second process for half of a reference's pairs: the lag stage on the second core.

The lag stage is numpy work in many small calls: threads hold the GIL between them too
often to share the second core (two threads ran the stage slower than one). A process
has its own interpreter. It is a child started with ``subprocess`` that answers calls
over a ``multiprocessing`` pipe, not a ``ProcessPoolExecutor``: the compute worker's
Celery children are daemonic, and ``multiprocessing`` refuses children to those.

One call at a time, sent before the caller does its own half and answered after; a
caller that finds it busy (another localization of the same process) or dead does the
work itself. The child ends when the pipe closes, which is
when the process it serves ends, however it ends.

    python -m heimdall.localization.lag_process <fd>   (started by LagProcess, not by hand)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import Any, TypeVar

R = TypeVar("R")

#: A call not answered within this is given up (and the child with it): the caller
#: does the work itself. A half star of 5 s captures takes well under a second.
CALL_TIMEOUT_S = 30.0


class LagProcessUnavailable(RuntimeError):
    """The lag process is busy with another call, starting up too slowly, or gone."""


class LagProcess:
    """A child process that runs the picklable calls it is sent, one at a time."""

    def __init__(self) -> None:
        ours, theirs = Pipe()
        self._connection: Connection = ours
        self._child = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()  # the child holds the only other end: its closing is our EOF
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._child.pid

    def alive(self) -> bool:
        return self._child.poll() is None

    def send(self, function: Callable[..., R], *args: Any) -> Callable[[], R]:
        """Send ``function(*args)`` to the child; returns what waits for its answer.

        Both raise LagProcessUnavailable when the child is busy with another call or
        gone (then it is stopped, and ``lag_process`` starts another next time)."""
        if not self._lock.acquire(blocking=False):
            raise LagProcessUnavailable("busy with another call")
        try:
            self._connection.send((function, args))
        except OSError as exc:
            self._lock.release()
            self.stop()
            raise LagProcessUnavailable(str(exc)) from exc

        def answer() -> R:
            try:
                if not self._connection.poll(CALL_TIMEOUT_S):
                    raise LagProcessUnavailable(f"no answer within {CALL_TIMEOUT_S:g} s")
                failed, value = self._connection.recv()
            except (OSError, EOFError, LagProcessUnavailable) as exc:
                self.stop()
                raise LagProcessUnavailable(str(exc) or "the lag process ended") from exc
            finally:
                self._lock.release()
            if failed:
                raise value
            result: R = value
            return result

        return answer

    def stop(self) -> None:
        self._connection.close()
        if self.alive():
            self._child.kill()
        self._child.wait()


_lock = threading.Lock()
_process: LagProcess | None = None


def lag_process() -> LagProcess:
    """This process's lag process, started on first use and again after it died."""
    global _process
    with _lock:
        if _process is None or not _process.alive():
            _process = LagProcess()
        return _process


def _forget_in_child() -> None:
    # A forked child (a prefork worker) must not share its parent's pipe: it starts its
    # own, and closes its copy of the parent's end, so that the parent's lag process
    # still sees EOF when the parent ends.
    global _process, _lock
    if _process is not None:
        _process._connection.close()
    _process, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def serve(connection: Connection) -> None:
    """Answer calls until the other end closes: ``(failed, value)`` for each."""
    from heimdall.core.process import prepare_computing_process
    from heimdall.localization import pairs  # noqa: F401  (what it is sent: imported once)

    prepare_computing_process()
    while True:
        try:
            function, args = connection.recv()
        except EOFError:  # the process it served has ended
            return
        try:
            answer: tuple[bool, Any] = (False, function(*args))
        except Exception as exc:  # the caller's to raise
            answer = (True, exc)
        connection.send(answer)


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
