"""A deliberately minimal raw KiwiSDR client for testing the simulator (not the product client)."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

import numpy as np
from websockets.asyncio.client import ClientConnection

SETUP_COMMANDS = {
    "ar": "SET AR OK in=12000 out=44100",
    "mod": "SET mod=iq low_cut=-5000 high_cut=5000 freq={freq_khz:.3f}",
    "agc": "SET agc=0 hang=0 thresh=-100 slope=6 decay=1000 manGain=50",
}


@dataclass(frozen=True)
class SndFrame:
    flags: int
    sequence: int
    rssi_dbm: float
    gps_status: int
    gps_second: int
    gps_nanosecond: int
    samples: np.ndarray  # complex128, full scale 1.0

    @property
    def gps_time_s(self) -> float:
        return self.gps_second + self.gps_nanosecond * 1e-9


def parse_snd(frame: bytes) -> SndFrame:
    assert frame[:3] == b"SND" and len(frame) == 2068, (frame[:3], len(frame))
    flags = frame[3]
    dtype = "<i2" if flags & 0x80 else ">i2"
    words = np.frombuffer(frame[20:], dtype=dtype).astype(np.float64) / 32767.0
    return SndFrame(
        flags=flags,
        sequence=struct.unpack("<I", frame[4:8])[0],
        rssi_dbm=0.1 * struct.unpack(">H", frame[8:10])[0] - 127.0,
        gps_status=frame[10],
        gps_second=struct.unpack("<I", frame[12:16])[0],
        gps_nanosecond=struct.unpack("<I", frame[16:20])[0],
        samples=words[0::2] + 1j * words[1::2],
    )


def parse_msg(frame: bytes | str) -> dict[str, str]:
    text = frame.decode() if isinstance(frame, bytes) else frame
    assert text.startswith("MSG "), text[:40]
    return dict(word.partition("=")[::2] for word in text[4:].split(" "))


async def receive_messages(connection: ClientConnection, count: int) -> list[bytes]:
    frames = []
    for _ in range(count):
        frame = await asyncio.wait_for(connection.recv(), 5.0)
        assert isinstance(frame, bytes), "every server frame must be binary"
        frames.append(frame)
    return frames


async def authenticate(connection: ClientConnection) -> list[bytes]:
    """Send auth and collect the eight greeting messages (auth replies + sound set-up)."""
    await connection.send("SET auth t=kiwi p=")
    return await receive_messages(connection, 8)


async def complete_setup(
    connection: ClientConnection,
    freq_hz: float,
    little_endian: bool = False,
    skip: frozenset[str] = frozenset(),
) -> None:
    for name, command in SETUP_COMMANDS.items():
        if name not in skip:
            await connection.send(command.format(freq_khz=freq_hz / 1e3))
    if little_endian:
        await connection.send("SET little-endian")
    await connection.send("SET keepalive")


async def next_snd(connection: ClientConnection, timeout_s: float = 5.0) -> bytes:
    """The next SND frame, skipping MSG frames."""
    while True:
        frame = await asyncio.wait_for(connection.recv(), timeout_s)
        assert isinstance(frame, bytes)
        if frame[:3] != b"MSG":
            return frame


async def collect_snd(connection: ClientConnection, count: int) -> list[SndFrame]:
    """count SND frames, keeping the connection alive every ten frames."""
    frames = []
    for index in range(count):
        if index % 10 == 9:
            await connection.send("SET keepalive")
        frames.append(parse_snd(await next_snd(connection)))
    return frames


async def frames_within(connection: ClientConnection, duration_s: float) -> list[bytes | str]:
    """Everything the server sends during duration_s (stops early if it closes)."""
    frames: list[bytes | str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    while (remaining := deadline - loop.time()) > 0:
        try:
            frames.append(await asyncio.wait_for(connection.recv(), remaining))
        except TimeoutError:
            break
    return frames
