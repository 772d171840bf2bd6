"""kiwirecorder WAV files built byte by byte, independently of ``imports.kiwi_wav``'s writer."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np


def chunk(name: bytes, body: bytes, size: int | None = None) -> bytes:
    pad = b"\0" if len(body) % 2 else b""
    return struct.pack("<4sI", name, len(body) if size is None else size) + body + pad


def fmt_chunk(rate_hz: int = 12001, channels: int = 2, bits: int = 16, tag: int = 1) -> bytes:
    align = channels * bits // 8
    return chunk(
        b"fmt ", struct.pack("<HHIIHH", tag, channels, rate_hz, rate_hz * align, align, bits)
    )


def kiwi_chunk(status: int, seconds: int, nanoseconds: int, size: int | None = None) -> bytes:
    return chunk(b"kiwi", struct.pack("<BBII", status, 0, seconds, nanoseconds), size)


def iq_chunk(pairs: Sequence[tuple[int, int]] | np.ndarray, size: int | None = None) -> bytes:
    return chunk(b"data", np.asarray(pairs, dtype="<i2").tobytes(), size)


def riff(*chunks: bytes, riff_size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def kiwi_file(
    stamps: Sequence[tuple[int, int, int]],
    pairs_per_block: int = 512,
    rate_hz: int = 12001,
    seed: int = 1,
) -> bytes:
    """A file of one block per (status, gpssec, gpsnsec) stamp, of random int16 IQ."""
    rng = np.random.default_rng(seed)
    chunks = [fmt_chunk(rate_hz)]
    for status, seconds, nanoseconds in stamps:
        chunks.append(kiwi_chunk(status, seconds, nanoseconds))
        chunks.append(iq_chunk(rng.integers(-3000, 3000, size=(pairs_per_block, 2))))
    return riff(*chunks)


def regular_stamps(
    blocks: int, start_s: int = 100_000, rate_hz: float = 12001.135, status: int = 2
) -> list[tuple[int, int, int]]:
    """Stamps of consecutive 512-sample blocks at ``rate_hz`` from GPS second ``start_s``."""
    times_ns = start_s * 10**9 + np.round(np.arange(blocks) * 512 * 1e9 / rate_hz).astype(np.int64)
    return [(status, int(t // 10**9), int(t % 10**9)) for t in times_ns]
