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
