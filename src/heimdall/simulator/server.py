"""One simulated KiwiSDR: the sound-channel WebSocket protocol in IQ mode.

Follows /work/shared/protocols/kiwisdr.md: binary frames only, MSG name=value
messages, the auth-first rule, the five-condition start gate, keepalive timeouts,
and 2068-byte ``SND`` frames paced against the absolute clock. The samples are
``physics.render_receiver_iq`` of the live scenario, so moving the transmitter
through the control API changes what every open stream hears.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from heimdall.simulator.faults import (
    MALFORMED_ROTATION,
    Fault,
    FaultKind,
    garbage_frame,
    malformed_frame,
)
from heimdall.simulator.openwebrx_render import OpenWebRXOptions
from heimdall.simulator.physics import (
    GPS_FIX_INTERVAL_S as GPS_FIX_INTERVAL_S,  # re-exported for the server's clients
)
from heimdall.simulator.physics import (
    GPS_STATUS_NO_GPS as GPS_STATUS_NO_GPS,
)
from heimdall.simulator.physics import (
    SAMPLES_PER_BLOCK,
    announced_sample_rate_hz,
    power_dbm,
    render_receiver_iq,
)
from heimdall.simulator.scenario import ReceiverSettings, Scenario

logger = logging.getLogger(__name__)

SND_PATH = re.compile(r"^/(?:ws/kiwi/|wb/)?\d+/SND$")
FRAME_HEADER_BYTES = 20
FRAME_BYTES = FRAME_HEADER_BYTES + 4 * SAMPLES_PER_BLOCK
FLAG_ADC_OVERFLOW = 0x02
FLAG_IQ = 0x08
FLAG_LITTLE_ENDIAN = 0x80
AUDIO_RATE_HZ = 12000
VERSION_MAJOR = 1
VERSION_MINOR = 826
# GPS time runs ahead of UTC by the leap seconds since 1980 (18 since 2017).
GPS_UTC_OFFSET_S = 18
GPS_EPOCH_UNIX_S = 315_964_800  # 1980-01-06T00:00:00Z
SECONDS_PER_WEEK = 604_800
PRE_AUTH_COMMANDS = frozenset({"auth", "options", "keepalive"})


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Timeouts and behaviour shared by every simulated receiver."""

    keepalive_timeout_s: float = 60.0
    pre_auth_timeout_s: float = 20.0
    # A client that has not passed the start gate by then is dropped, keepalives or not.
    setup_timeout_s: float = 30.0
    # Send the sound set-up messages at a random place among the auth replies.
    shuffle_messages: bool = True
    version_minor: int = VERSION_MINOR
    # Stream formats of the receivers served with the OpenWebRX protocol.
    openwebrx: OpenWebRXOptions = field(default_factory=OpenWebRXOptions)


@dataclass
class SimulationState:
    """The live scenario, faults and channel use; mutated by the control API."""

    scenario: Scenario
    options: ServerOptions = field(default_factory=ServerOptions)
    faults: dict[str, Fault] = field(default_factory=dict)
    active_channels: dict[str, int] = field(default_factory=dict)
    # OpenWebRX receivers: the index of the profile their SDR is on (shared by listeners).
    active_profiles: dict[str, int] = field(default_factory=dict)
    # Set when the network shuts down: releases handshakes held by 'not_answering'.
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)

    def receiver(self, receiver_id: str) -> ReceiverSettings:
        return self.scenario.receiver(receiver_id)


def encode_message(**pairs: object) -> bytes:
    """A server ``MSG`` as the binary frame payload: ``MSG a=1 b=2``."""
    body = " ".join(f"{name}={value}" for name, value in pairs.items())
    return f"MSG {body}".encode()


def parse_set_command(text: str) -> tuple[str, dict[str, str]]:
    """Split ``SET a=1 b=2`` into (first word's name, name=value pairs).

    Example:
        >>> parse_set_command("SET AR OK in=12000 out=44100")
        ('AR', {'AR': '', 'OK': '', 'in': '12000', 'out': '44100'})
    """
    words = text.strip().split()
    if not words or words[0] != "SET":
        return "", {}
    pairs: dict[str, str] = {}
    for word in words[1:]:
        name, _, value = word.partition("=")
        pairs[name] = value
    first = words[1].partition("=")[0] if len(words) > 1 else ""
    return first, pairs


