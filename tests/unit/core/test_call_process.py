"""A call process's arguments: arrays cross in shared memory, equal, whatever their size."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

from heimdall.core.call_process import CallProcess


@pytest.fixture(scope="module")
def child() -> Iterator[CallProcess]:
    process = CallProcess(preload="numpy")
    yield process
    process.stop()


def _checksum(arrays: list[np.ndarray]) -> list[tuple[str, tuple[int, ...], float]]:
    return [(str(a.dtype), a.shape, float(np.sum(np.abs(a), dtype=np.float64))) for a in arrays]


def test_arrays_arrive_equal_as_the_arena_grows_and_shrinks(child: CallProcess) -> None:
    rng = np.random.default_rng(3)
    for count in (10, 200_000, 1_000, 600_000, 7):
        arrays = [
            (rng.standard_normal(count) + 1j * rng.standard_normal(count)).astype(np.complex64),
            rng.integers(0, 1 << 40, size=count // 2 + 1, dtype=np.int64),
            rng.standard_normal((3, count // 3 + 1))[:, ::2],  # not contiguous: in band
        ]
        assert child.send(_checksum, arrays)() == _checksum(arrays)


def test_a_large_array_does_not_go_through_the_pipe(child: CallProcess) -> None:
    samples = np.ones(500_000, dtype=np.complex64)  # 4 MB
    message = child._message(_checksum, ([samples],))
    if not hasattr(os, "memfd_create"):
        pytest.skip("no memfd on this platform: arrays go through the pipe")
    assert len(message) < 10_000
    # The arena was written for that message: the child must still be able to read it.
    child._connection.send_bytes(message)
    assert child._connection.recv() == (False, _checksum([samples]))


def _holds(fd: int, inode: int) -> bool:
    try:
        return os.fstat(fd).st_ino == inode
    except OSError:
        return False


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="no memfd on this platform")
def test_a_forked_child_lets_go_of_its_parents_arena() -> None:
    # A prefork worker child starts a lag process of its own; the parent's arena,
    # inherited by the fork, is closed there (as the parent's pipe end is).
    from heimdall.localization.lag_process import lag_process

    parent_process = lag_process()
    assert parent_process.send(abs, np.ones(3) * -1)().tolist() == [1.0, 1.0, 1.0]
    arena = parent_process._arena
    assert arena is not None
    inode = os.fstat(arena.fd).st_ino
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it still holds the arena, and leave
        os.close(read_end)
        os.write(write_end, b"1" if _holds(arena.fd, inode) else b"0")
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as said:
        held_by_child = said.read()
    os.waitpid(pid, 0)
    assert held_by_child == "0"
    assert _holds(arena.fd, inode)
    assert parent_process.send(abs, -2)() == 2  # the parent's still serves
