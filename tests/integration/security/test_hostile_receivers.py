"""Receivers run by strangers: hostile ones in an acquisition with the simulated network.

Each hostile receiver below is a real server on loopback, driven by the real KiwiSDR
and OpenWebRX clients inside the real acquisition worker. The acquisition asks for
every simulated receiver and every hostile one at once. Each hostile one must end as
its own per-receiver error within its timeout, the worker's memory must stay bounded
(its resident size is sampled from /proc while it runs) and every simulated receiver
must still be measured.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from sqlalchemy import text
from websockets.asyncio.server import ServerConnection, serve

from heimdall.acquisition.service import registry_cache
from heimdall.core.db import sync_engine
from heimdall.core.settings import Settings
from tests.integration.acquisition.test_acquisition_e2e import STATIONS, acquire, wait_finished
from tests.integration.conftest import MUTABLE_TABLES
from tests.support.processes import ManagedProcess
from tests.unit.receivers.fake_kiwisdr import (
    Behaviour,
    FakeKiwi,
    Session,
    accept_websocket,
    iq_frame,
    raw_server,
    unmasked_binary_frame_header,
)

DURATION_S = 2.0
SAMPLE_RATE_HZ = 12001.135
#: What a hostile peer pushes at the client when it reads: far more than the bound below.
FLOOD_BYTES = 256 * 2**20
#: The worker's resident size may grow this much during the acquisition, at most.
MEMORY_BOUND_BYTES = 96 * 2**20
CHUNK = np.random.default_rng(14).integers(0, 256, 2**16, np.uint8).tobytes()


async def _spew(writer: asyncio.StreamWriter, prefix: bytes = b"") -> None:
    writer.write(prefix)
    for _ in range(FLOOD_BYTES // len(CHUNK)):
        writer.write(CHUNK)
        await writer.drain()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Random bytes instead of an HTTP answer."""
    await _spew(writer)


async def absurd_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A websocket frame announcing 2**62 bytes, then bytes for ever."""
    await accept_websocket(reader, writer)
    await _spew(writer, unmasked_binary_frame_header(2**62))


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The HTTP answer at one byte per second."""
    await reader.readuntil(b"\r\n\r\n")
    for byte in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1.0)


async def redirect_loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request is sent back to the same server (a new path each time)."""
    request = await reader.readuntil(b"\r\n\r\n")
    host = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"host:")
    )
    writer.write(
        b"HTTP/1.1 302 Found\r\nLocation: ws://"
        + host
        + f"/{time.monotonic_ns()}".encode()
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
    await writer.drain()


async def tls_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A TLS ServerHello where an HTTP answer belongs (a receiver behind HTTPS only)."""
    await reader.read(4096)
    hello = b"\x16\x03\x03\x00\x31\x02\x00\x00\x2d\x03\x03" + bytes(range(32)) + b"\x00\x13\x01"
    writer.write(hello + b"\x15\x03\x03\x00\x02\x02\x28")
    await writer.drain()
    await asyncio.sleep(30)


class NestedConfigKiwi(FakeKiwi):
    """A KiwiSDR whose load_cfg is JSON nested deeper than any parser recurses."""

    def msg_groups(self) -> dict[str, list[str]]:
        groups = super().msg_groups()
        groups["auth"] = [
            p if not p.startswith("load_cfg=") else "load_cfg=" + quote("[" * 20_000)
            for p in groups["auth"]
        ]
        return groups


class FloodKiwi(FakeKiwi):
    """A KiwiSDR streaming for ever at ten times its announced sample rate, paced on
    the absolute clock (a late wake-up sends the blocks it owes at once)."""

    async def _stream(self, ws: ServerConnection, session: Session) -> None:
        b = self.behaviour
        started = time.monotonic()
        block = 0
        while True:
            due = started + block * 512 / (10 * b.sample_rate_hz)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await ws.send(iq_frame(b, block, b.first_sequence + block))
            block += 1


@asynccontextmanager
async def serving(kiwi: FakeKiwi) -> AsyncIterator[FakeKiwi]:
    async with serve(kiwi.handler, "127.0.0.1", 0, compression=None, max_size=2**16) as server:
        kiwi.port = server.sockets[0].getsockname()[1]
        yield kiwi


def realtime() -> Behaviour:
    return Behaviour(
        sample_rate_hz=SAMPLE_RATE_HZ,
        start_utc_ns=time.time_ns(),
        block_interval_s=512 / SAMPLE_RATE_HZ,
    )