def gps_week_time(utc_ns: int) -> tuple[int, int]:
    """(GPS seconds of week, nanoseconds) of a UTC instant.

    Example:
        >>> gps_week_time(315_964_800 * 10**9)  # the GPS epoch in UTC, before leap seconds
        (18, 0)
    """
    gps_ns = utc_ns + (GPS_UTC_OFFSET_S - GPS_EPOCH_UNIX_S) * 1_000_000_000
    seconds, nanoseconds = divmod(gps_ns, 1_000_000_000)
    return seconds % SECONDS_PER_WEEK, nanoseconds


def quantize_iq(samples: npt.NDArray[np.complex64]) -> tuple[npt.NDArray[np.int16], bool]:
    """Interleaved I,Q int16 (full scale 1.0 -> 32767), and whether anything clipped."""
    interleaved = np.empty(2 * len(samples), dtype=np.float64)
    interleaved[0::2] = samples.real
    interleaved[1::2] = samples.imag
    scaled = np.round(interleaved * 32767.0)
    clipped = bool(np.any(np.abs(scaled) > 32767.0))
    return np.clip(scaled, -32768, 32767).astype(np.int16), clipped


def smeter_from_dbm(rssi_dbm: float) -> int:
    """The uint16 S-meter field: RSSI dBm = 0.1 * smeter - 127."""
    return int(np.clip(round((rssi_dbm + 127.0) * 10.0), 0, 0xFFFF))


def encode_snd_frame(
    sequence: int,
    samples: npt.NDArray[np.complex64],
    rssi_dbm: float,
    reported_time_ns: int,
    gps_status: int,
    little_endian: bool,
) -> bytes:
    """One 2068-byte IQ ``SND`` frame (header layout in protocols/kiwisdr.md)."""
    words, clipped = quantize_iq(samples)
    flags = FLAG_IQ | (FLAG_LITTLE_ENDIAN if little_endian else 0)
    flags |= FLAG_ADC_OVERFLOW if clipped else 0
    gps_second, gps_nanosecond = gps_week_time(reported_time_ns)
    header = (
        b"SND"
        + struct.pack("<BI", flags, sequence & 0xFFFFFFFF)
        + struct.pack(">H", smeter_from_dbm(rssi_dbm))
        + struct.pack("<BBII", gps_status, 0, gps_second, gps_nanosecond)
    )
    sample_dtype = np.dtype("<i2") if little_endian else np.dtype(">i2")
    return header + words.astype(sample_dtype).tobytes()


@dataclass
class _ClientState:
    """What one connected client has told us so far."""

    authenticated: bool = False
    little_endian: bool = False
    tuned_frequency_hz: float | None = None
    mode: str | None = None
    passband_hz: tuple[float, float] | None = None
    agc_set: bool = False
    audio_output_rate: int = 0
    last_keepalive_s: float = field(default_factory=time.monotonic)
    connected_s: float = field(default_factory=time.monotonic)
    gate_open: asyncio.Event = field(default_factory=asyncio.Event)

    def start_gate_passed(self) -> bool:
        """The five conditions a real KiwiSDR needs before it sends any audio."""
        return (
            self.tuned_frequency_hz is not None
            and self.mode is not None
            and self.passband_hz is not None
            and self.agc_set
            and self.audio_output_rate != 0
        )


class ReceiverServerBase:
    """What every simulated receiver's protocol shares: its state, fault and settings."""

    def __init__(self, state: SimulationState, receiver_id: str) -> None:
        self.state = state
        self.receiver_id = receiver_id

    @property
    def fault(self) -> Fault | None:
        return self.state.faults.get(self.receiver_id)

    @property
    def receiver(self) -> ReceiverSettings:
        return self.state.receiver(self.receiver_id)

    async def _disrupt(
        self, connection: ServerConnection, fault: Fault, rng: np.random.Generator
    ) -> bool:
        """Carry out a stream fault (stall, drop, hostile); True when the stream is over."""
        if fault.kind is FaultKind.stall:
            await asyncio.Event().wait()
        if fault.kind is FaultKind.drop:
            connection.transport.abort()
            return True
        if fault.kind is FaultKind.hostile:
            await self._send_garbage(connection, fault, rng)
            return True
        return False

    async def _send_garbage(
        self, connection: ServerConnection, fault: Fault, rng: np.random.Generator
    ) -> None:
        """The hostile fault: large random frames at the fault's byte rate, until closed."""
        interval_s = fault.garbage_frame_bytes / fault.garbage_bytes_per_s
        deadline = time.monotonic()
        while True:
            await connection.send(garbage_frame(rng, fault.garbage_frame_bytes))
            deadline += interval_s
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))


