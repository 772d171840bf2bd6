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

A call's arrays do not go through the pipe: pickled out of band (protocol 5), they are
copied into memory both processes map (a ``memfd``), and the child's unpickled arrays
are views of it. Through the pipe, 0.8 MB of captures took ~3 ms of the caller's time,
blocked in ``write`` while the child read 64 kB at a time; the copy takes ~0.1 ms.
Where ``os.memfd_create`` is missing (not Linux) they go through the pipe.

    python -m heimdall.core.call_process <fd> <preload> [<arena fd>]   (by CallProcess)
"""

from __future__ import annotations

import importlib
import mmap
import os
import pickle
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


#: Where each out-of-band buffer starts in the arena: a multiple of this, so that the
#: child's arrays are as aligned as freshly allocated ones.
ARENA_ALIGNMENT = 64


class CallProcessUnavailable(RuntimeError):
    """The child is busy with another call, starting up too slowly, or gone."""


class _Arena:
    """Memory shared with the child (a memfd both map), grown to the largest call."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("heimdall-call-process")
        self.memory: mmap.mmap | None = None

    def write(self, buffers: list[pickle.PickleBuffer]) -> tuple[int, list[tuple[int, int]]]:
        """Copy ``buffers`` in; the arena's size and each buffer's (offset, length)."""
        spans, end = [], 0
        for buffer in buffers:
            length = buffer.raw().nbytes
            spans.append((end, length))
            end += -(-length // ARENA_ALIGNMENT) * ARENA_ALIGNMENT
        if self.memory is None or len(self.memory) < end:
            size = end
            if self.memory is not None:
                size = max(end, 2 * len(self.memory))
                self.memory.close()
            os.ftruncate(self.fd, size)
            self.memory = mmap.mmap(self.fd, size)
        for buffer, (offset, length) in zip(buffers, spans, strict=True):
            self.memory[offset : offset + length] = buffer.raw()
        return len(self.memory), spans

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()
        os.close(self.fd)


class CallProcess:
    """A child process that runs the picklable calls it is sent, one at a time.

    ``preload``: the module it imports at start (the calls' own), so that the first call
    does not wait for it.
    """

    def __init__(self, preload: str) -> None:
        ours, theirs = Pipe()
        self._connection: Connection = ours
        self._arena = _Arena() if hasattr(os, "memfd_create") else None
        command = [sys.executable, "-m", __name__, str(theirs.fileno()), preload]
        fds = [theirs.fileno()]
        if self._arena is not None:
            command.append(str(self._arena.fd))
            fds.append(self._arena.fd)
        self._child = subprocess.Popen(command, pass_fds=fds, stdin=subprocess.DEVNULL)
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
            self._connection.send_bytes(self._message(function, args))
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

    def _message(self, function: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
        """The call, pickled; its arrays copied into the arena when there is one."""
        if self._arena is None:
            return pickle.dumps((function, args, 0, []), protocol=5)
        buffers: list[pickle.PickleBuffer] = []
        call = pickle.dumps((function, args), protocol=5, buffer_callback=buffers.append)
        size, spans = self._arena.write(buffers) if buffers else (0, [])
        return pickle.dumps((call, None, size, spans), protocol=5)

    def close_inherited(self) -> None:
        """In a forked child: close this copy of the pipe, without touching the process
        (the parent's), so that it still sees EOF when the parent ends."""
        self._connection.close()
        if self._arena is not None:  # this copy's mapping and descriptor only
            self._arena.close()
            self._arena = None

    def stop(self) -> None:
        self._connection.close()
        if self.alive():
            self._child.kill()
        self._child.wait()
        if self._arena is not None:
            self._arena.close()
            self._arena = None


class _ArenaReader:
    """The child's side of the arena: the caller's arrays, as views of it."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.memory: mmap.mmap | None = None

    def buffers(self, size: int, spans: list[tuple[int, int]]) -> list[memoryview]:
        if not spans:
            return []
        if self.memory is None or len(self.memory) != size:
            # The caller grew it. A view of the old mapping that outlived its call
            # keeps that mapping alive: it is dropped, never closed.
            assert self.fd is not None, "arrays sent to a child without an arena"
            self.memory = mmap.mmap(self.fd, size)
        view = memoryview(self.memory)
        return [view[offset : offset + length] for offset, length in spans]


def _answer(message: bytes, arena: _ArenaReader) -> tuple[bool, Any]:
    """Run the call ``message`` holds: ``(failed, value)``. The call's arguments (views
    of the arena) go with this frame."""
    try:
        call, args, size, spans = pickle.loads(message)
        if args is None:  # the call is pickled with its arrays in the arena
            call, args = pickle.loads(call, buffers=arena.buffers(size, spans))
        return False, call(*args)
    except Exception as exc:  # the caller's to raise
        return True, exc


def serve(connection: Connection, preload: str, arena_fd: int | None = None) -> None:
    """Answer calls until the other end closes: ``(failed, value)`` for each."""
    from heimdall.core.process import prepare_computing_process

    importlib.import_module(preload)
    prepare_computing_process()
    arena = _ArenaReader(arena_fd)
    while True:
        try:
            message = connection.recv_bytes()
        except EOFError:  # the process it served has ended
            return
        connection.send(_answer(message, arena))


if __name__ == "__main__":
    serve(
        Connection(int(sys.argv[1])),
        sys.argv[2],
        int(sys.argv[3]) if len(sys.argv) > 3 else None,
    )