# station id -> (protocol, what its error must say)
EXPECTED = {
    "h-garbage": ("kiwisdr", "handshake"),
    "h-length": ("kiwisdr", "larger than"),
    "h-flood": ("kiwisdr", "faster than"),
    "h-drip": ("kiwisdr", "no connection"),
    "h-redirect": ("kiwisdr", "handshake"),
    # Waits for an HTTP line that never comes: the connect timeout ends it.
    "h-tls": ("kiwisdr", "within"),
    "h-owrx-tls": ("openwebrx", ""),
}
NESTED_CONFIG = "h-config"  # recorded: its configuration only adds metadata


@asynccontextmanager
async def hostile_network() -> AsyncIterator[dict[str, str]]:
    """Station id -> URL of every hostile receiver, running on this event loop."""
    async with AsyncExitStack() as stack:
        urls = {
            "h-garbage": await stack.enter_async_context(raw_server(garbage)),
            "h-length": await stack.enter_async_context(raw_server(absurd_length)),
            "h-drip": await stack.enter_async_context(raw_server(drip)),
            "h-redirect": await stack.enter_async_context(raw_server(redirect_loop)),
            "h-tls": await stack.enter_async_context(raw_server(tls_handshake)),
        }
        urls["h-owrx-tls"] = urls["h-tls"].replace("ws://", "http://")
        urls["h-flood"] = (await stack.enter_async_context(serving(FloodKiwi(realtime())))).url
        urls[NESTED_CONFIG] = (
            await stack.enter_async_context(serving(NestedConfigKiwi(realtime())))
        ).url
        yield urls


@contextmanager
def registered(urls: dict[str, str]) -> Iterator[None]:
    rows = [
        {
            "id": station_id,
            "url": url,
            "protocol": EXPECTED.get(station_id, ("kiwisdr", ""))[0],
        }
        for station_id, url in urls.items()
    ]
    with sync_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO websdr_stations (id, name, url, protocol, latitude, longitude, "
                "frequency_ranges_mhz) VALUES (:id, :id, :url, :protocol, 45.1, 7.6, "
                "'[[100, 500]]')"
            ),
            rows,
        )
    registry_cache._read_at = -float("inf")
    try:
        yield
    finally:
        with sync_engine().begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(MUTABLE_TABLES)} CASCADE"))
            conn.execute(text("DELETE FROM websdr_stations WHERE id LIKE 'h-%'"))
        registry_cache._read_at = -float("inf")


def tree_rss_bytes(pid: int) -> int:
    """Resident size of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    total, stack = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        current = stack.pop()
        with suppress(OSError):  # it ended meanwhile
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
        stack.extend(children.get(current, []))
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.baseline = tree_rss_bytes(pid)
        self.peak = self.baseline
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            self.peak = max(self.peak, tree_rss_bytes(self.pid))


@pytest.mark.timeout(120)
async def test_hostile_receivers_end_as_their_own_errors_and_memory_stays_bounded(
    api: httpx.AsyncClient, acquisition_worker: ManagedProcess, settings: Settings
) -> None:
    async with hostile_network() as urls:
        with registered(urls):
            sampler = PeakSampler(acquisition_worker.process.pid)
            sampler.start()
            started = time.monotonic()
            task_id = await acquire(
                api,
                frequency_mhz=145.5,
                duration_seconds=DURATION_S,
                stations=sorted(STATIONS | set(urls)),
            )
            state = await wait_finished(api, task_id, timeout_s=90)
            elapsed_s = time.monotonic() - started
            sampler.stopped.set()
            sampler.join()
            measured = {
                m["websdr_id"]
                for m in (await api.get(f"/api/v1/acquisition/measurements/{task_id}")).json()
            }

    errors = {e["station_id"]: e["error"] for e in state["errors"]}
    growth = sampler.peak - sampler.baseline
    print(
        f"hostile receivers: {elapsed_s:.1f} s, worker RSS {sampler.baseline / 2**20:.0f} MiB "
        f"-> peak {sampler.peak / 2**20:.0f} MiB (+{growth / 2**20:.1f} MiB); errors: {errors}"
    )
    assert state["state"] == "SUCCESS", state
    # Every simulated receiver measured, unaffected by its hostile neighbours.
    assert measured >= STATIONS, (measured, errors)
    # Every hostile receiver ended as its own error, saying what it did.
    assert set(errors) == set(EXPECTED), errors
    for station_id, (_, says) in EXPECTED.items():
        assert station_id in errors[station_id] and says in errors[station_id], errors
    # Metadata the driver cannot parse costs nothing but the metadata.
    assert NESTED_CONFIG in measured, errors.get(NESTED_CONFIG)
    # Within the receivers' timeouts (the drip is the slowest: the connect timeout).
    limit_s = (
        DURATION_S + settings.receiver_connect_timeout_s + settings.receiver_first_frame_timeout_s
    )
    assert elapsed_s < limit_s + 5, elapsed_s
    assert growth < MEMORY_BOUND_BYTES, f"worker grew {growth / 2**20:.0f} MiB"
