"""A scripted KiwiSDR peer for the client tests: a real websocket server on 127.0.0.1.

:class:`FakeKiwi` speaks the sound-channel protocol the way the real server
does (everything sent as binary frames, audio only after the client has sent
``AR OK``, mode, frequency and AGC) and can be told to misbehave: refuse,
reorder its messages, stall, drop, skip a sequence number, send malformed or
oversized frames. It records what the client sent so tests can check the
handshake. :func:`raw_server` is a bare TCP peer for tests that need bytes no
websocket library would produce.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import ServerConnection, serve

from heimdall.receivers.gps import GPS_EPOCH_UNIX_S, GPS_UTC_OFFSET_S, SECONDS_PER_WEEK

NS_PER_S = 1_000_000_000
SAMPLES_PER_BLOCK = 512

#: 2023-11-14T22:13:20Z: where the fake receiver's first sample is, unless told otherwise.
DEFAULT_START_UTC_NS = 1_700_000_000 * NS_PER_S
RX_GPS = (45.02, 7.29)


def expected_iq_int16(first_sample: int, n_samples: int) -> tuple[npt.NDArray[np.int16], ...]:
    """The fake receiver's known content: I and Q of global samples ``first_sample``...

    Distinct, full-range values (including -32768) so that any byte-order or
    scaling mistake shows up.
    """
    m = np.arange(first_sample, first_sample + n_samples, dtype=np.int64)
    i = ((m * 7919) % 65536 - 32768).astype(np.int16)
    q = (32767 - (m * 104729) % 65536).astype(np.int16)
    return i, q


def expected_iq(first_sample: int, n_samples: int) -> npt.NDArray[np.complex64]:
    i, q = expected_iq_int16(first_sample, n_samples)
    return (i.astype(np.float32) / 32768 + 1j * (q.astype(np.float32) / 32768)).astype(np.complex64)


def gps_time_of_week(utc_ns: int) -> tuple[int, int]:
    """(GPS seconds of week, ns) of a UTC instant, written independently of the client."""
    gps_ns = utc_ns - GPS_EPOCH_UNIX_S * NS_PER_S + GPS_UTC_OFFSET_S * NS_PER_S
    seconds, nanoseconds = divmod(gps_ns, NS_PER_S)
    return seconds % SECONDS_PER_WEEK, nanoseconds


def block_utc_ns(start_utc_ns: int, block: int, sample_rate_hz: float) -> int:
    return start_utc_ns + round(block * SAMPLES_PER_BLOCK * NS_PER_S / sample_rate_hz)


@dataclass
class Behaviour:
    """How the fake receiver behaves; the defaults are a healthy GPS-equipped KiwiSDR."""

    password: str = ""
    sample_rate_hz: float = 12001.135
    audio_rate: int = 12000
    #: MSG groups in sending order: "auth" (rx_chans, badp=0, version, load_cfg),
    #: "sound" (center_freq, audio_rate), "rate" (sample_rate).
    msg_order: tuple[str, ...] = ("auth", "sound", "rate")
    #: How many of ``msg_order``'s groups go out before the client's auth is read.
    groups_before_auth: int = 0
    #: MSG payload sent instead of the auth replies (a refusal), e.g. "too_busy=4".
    refusal: str | None = None
    #: Send the refusal as soon as the websocket opens and close at once, before auth.
    refuse_on_connect: bool = False
    text_frames: bool = False
    little_endian: bool = False
    first_sequence: int = 1
    start_utc_ns: int = DEFAULT_START_UTC_NS
    gps_status: int = 3
    smeter: int = 470
    #: Stop sending after this many blocks but keep the connection open.
    stall_after: int | None = None
    #: Abort the TCP connection after this many blocks.
    drop_after: int | None = None
    #: Skip one sequence number after this many blocks.
    gap_after: int | None = None
    #: Seconds between blocks (0: as fast as the client reads).
    block_interval_s: float = 0.0
    #: Frames sent after the handshake and before the first block (harmless or hostile).
    frames_before_stream: list[bytes | str] = field(default_factory=list)
    #: Frame sent instead of the block at this index: (index, frame).
    replace_block: tuple[int, bytes] | None = None
    #: Never answer at all after the websocket opened.
    silent: bool = False
    #: Send one block before the rates were announced.
    block_before_rates: bool = False


@dataclass
class Session:
    """What happened on one client connection."""

    path: str
    commands: list[str] = field(default_factory=list)
    blocks_sent: int = 0
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    authed: asyncio.Event = field(default_factory=asyncio.Event)
    configured: asyncio.Event = field(default_factory=asyncio.Event)
    streaming: asyncio.Event = field(default_factory=asyncio.Event)


def iq_frame(behaviour: Behaviour, block: int, sequence: int) -> bytes:
    flags = 0x08 | (0x80 if behaviour.little_endian else 0)
    utc_ns = block_utc_ns(behaviour.start_utc_ns, block, behaviour.sample_rate_hz)
    tow_s, tow_ns = gps_time_of_week(utc_ns)
    header = (
        b"SND"
        + bytes([flags])
        + (sequence & 0xFFFFFFFF).to_bytes(4, "little")
        + behaviour.smeter.to_bytes(2, "big")
        + bytes([behaviour.gps_status, 0])
        + tow_s.to_bytes(4, "little")
        + tow_ns.to_bytes(4, "little")
    )
    i, q = expected_iq_int16(block * SAMPLES_PER_BLOCK, SAMPLES_PER_BLOCK)
    interleaved = np.empty(2 * SAMPLES_PER_BLOCK, dtype="<i2" if behaviour.little_endian else ">i2")
    interleaved[0::2], interleaved[1::2] = i, q
    return header + interleaved.tobytes()


class FakeKiwi:
    """One scripted receiver; ``behaviour`` may be changed between connections."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.sessions: list[Session] = []
        self.connected = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def msg_groups(self) -> dict[str, list[str]]:
        b = self.behaviour
        load_cfg = quote(
            json.dumps({"rx_name": "Fake Kiwi", "rx_gps": f"({RX_GPS[0]}, {RX_GPS[1]})"})
        )
        return {
            "auth": [
                "rx_chans=4",
                "chan_no_pwd=0",
                "badp=0",
                "version_maj=1 version_min=550",
                f"load_cfg={load_cfg}",
            ],
            "sound": [
                "center_freq=15000000 bandwidth=30000000",
                f"audio_init=0 audio_rate={b.audio_rate}",
            ],
            "rate": [f"sample_rate={b.sample_rate_hz:.3f}"],
        }

    async def send_msg(self, ws: ServerConnection, payload: str) -> None:
        text = f"MSG {payload}"
        await ws.send(text if self.behaviour.text_frames else text.encode())

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        session = Session(path=ws.request.path)
        self.sessions.append(session)
        self.connected.set()
        tasks = [
            asyncio.create_task(self._read(ws, session)),
            asyncio.create_task(self._script(ws, session)),
        ]
        # The client may hang up at any point of the script: the connection's end ends it.
        await ws.wait_closed()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        session.close_code = ws.close_code
        session.closed.set()

    async def _read(self, ws: ServerConnection, session: Session) -> None:
        seen: set[str] = set()
        async for message in ws:
            command = message if isinstance(message, str) else message.decode()
            session.commands.append(command)
            if command.startswith("SET auth"):
                session.authed.set()
            for key in ("AR OK", "mod=iq", "agc="):
                if key in command:
                    seen.add(key)
            if len(seen) == 3:
                session.configured.set()

    async def _script(self, ws: ServerConnection, session: Session) -> None:
        b = self.behaviour
        if b.silent:
            return
        if b.refusal is not None and b.refuse_on_connect:
            await self.send_msg(ws, b.refusal)
            await ws.close()
            return
        groups = self.msg_groups()
        order = list(b.msg_order)
        for name in order[: b.groups_before_auth]:
            for payload in groups[name]:
                await self.send_msg(ws, payload)
        await session.authed.wait()
        password = session.commands[0].partition(" p=")[2]
        if b.refusal is not None:
            await self.send_msg(ws, b.refusal)
            return
        if password != b.password:
            await self.send_msg(ws, "badp=1")
            return
        if b.block_before_rates:
            await ws.send(iq_frame(b, 0, b.first_sequence))
        for name in order[b.groups_before_auth :]:
            for payload in groups[name]:
                await self.send_msg(ws, payload)
        await session.configured.wait()
        for frame in b.frames_before_stream:
            await ws.send(frame)
        session.streaming.set()
        await self._stream(ws, session)

    async def _stream(self, ws: ServerConnection, session: Session) -> None:
        b = self.behaviour
        sequence = b.first_sequence
        block = 0
        while True:
            if block == b.stall_after:
                return
            if block == b.drop_after:
                assert ws.transport is not None
                ws.transport.abort()
                return
            if b.replace_block is not None and block == b.replace_block[0]:
                await ws.send(b.replace_block[1])
            else:
                await ws.send(iq_frame(b, block, sequence))
            session.blocks_sent += 1
            block += 1
            sequence += 2 if block == b.gap_after else 1
            if b.block_interval_s:
                await asyncio.sleep(b.block_interval_s)
            elif block % 8 == 0:
                await asyncio.sleep(0)


@asynccontextmanager
async def running_fake_kiwi(behaviour: Behaviour | None = None) -> AsyncIterator[FakeKiwi]:
    """A :class:`FakeKiwi` listening on an ephemeral loopback port."""
    kiwi = FakeKiwi(behaviour or Behaviour())
    async with serve(kiwi.handler, "127.0.0.1", 0, compression=None, max_size=2**16) as server:
        kiwi.port = server.sockets[0].getsockname()[1]
        yield kiwi


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A bare TCP server on 127.0.0.1; yields its ``ws://`` base URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def accept_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer a websocket upgrade by hand (RFC 6455 section 4.2.2)."""
    request = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    await writer.drain()


def unmasked_binary_frame_header(payload_length: int) -> bytes:
    """Server-to-client binary frame header with a 64-bit length field."""
    return bytes([0x82, 127]) + payload_length.to_bytes(8, "big")
