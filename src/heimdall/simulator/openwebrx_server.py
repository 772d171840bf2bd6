"""One simulated OpenWebRX receiver: ``/status.json`` and the ``/ws/`` client protocol.

Follows /work/shared/protocols/openwebrx.md: the text handshake, JSON messages
(``config``, ``profiles``, ``receiver_details``, ``smeter``, ``backoff``), binary
frames (1 spectrum, 2 audio), ADPCM for both, profiles selected by any listener
for everyone (the SDR is shared: the other listeners get the new ``config``).
What is sent is ``openwebrx_render`` of the live scenario, paced on the wall
clock; the fault modes are the KiwiSDR receivers' own, in this protocol's terms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from heimdall.simulator.faults import (
    MALFORMED_ROTATION,
    Fault,
    FaultKind,
    malformed_openwebrx_message,
)
from heimdall.simulator.openwebrx_render import (
    PROFILES,
    ChannelDemodulator,
    SdrProfile,
    audio_frame,
    fft_frame,
    render_channel,
    spectrum_frame_db,
)
from heimdall.simulator.server import ReceiverServerBase

WEBSOCKET_PATH = "/ws/"
STATUS_PATH = "/status.json"
HANDSHAKE_PREFIX = "SERVER DE CLIENT"
DEFAULT_OUTPUT_RATE_HZ = 12_000
SUPPORTED_OUTPUT_RATES_HZ = frozenset({8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 44_100})


def _json_response(connection: ServerConnection, document: dict[str, Any]) -> Response:
    response = connection.respond(200, json.dumps(document))
    response.headers["Content-Type"] = "application/json"
    return response


@dataclass
class _Listener:
    """What one connected client asked for, and what it has been told."""

    output_rate_hz: int = DEFAULT_OUTPUT_RATE_HZ
    demodulator: str = "nfm"
    low_cut_hz: float = -4_000.0
    high_cut_hz: float = 4_000.0
    offset_frequency_hz: float = 0.0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    profile_index: int = 0
    config_sent_for: int | None = None
    retune: bool = True  # the demodulator must be rebuilt before the next chunk
    audio_started_s: float | None = None  # faults count their after_s from here


class OpenWebRXReceiverServer(ReceiverServerBase):
    """The OpenWebRX protocol for one simulated receiver; ``handle`` serves one connection."""

    @property
    def profile_index(self) -> int:
        return self.state.active_profiles.get(self.receiver_id, 0)

    def status_document(self) -> dict[str, Any]:
        receiver = self.receiver
        latitude, longitude, altitude_m = receiver.require_position()
        return {
            "receiver": {
                "name": receiver.name or receiver.id,
                "admin": "simulator@heimdall.invalid",
                "gps": {"lat": latitude, "lon": longitude},
                "asl": round(altitude_m),
                "location": f"simulated receiver {receiver.id}",
            },
            "max_clients": receiver.rx_chans,
            "version": self.state.options.openwebrx.version,
            "sdrs": [
                {
                    "name": PROFILES[0].sdr_name,
                    "type": "rtl_sdr",
                    "profiles": [
                        {
                            "name": profile.name,
                            "center_freq": int(profile.center_frequency_hz),
                            "sample_rate": int(profile.sample_rate_hz),
                        }
                        for profile in PROFILES
                    ],
                }
            ],
        }

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        fault = self.fault
        if fault is not None and fault.kind is FaultKind.not_answering:
            await self.state.shutting_down.wait()
            return connection.respond(503, "simulator shutting down\n")
        path = request.path.split("?", 1)[0]
        if fault is not None and fault.kind is FaultKind.down:
            return connection.respond(503, "receiver down for maintenance\n")
        if path == STATUS_PATH:
            return _json_response(connection, self.status_document())
        if path != WEBSOCKET_PATH:
            return connection.respond(404, "only /status.json and /ws/ are simulated\n")
        return None

    async def handle(self, connection: ServerConnection) -> None:
        try:
            async with asyncio.timeout(self.state.options.pre_auth_timeout_s):
                hello = await connection.recv()
        except (TimeoutError, ConnectionClosed):
            return
        if not isinstance(hello, str) or not hello.startswith(HANDSHAKE_PREFIX):
            await connection.close(1002, "expected the client handshake")
            return
        fault = self.fault
        if fault is not None and fault.kind is FaultKind.silent:
            await connection.wait_closed()
            return
        await connection.send(
            f"CLIENT DE SERVER server=openwebrx version={self.state.options.openwebrx.version}"
        )
        max_clients = self.receiver.rx_chans
        in_use = self.state.active_channels.get(self.receiver_id, 0)
        refused = fault is not None and fault.kind in (FaultKind.refuse, FaultKind.badp)
        if refused or in_use >= max_clients:
            await connection.send(json.dumps({"type": "backoff", "reason": "Too many clients"}))
            await connection.close()
            return
        self.state.active_channels[self.receiver_id] = in_use + 1
        try:
            await self._serve(connection)
        except ConnectionClosed:
            pass
        finally:
            self.state.active_channels[self.receiver_id] -= 1

    def _config_message(self, listener: _Listener) -> str:
        options = self.state.options.openwebrx
        profile = PROFILES[listener.profile_index]
        return json.dumps(
            {
                "type": "config",
                "value": {
                    "center_freq": int(profile.center_frequency_hz),
                    "samp_rate": int(profile.sample_rate_hz),
                    "fft_size": options.fft_size,
                    "fft_fps": options.fft_fps,
                    "audio_compression": options.audio_compression,
                    "fft_compression": options.fft_compression,
                    "start_mod": "nfm",
                    "start_offset_freq": 0,
                    "max_clients": self.receiver.rx_chans,
                    "sdr_id": profile.sdr_id,
                    "profile_id": profile.profile_id,
                },
            }
        )

    async def _send_config_if_changed(
        self, connection: ServerConnection, listener: _Listener
    ) -> None:
        """Follow the shared SDR: a profile chosen by anyone reaches every listener."""
        if listener.config_sent_for != self.profile_index:
            listener.profile_index = self.profile_index
            listener.config_sent_for = listener.profile_index
            listener.retune = True
            await connection.send(self._config_message(listener))

    async def _serve(self, connection: ServerConnection) -> None:
        listener = _Listener()
        receiver = self.receiver
        latitude, longitude, altitude_m = receiver.require_position()
        await self._send_config_if_changed(connection, listener)
        await connection.send(
            json.dumps(
                {
                    "type": "profiles",
                    "value": [{"id": p.id, "name": p.display_name} for p in PROFILES],
                }
            )
        )
        await connection.send(
            json.dumps(
                {
                    "type": "receiver_details",
                    "value": {
                        "receiver_name": receiver.name or receiver.id,
                        "receiver_location": f"simulated receiver {receiver.id}",
                        "receiver_asl": round(altitude_m),
                        "receiver_gps": {"lat": latitude, "lon": longitude},
                    },
                }
            )
        )
        await connection.send(json.dumps({"type": "modes", "value": ["usb", "lsb", "am", "nfm"]}))
        streams = [
            asyncio.create_task(self._spectra(connection, listener)),
            asyncio.create_task(self._audio(connection, listener)),
        ]
        try:
            async for message in connection:
                if isinstance(message, str):
                    await self._apply(connection, listener, message)
        finally:
            for stream in streams:
                stream.cancel()
            for stream in streams:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await stream

    async def _apply(self, connection: ServerConnection, listener: _Listener, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            return  # the real server logs and ignores what it cannot parse
        if not isinstance(message, dict):
            return
        raw_params = message.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        kind = message.get("type")
        if kind == "connectionproperties":
            rate = params.get("output_rate")
            if rate in SUPPORTED_OUTPUT_RATES_HZ:
                listener.output_rate_hz = int(rate)
        elif kind == "dspcontrol":
            if message.get("action") == "start":
                listener.started.set()
            for key, attribute in (
                ("low_cut", "low_cut_hz"),
                ("high_cut", "high_cut_hz"),
                ("offset_freq", "offset_frequency_hz"),
            ):
                if isinstance(params.get(key), int | float):
                    setattr(listener, attribute, float(params[key]))
                    listener.retune = True
            if params.get("mod") in ("usb", "lsb", "am", "nfm"):
                listener.demodulator = str(params["mod"])
                listener.retune = True
        elif kind == "selectprofile":
            wanted = params.get("profile")
            for index, profile in enumerate(PROFILES):
                if profile.id == wanted:
                    self.state.active_profiles[self.receiver_id] = index
            await self._send_config_if_changed(connection, listener)

    def _due_fault(self, listener: _Listener) -> Fault | None:
        """The receiver's fault once its ``after_s`` has passed in this listener's stream."""
        fault = self.fault
        started_s = listener.audio_started_s
        if fault is None or started_s is None or time.monotonic() - started_s < fault.after_s:
            return None
        return fault

    async def _spectra(self, connection: ServerConnection, listener: _Listener) -> None:
        options = self.state.options.openwebrx
        interval_ns = round(1e9 / options.fft_fps)
        start_ns = time.time_ns()
        frame = 0
        while True:
            due_ns = start_ns + frame * interval_ns
            wait_s = (due_ns - time.time_ns()) / 1e9
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            await self._send_config_if_changed(connection, listener)
            fault = self._due_fault(listener)
            if fault is not None and fault.kind in (FaultKind.stall, FaultKind.hostile):
                return  # the audio stream carries the fault out; spectra stop with it
            profile: SdrProfile = PROFILES[listener.profile_index]
            values_db = spectrum_frame_db(
                self.state.scenario, self.receiver, profile, due_ns, options.fft_size
            )
            await connection.send(fft_frame(values_db, options.fft_compression))
            frame += 1

    async def _audio(self, connection: ServerConnection, listener: _Listener) -> None:
        await listener.started.wait()
        options = self.state.options.openwebrx
        chunk = options.audio_chunk_samples
        start_ns = time.time_ns()
        listener.audio_started_s = time.monotonic()
        rng = np.random.default_rng()
        codec_state = (0, 0)
        demodulator: ChannelDemodulator | None = None
        passband_power: list[float] = []
        index = 0
        while True:
            rate_hz = listener.output_rate_hz
            chunk_start_ns = start_ns + round(index * chunk * 1e9 / rate_hz)
            chunk_end_ns = start_ns + round((index + 1) * chunk * 1e9 / rate_hz)
            wait_s = (chunk_end_ns - time.time_ns()) / 1e9
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            if demodulator is None or listener.retune:
                demodulator = ChannelDemodulator(
                    rate_hz, listener.demodulator, listener.low_cut_hz, listener.high_cut_hz
                )
                listener.retune = False
            profile = PROFILES[listener.profile_index]
            iq = render_channel(
                self.state.scenario,
                self.receiver,
                chunk_start_ns,
                chunk,
                profile.center_frequency_hz + listener.offset_frequency_hz,
                rate_hz,
            )
            audio, power = demodulator.process(iq)
            frame: bytes | str
            frame, codec_state = audio_frame(audio, options.audio_compression, codec_state)
            fault = self._due_fault(listener)
            if fault is not None:
                if await self._disrupt(connection, fault, rng):
                    return
                if fault.kind is FaultKind.malformed and index % fault.every_n == 0:
                    variant = MALFORMED_ROTATION[(index // fault.every_n) % len(MALFORMED_ROTATION)]
                    frame = malformed_openwebrx_message(frame, variant)
            await connection.send(frame)
            passband_power.append(power)
            if len(passband_power) == options.smeter_every:
                # The real server sends its float32 reading through JSON.
                value = float(np.float32(np.mean(passband_power)))
                await connection.send(json.dumps({"type": "smeter", "value": value}))
                passband_power.clear()
            index += 1