class KiwiReceiverServer(ReceiverServerBase):
    """The KiwiSDR protocol for one simulated receiver; ``handle`` serves one connection."""

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Reject unknown paths; hang the handshake when the receiver is 'not answering'."""
        fault = self.fault
        if fault is not None and fault.kind is FaultKind.not_answering:
            # TCP is accepted but the HTTP upgrade is never answered; websockets'
            # open_timeout eventually closes it.
            await self.state.shutting_down.wait()
            return connection.respond(503, "simulator shutting down\n")
        if not SND_PATH.match(request.path):
            return connection.respond(404, "only the sound channel /<ts>/SND is simulated\n")
        return None

    async def handle(self, connection: ServerConnection) -> None:
        fault = self.fault
        if fault is not None and fault.kind is FaultKind.down:
            await connection.send(encode_message(down=""))
            return
        rx_chans = self.receiver.rx_chans
        in_use = self.state.active_channels.get(self.receiver_id, 0)
        if (fault is not None and fault.kind is FaultKind.refuse) or in_use >= rx_chans:
            await connection.send(encode_message(too_busy=rx_chans))
            return
        self.state.active_channels[self.receiver_id] = in_use + 1
        try:
            await self._serve_client(connection)
        except ConnectionClosed:
            pass
        finally:
            self.state.active_channels[self.receiver_id] -= 1

    async def _serve_client(self, connection: ServerConnection) -> None:
        client = _ClientState()
        stream_task: asyncio.Task[None] | None = None
        watchdog = asyncio.create_task(self._watchdog(connection, client))
        try:
            async for message in connection:
                text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
                reply = self._apply_command(client, text)
                if reply == "badp":
                    await connection.send(encode_message(badp=1))
                    return
                if reply == "authenticated":
                    await self._send_greeting(connection)
                if stream_task is None and client.authenticated and client.start_gate_passed():
                    client.gate_open.set()
                    stream_task = asyncio.create_task(self._stream(connection, client))
        finally:
            watchdog.cancel()
            if stream_task is not None:
                stream_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await stream_task

    def _apply_command(self, client: _ClientState, text: str) -> str | None:
        command, pairs = parse_set_command(text)
        if command == "keepalive":
            client.last_keepalive_s = time.monotonic()
        if not client.authenticated:
            if command != "auth":
                return None  # before auth only auth/options/keepalive count
            fault = self.fault
            if fault is not None and fault.kind is FaultKind.badp:
                return "badp"
            client.authenticated = True
            return "authenticated"
        if command in PRE_AUTH_COMMANDS:
            return None
        if command == "AR" and pairs.get("out", "0").strip():
            with contextlib.suppress(ValueError):
                client.audio_output_rate = int(float(pairs["out"]))
        if "mod" in pairs:
            client.mode = pairs["mod"]
        if "low_cut" in pairs and "high_cut" in pairs:
            with contextlib.suppress(ValueError):
                client.passband_hz = (float(pairs["low_cut"]), float(pairs["high_cut"]))
        if "freq" in pairs:
            with contextlib.suppress(ValueError):
                client.tuned_frequency_hz = float(pairs["freq"]) * 1e3
        if "agc" in pairs:
            client.agc_set = True
        if command == "little-endian":
            client.little_endian = True
        return None

    def _greeting_messages(self) -> tuple[list[bytes], list[bytes]]:
        receiver = self.receiver
        latitude, longitude, altitude_m = receiver.require_position()
        config = {
            "rx_name": receiver.name or receiver.id,
            "rx_gps": f"({latitude:.6f}, {longitude:.6f})",
            "rx_asl": round(altitude_m),
            "rx_location": f"simulated receiver {receiver.id}",
            "rx_antenna": f"simulated, {receiver.antenna_gain_dbi:g} dBi",
        }
        auth_replies = [
            encode_message(rx_chans=receiver.rx_chans),
            encode_message(chan_no_pwd=receiver.rx_chans),
            encode_message(badp=0),
            encode_message(version_maj=VERSION_MAJOR, version_min=self.state.options.version_minor),
            encode_message(load_cfg=quote(json.dumps(config), safe="")),
        ]
        band_centre_hz = round(self.state.scenario.transmitter.frequency_hz, -6)
        sound_setup = [
            encode_message(center_freq=int(band_centre_hz), bandwidth=30_000_000),
            encode_message(audio_init=0, audio_rate=AUDIO_RATE_HZ),
            encode_message(sample_rate=f"{announced_sample_rate_hz(receiver):.3f}"),
        ]
        return auth_replies, sound_setup

    async def _send_greeting(self, connection: ServerConnection) -> None:
        auth_replies, sound_setup = self._greeting_messages()
        messages = auth_replies + sound_setup
        if self.state.options.shuffle_messages:
            # Keep each group's own order, interleave the groups at random:
            # sample_rate may then come before the auth replies.
            slots = [0] * len(auth_replies) + [1] * len(sound_setup)
            random.shuffle(slots)
            queues = [iter(auth_replies), iter(sound_setup)]
            messages = [next(queues[slot]) for slot in slots]
        fault = self.fault
        if fault is not None and fault.kind is FaultKind.silent:
            return
        for message in messages:
            await connection.send(message)

    async def _watchdog(self, connection: ServerConnection, client: _ClientState) -> None:
        """Drop clients that stop keeping alive, or never finish the set-up."""
        options = self.state.options
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            timeout_s = (
                options.keepalive_timeout_s if client.authenticated else options.pre_auth_timeout_s
            )
            if now - client.last_keepalive_s > timeout_s:
                await connection.close(1000, "keepalive timeout")
                return
            if not client.gate_open.is_set() and now - client.connected_s > options.setup_timeout_s:
                await connection.close(1000, "set-up not completed")
                return

    async def _stream(self, connection: ServerConnection, client: _ClientState) -> None:
        """Send IQ blocks as they are 'recorded', paced on the wall clock."""
        sample_rate_hz = self.receiver.sample_rate_hz
        start_ns = time.time_ns()
        rng = np.random.default_rng()
        block = 0
        while True:
            receiver = self.receiver
            if receiver.sample_rate_hz != sample_rate_hz:
                sample_rate_hz = receiver.sample_rate_hz
            block_start_ns = start_ns + round(block * SAMPLES_PER_BLOCK * 1e9 / sample_rate_hz)
            block_end_ns = start_ns + round((block + 1) * SAMPLES_PER_BLOCK * 1e9 / sample_rate_hz)
            # Deadlines come from the absolute clock, so late wake-ups never accumulate.
            wait_s = (block_end_ns - time.time_ns()) / 1e9
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            elapsed_s = (time.time_ns() - start_ns) / 1e9
            fault = self.fault
            frame = self._frame(client, block, block_start_ns, fault)
            if fault is not None and elapsed_s >= fault.after_s:
                if await self._disrupt(connection, fault, rng):
                    return
                if fault.kind is FaultKind.malformed and block % fault.every_n == 0:
                    variant = MALFORMED_ROTATION[(block // fault.every_n) % len(MALFORMED_ROTATION)]
                    await connection.send(malformed_frame(frame, variant))
                    block += 1
                    continue
            await connection.send(frame)
            block += 1

    def _frame(
        self, client: _ClientState, block: int, block_start_ns: int, fault: Fault | None
    ) -> bytes:
        receiver = self.receiver
        if fault is not None and fault.kind is FaultKind.no_gps:
            receiver = receiver.model_copy(update={"has_gps": False})
        scenario = self.state.scenario
        rendered = render_receiver_iq(
            scenario, receiver, block_start_ns, SAMPLES_PER_BLOCK, client.tuned_frequency_hz
        )
        gps_status = int(rendered.truth.gps_status[0])
        return encode_snd_frame(
            sequence=block + 1,
            samples=rendered.samples,
            rssi_dbm=power_dbm(rendered.samples, scenario.full_scale_dbm_of(receiver)),
            reported_time_ns=int(rendered.truth.reported_block_time_ns[0]),
            gps_status=gps_status,
            little_endian=client.little_endian,
        )
