"""A child process that runs the picklable calls it is sent, one at a time.

For CPU work that threads cannot share: numpy in many small calls holds the GIL between
them too often (the localization's lag stage ran slower on two threads than on one). A
child is its own interpreter, on the other core. It is started with ``subprocess`` and
answers over a ``multiprocessing`` pipe; not a ``ProcessPoolExecutor``, because the
compute worker's Celery children are daemonic and ``multiprocessing`` refuses children
to those.

A call is sent before the caller does its own share and answered after; a caller that
finds the child busy (another call of the same process) or gone does the work itself.
The child imports only ``preload`` (and what the calls it is sent need), and ends when
the pipe closes, which is when the process it serves ends, however it ends.

    python -m heimdall.core.call_process <fd> <preload>   (started by CallProcess)
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import Any, TypeVar

R = TypeVar("R")

#: A call not answered within this is given up (and the child with it): the caller
#: does the work itself. The calls this serves take well under a second.
CALL_TIMEOUT_S = 30.0


class CallProcessUnavailable(RuntimeError):
    """The child is busy with another call, starting up too slowly, or gone."""


class CallProcess:
    """A child process that runs the picklable calls it is sent, one at a time.

    ``preload``: the module it imports at start (the calls' own), so that the first call
    does not wait for it.
    """

    def __init__(self, preload: str) -> None:
        ours, theirs = Pipe()
        self._connection: Connection = ours
        self._child = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno()), preload],
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
        """Send ``function(*args)`` to the child; returns what waits for its answer, which
        the caller must call (the child stays busy until its answer is read).

        Both raise CallProcessUnavailable when the child is busy with another call or
        gone (then it is stopped: ``alive`` is False, and its owner starts another)."""
        if not self._lock.acquire(blocking=False):
            raise CallProcessUnavailable("busy with another call")
        try:
            self._connection.send((function, args))
        except OSError as exc:  # the child is gone
            self._lock.release()
            self.stop()
            raise CallProcessUnavailable(str(exc)) from exc
        except BaseException:  # e.g. arguments that do not pickle: nothing was written
            self._lock.release()
            raise

        def answer() -> R:
            try:
                if not self._connection.poll(CALL_TIMEOUT_S):
                    raise CallProcessUnavailable(f"no answer within {CALL_TIMEOUT_S:g} s")
                failed, value = self._connection.recv()
            except (OSError, EOFError, CallProcessUnavailable) as exc:
                self.stop()
                raise CallProcessUnavailable(str(exc) or "the child ended") from exc
            finally:
                self._lock.release()
            if failed:
                raise value
            result: R = value
            return result

        return answer

    def close_inherited(self) -> None:
        """In a forked child: close this copy of the pipe, without touching the process
        (the parent's), so that it still sees EOF when the parent ends."""
        self._connection.close()

    def stop(self) -> None:
        self._connection.close()
        if self.alive():
            self._child.kill()
        self._child.wait()


def serve(connection: Connection, preload: str) -> None:
    """Answer calls until the other end closes: ``(failed, value)`` for each."""
    from heimdall.core.process import prepare_computing_process

    importlib.import_module(preload)
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
    serve(Connection(int(sys.argv[1])), sys.argv[2])
