"""Record audio, spectrum frames and S-meter readings from an OpenWebRX receiver.

:func:`record_audio` is the whole driver: read ``/status.json`` (position,
profiles), open the websocket, handshake, ask for 12 kHz audio, select a
profile that covers the frequency when the active one does not, tune the
demodulator by ``offset_freq``, collect audio (the recording's clock), FFT
frames and S-meter readings with their arrival times until the requested
duration is covered, close. Every way it can fail is a
:class:`~heimdall.receivers.errors.ReceiverError` subclass naming the station.
Message parsing lives in :mod:`.protocol`, ADPCM in :mod:`.adpcm`; this module
owns the I/O and the per-connection state.

The demodulator is USB with the frequency asked for at ``TONE_OFFSET_HZ`` in
the audio: a carrier becomes a tone whose frequency refines the FFT's coarse
peak (see :mod:`heimdall.dsp.audio_measurement`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from heimdall.core.constants import NS_PER_S
from heimdall.receivers.capture import AudioCapture
from heimdall.receivers.errors import (
    ReceiverBusy,
    ReceiverDown,
    ReceiverError,
    ReceiverOutOfRange,
    ReceiverProtocolError,
    ReceiverRetuned,
    ReceiverTimeout,
    ReceiverUnreachable,
)
from heimdall.receivers.openwebrx import adpcm, protocol
from heimdall.receivers.websocket import (
    close_connection,
    closed_error,
    explain_close,
    open_connection,
)

DRIVER_NAME = "openwebrx"
DRIVER_VERSION = "1.0"

#: Largest websocket message accepted: an uncompressed FFT frame of 65536 bins is
#: 256 KiB; ``config``/``features``/bookmark messages are a few to some tens of kB.
MAX_FRAME_BYTES = 320 * 1024
#: Largest audio message accepted: OpenWebRX sends a few kB at a time; a bigger one
#: is not audio, and decoding it would only cost time.
MAX_AUDIO_FRAME_BYTES = 64 * 1024
#: Largest ``/status.json`` read.
MAX_STATUS_BYTES = 256 * 1024
OUTPUT_RATE_HZ = 12_000
HD_OUTPUT_RATE_HZ = 48_000
DEMODULATOR = "usb"
#: The frequency asked for sits at this audio frequency; the passband spans
#: LOW_CUT..HIGH_CUT around the dial (RF f - TONE_OFFSET_HZ ... ).
TONE_OFFSET_HZ = 3_000
LOW_CUT_HZ = 300
HIGH_CUT_HZ = 5_700
#: Squelch fully open: a recorder wants the noise too.
SQUELCH_LEVEL = -150
#: Text messages (S-meter readings included) and ignored frames tolerated per
#: recording: a fixed allowance for the handshake plus a generous rate.
OTHER_MESSAGES_BASE_ALLOWANCE = 256
OTHER_MESSAGES_PER_SECOND = 60.0
#: Spectrum frames kept per second of recording (OpenWebRX sends 9 by default);
#: extra frames are counted, not kept, so a fast server cannot grow the capture.
MAX_FFT_FRAMES_PER_SECOND = 30.0
#: And never more than this many bytes of spectra, whatever the FFT size.
MAX_FFT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StationEndpoint:
    """Where to reach one OpenWebRX receiver.

    Attributes:
        station_id: registry id, used in every error message.
        url: ``http://host:port`` (``https://`` also accepted), no path.
    """

    station_id: str
    url: str


def websocket_url(base_url: str) -> str:
    """The receiver's websocket: ``/ws/`` on its HTTP port.

    >>> websocket_url("http://127.0.0.1:8073/")
    'ws://127.0.0.1:8073/ws/'
    """
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/ws/", "", ""))


def status_url(base_url: str) -> str:
    """``/status.json`` on the receiver's HTTP port.

    >>> status_url("http://127.0.0.1:8073")
    'http://127.0.0.1:8073/status.json'
    """
    parts = urlsplit(base_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/status.json", "", ""))


def audio_samples_for_duration(duration_s: float, sample_rate_hz: float) -> int:
    """Audio samples that cover ``duration_s``: rounded up, at least one.

    >>> audio_samples_for_duration(1.5, 12_000.0)
    18000
    """
    if duration_s <= 0 or sample_rate_hz <= 0:
        raise ValueError("duration_s and sample_rate_hz must be positive")
    return max(1, math.ceil(duration_s * sample_rate_hz - 1e-9))


class _AudioRecording:
    """The state of one recording: what the server said and what was kept so far.

    No I/O: :meth:`handle_text` and :meth:`handle_binary` take one server message
    with its arrival time and return the messages to send back, raising a
    :class:`ReceiverError` when the message is a refusal or breaks the protocol.
    """

    def __init__(
        self,
        station_id: str,
        frequency_hz: float,
        duration_s: float,
        status: protocol.ReceiverStatus | None,
    ) -> None:
        self.station_id = station_id
        self.frequency_hz = frequency_hz
        self.duration_s = duration_s
        self.status = status
        self.max_other_messages = OTHER_MESSAGES_BASE_ALLOWANCE + math.ceil(
            OTHER_MESSAGES_PER_SECOND * duration_s
        )
        self.dial_hz = round(frequency_hz) - TONE_OFFSET_HZ
        self.channel_hz = (self.dial_hz + LOW_CUT_HZ, self.dial_hz + HIGH_CUT_HZ)

        self.handshake_done = False
        self.server_version: str | None = None
        self.config_values: dict[str, Any] = {}
        self.config: protocol.ReceiverConfig | None = None
        self.profiles: dict[str, str] | None = None
        self.profile_requested: str | None = None
        self.receiver_details: dict[str, Any] = {}
        self.tuned = False
        self.other_messages = 0

        self.audio = np.empty(audio_samples_for_duration(duration_s, OUTPUT_RATE_HZ), np.int16)
        self.audio_received = 0
        self.adpcm_state: adpcm.AdpcmState | None = None
        self.chunk_start: list[int] = []
        self.chunk_arrival_ns: list[int] = []
        self.fft_frames: np.ndarray = np.empty((0, 0), dtype=np.float32)
        self.fft_kept = 0
        self.fft_dropped = 0
        self.fft_arrival_ns: list[int] = []
        self.smeter: list[float] = []
        self.smeter_arrival_ns: list[int] = []

    @property
    def done(self) -> bool:
        return self.audio_received == len(self.audio) and self.fft_kept > 0 and len(self.smeter) > 0

    def protocol_error(self, detail: str) -> ReceiverProtocolError:
        return ReceiverProtocolError(self.station_id, detail)

    def _count_other(self) -> None:
        self.other_messages += 1
        if self.other_messages > self.max_other_messages:
            raise self.protocol_error(
                f"sent more than {self.max_other_messages} messages besides audio; giving up"
            )

    def handle_message(self, message: str | bytes, arrival_ns: int) -> list[str]:
        """Any server message: text is JSON (or the handshake), binary is a frame."""
        if isinstance(message, str):
            return self.handle_text(message, arrival_ns)
        self.handle_binary(message, arrival_ns)
        return []

    # --- text ---------------------------------------------------------------

    def handle_text(self, text: str, arrival_ns: int) -> list[str]:
        if not self.handshake_done:
            try:
                params = protocol.parse_handshake_reply(text)
            except protocol.FrameError as exc:
                raise self.protocol_error(f"bad handshake reply: {exc}") from exc
            self.handshake_done = True
            self.server_version = params.get("version")
            return [protocol.connection_properties(OUTPUT_RATE_HZ, HD_OUTPUT_RATE_HZ)]
        self._count_other()
        try:
            message = protocol.parse_message(text)
        except protocol.FrameError as exc:
            raise self.protocol_error(str(exc)) from exc
        kind = message["type"]
        if kind == "backoff":
            reason = str(message.get("reason") or "too many listeners")
            raise ReceiverBusy(self.station_id, f"refuses new listeners ({reason}); try later")
        try:
            if kind == "smeter":
                if self.tuned:
                    self.smeter.append(protocol.parse_smeter(message))
                    self.smeter_arrival_ns.append(arrival_ns)
                return []
            if kind == "config" and isinstance(message.get("value"), dict):
                self.config_values.update(message["value"])
                return self._on_config(protocol.parse_config(self.config_values))
            if kind == "profiles":
                self.profiles = protocol.parse_profiles(message)
                return self._on_config(self.config) if self.config is not None else []
        except protocol.FrameError as exc:
            raise self.protocol_error(f"sent a malformed {kind} message: {exc}") from exc
        if kind == "receiver_details" and isinstance(message.get("value"), dict):
            self.receiver_details = message["value"]
        return []

    def _on_config(self, config: protocol.ReceiverConfig) -> list[str]:
        previous, self.config = self.config, config
        if self.tuned:
            assert previous is not None
            same_band = (
                config.center_frequency_hz == previous.center_frequency_hz
                and config.sample_rate_hz == previous.sample_rate_hz
                and config.fft_size == previous.fft_size
                and config.fft_compression == previous.fft_compression
                and config.audio_compression == previous.audio_compression
            )
            if not same_band:
                raise ReceiverRetuned(
                    self.station_id,
                    f"switched to {config.center_frequency_hz / 1e6:.3f} MHz during the "
                    "recording (another listener chose a profile); recording abandoned",
                )
            return []
        if config.channel_fits(*self.channel_hz):
            return self._tune(config)
        if self.profile_requested is not None:
            if config.profile_id is not None and self.profile_requested.endswith(
                f"|{config.profile_id}"
            ):
                raise ReceiverOutOfRange(
                    self.station_id,
                    f"profile {self.profile_requested} does not cover "
                    f"{self.frequency_hz / 1e6:.4f} MHz after all",
                )
            return []  # still waiting for the requested profile's config
        if self.profiles is None:
            return []  # the profile list decides; it comes in its own message
        profile_id = self._covering_profile_id()
        self.profile_requested = profile_id
        return [protocol.select_profile(profile_id)]

    def _covering_profile_id(self) -> str:
        covering = [
            p
            for p in (self.status.profiles if self.status else ())
            if p.covers(*self.channel_hz) and p.display_name in (self.profiles or {})
        ]
        if not covering:
            spans = ", ".join(
                f"{(p.center_frequency_hz - p.sample_rate_hz / 2) / 1e6:.3f}-"
                f"{(p.center_frequency_hz + p.sample_rate_hz / 2) / 1e6:.3f} MHz"
                for p in (self.status.profiles if self.status else ())
            )
            raise ReceiverOutOfRange(
                self.station_id,
                f"no profile covers {self.frequency_hz / 1e6:.4f} MHz "
                f"(profiles: {spans or 'unknown, status.json unavailable'})",
            )
        return (self.profiles or {})[covering[0].display_name]

    def _tune(self, config: protocol.ReceiverConfig) -> list[str]:
        self.tuned = True
        frames_wanted = math.ceil(MAX_FFT_FRAMES_PER_SECOND * self.duration_s) + 4
        frames_fitting = max(1, MAX_FFT_BYTES // (4 * config.fft_size))
        # Sized once, from the request: nothing the server sends later can grow it.
        self.fft_frames = np.empty(
            (min(frames_wanted, frames_fitting), config.fft_size), np.float32
        )
        offset_hz = self.dial_hz - round(config.center_frequency_hz)
        return [
            protocol.dsp_control(
                mod=DEMODULATOR,
                low_cut_hz=LOW_CUT_HZ,
                high_cut_hz=HIGH_CUT_HZ,
                offset_frequency_hz=offset_hz,
                squelch_level=SQUELCH_LEVEL,
            ),
            protocol.DSP_START,
        ]

    # --- binary -------------------------------------------------------------------

    def handle_binary(self, frame: bytes, arrival_ns: int) -> None:
        if not self.handshake_done:
            raise self.protocol_error("sent binary data before the handshake reply")
        try:
            kind = protocol.frame_type(frame)
        except protocol.FrameError as exc:
            raise self.protocol_error(str(exc)) from exc
        if kind == protocol.FRAME_AUDIO:
            self._audio(frame[1:], arrival_ns)
        elif kind == protocol.FRAME_FFT:
            self._fft(frame[1:], arrival_ns)
        elif kind in protocol.IGNORED_FRAME_TYPES:
            self._count_other()
        else:
            raise self.protocol_error(f"sent a binary frame of unknown type {kind}")

    def _audio(self, payload: bytes, arrival_ns: int) -> None:
        if not self.tuned:
            self._count_other()  # audio of a channel we have not tuned yet
            return
        assert self.config is not None
        if self.audio_received == len(self.audio):
            return
        if len(payload) > MAX_AUDIO_FRAME_BYTES:
            raise self.protocol_error(
                f"sent an audio frame of {len(payload)} bytes (at most {MAX_AUDIO_FRAME_BYTES})"
            )
        try:
            samples, self.adpcm_state = protocol.decode_audio_frame(
                payload, self.config.audio_compression, self.adpcm_state
            )
        except protocol.FrameError as exc:
            raise self.protocol_error(f"sent a malformed audio frame: {exc}") from exc
        if len(samples) == 0:
            return
        take = min(len(samples), len(self.audio) - self.audio_received)
        self.chunk_start.append(self.audio_received)
        self.chunk_arrival_ns.append(arrival_ns)
        self.audio[self.audio_received : self.audio_received + take] = samples[:take]
        self.audio_received += take

    def _fft(self, payload: bytes, arrival_ns: int) -> None:
        if not self.tuned:
            self._count_other()
            return
        assert self.config is not None
        try:
            values_db = protocol.decode_fft_frame(
                payload, self.config.fft_size, self.config.fft_compression
            )
        except protocol.FrameError as exc:
            raise self.protocol_error(f"sent a malformed FFT frame: {exc}") from exc
        if self.fft_kept == len(self.fft_frames):
            self.fft_dropped += 1
            self._count_other()
            return
        self.fft_frames[self.fft_kept] = values_db
        self.fft_kept += 1
        self.fft_arrival_ns.append(arrival_ns)


async def fetch_status(
    station: StationEndpoint, timeout_s: float
) -> protocol.ReceiverStatus | None:
    """``/status.json``, or ``None`` when the receiver answers without a usable one.

    Raises:
        ReceiverUnreachable: no HTTP connection.
        ReceiverTimeout: no answer within ``timeout_s``.
    """
    url = status_url(station.url)
    try:
        async with (
            httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code == 503:
                raise ReceiverDown(
                    station.station_id, f"{url} answers 503: the receiver is down or in maintenance"
                )
            if response.status_code != 200:
                return None
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_STATUS_BYTES:
                    return None
    except httpx.TimeoutException as exc:
        raise ReceiverTimeout(
            station.station_id, f"{url} did not answer within {timeout_s:g} s"
        ) from exc
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise ReceiverUnreachable(station.station_id, f"cannot reach {url}: {exc}") from exc
    try:
        return protocol.parse_status(json.loads(body))
    except (ValueError, RecursionError, protocol.FrameError):
        return None  # metadata and profile choice only: record without them


def _closed_error(
    recording: _AudioRecording, exc: ConnectionClosed, max_frame_bytes: int
) -> ReceiverError:
    progress = (
        f"after {recording.audio_received} of {len(recording.audio)} audio samples"
        if recording.tuned
        else "during the handshake"
    )
    return closed_error(recording.station_id, exc, max_frame_bytes, progress)


def _timeout_error(recording: _AudioRecording, timeout_s: float) -> ReceiverTimeout:
    if recording.audio_received:
        missing = []
        if recording.audio_received < len(recording.audio):
            missing.append(
                f"audio after sample {recording.audio_received} of {len(recording.audio)}"
            )
        if not recording.fft_kept:
            missing.append("any spectrum frame")
        if not recording.smeter:
            missing.append("any S-meter reading")
        detail = f"stream stalled: nothing for {timeout_s:g} s (missing {', '.join(missing)})"
    elif recording.tuned:
        detail = f"no audio within {timeout_s:g} s of tuning"
    elif recording.handshake_done:
        detail = f"set-up incomplete after {timeout_s:g} s (no usable config/profile)"
    else:
        detail = f"no handshake reply within {timeout_s:g} s"
    return ReceiverTimeout(recording.station_id, detail)


async def record_audio(
    station: StationEndpoint,
    *,
    frequency_hz: float,
    duration_s: float,
    connect_timeout_s: float = 5.0,
    first_frame_timeout_s: float = 5.0,
    stall_timeout_s: float = 3.0,
    client_name: str = "heimdall",
    max_frame_bytes: int = MAX_FRAME_BYTES,
    close_timeout_s: float = 1.0,
    clock: Callable[[], int] = time.time_ns,
) -> AudioCapture:
    """Record ``duration_s`` of audio, spectra and S-meter at ``frequency_hz`` from OpenWebRX.

    Args:
        station: where the receiver is.
        frequency_hz: the frequency to measure; it must lie inside one of the
            receiver's profiles (selected when the active one does not cover it).
        duration_s: wanted length; the audio (12 kHz) covers at least this much.
        connect_timeout_s: ``/status.json`` and the websocket opening, each.
        first_frame_timeout_s: from the opened connection to the first audio
            (handshake, profile switch and tuning included).
        stall_timeout_s: longest silence between two useful messages after that.
        client_name: the name announced in the handshake.
        max_frame_bytes: largest websocket message accepted.
        close_timeout_s: how long to wait for the server to acknowledge our close.
        clock: UTC now in Unix ns; stamps the arrival of every message.

    Returns:
        The capture, driver ``"openwebrx"``, with the receiver's name, position
        and profile in ``metadata`` when it published them.

    Raises:
        ReceiverError: a subclass saying what went wrong, naming the station.
        asyncio.CancelledError: when cancelled; the connection is closed first.
    """
    if not duration_s > 0:
        raise ValueError("duration_s must be positive")
    hello = protocol.handshake(client_name)
    status = await fetch_status(station, connect_timeout_s)
    recording = _AudioRecording(station.station_id, frequency_hz, duration_s, status)
    connection = await open_connection(
        websocket_url(station.url),
        station_id=station.station_id,
        station_url=station.url,
        connect_timeout_s=connect_timeout_s,
        max_frame_bytes=max_frame_bytes,
        close_timeout_s=close_timeout_s,
        user_agent=f"heimdall-openwebrx/{DRIVER_VERSION}",
    )
    close_code = CloseCode.NORMAL_CLOSURE
    try:
        await connection.send(hello)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + first_frame_timeout_s
        timeout_s = first_frame_timeout_s
        while not recording.done:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await connection.recv()
            except TimeoutError as exc:
                raise _timeout_error(recording, timeout_s) from exc
            progress = (recording.audio_received, recording.fft_kept, len(recording.smeter))
            for reply in recording.handle_message(message, clock()):
                await connection.send(reply)
            if recording.audio_received and progress != (
                recording.audio_received,
                recording.fft_kept,
                len(recording.smeter),
            ):
                deadline = loop.time() + stall_timeout_s
                timeout_s = stall_timeout_s
    except ConnectionClosed as exc:
        raise await explain_close(
            connection,
            lambda message: recording.handle_message(message, clock()),
            functools.partial(_closed_error, recording, exc, max_frame_bytes),
        ) from exc
    except ReceiverProtocolError:
        close_code = CloseCode.PROTOCOL_ERROR
        raise
    finally:
        # Runs on success, on every error and on cancellation alike.
        await close_connection(connection, close_code)
    return _capture(station, recording)


def _capture(station: StationEndpoint, recording: _AudioRecording) -> AudioCapture:
    config = recording.config
    assert config is not None
    first_chunk_samples = (
        recording.chunk_start[1] if len(recording.chunk_start) > 1 else recording.audio_received
    )
    # The first message arrived once its samples existed: the recording began one
    # message earlier.
    start_ns = recording.chunk_arrival_ns[0] - round(
        first_chunk_samples * NS_PER_S / OUTPUT_RATE_HZ
    )
    status = recording.status
    metadata: dict[str, object] = {
        "url": station.url,
        "server_version": recording.server_version,
        "receiver_name": (status.name if status else None)
        or recording.receiver_details.get("receiver_name"),
        "max_clients": status.max_clients if status else None,
        "profile": recording.profile_requested or config.profile_id,
        "fft_size": config.fft_size,
        "audio_compression": config.audio_compression,
        "fft_compression": config.fft_compression,
        "fft_frames_dropped": recording.fft_dropped,
        "requested_duration_s": recording.duration_s,
    }
    if status is not None and status.latitude is not None:
        metadata["latitude"], metadata["longitude"] = status.latitude, status.longitude
    if status is not None and status.altitude_m is not None:
        metadata["altitude_m"] = status.altitude_m
    server = recording.server_version or "unknown"
    return AudioCapture(
        station_id=station.station_id,
        center_frequency_hz=float(round(recording.frequency_hz)),
        dial_frequency_hz=float(recording.dial_hz),
        demodulator=DEMODULATOR,
        passband_hz=(float(LOW_CUT_HZ), float(HIGH_CUT_HZ)),
        sample_rate_hz=float(OUTPUT_RATE_HZ),
        samples=recording.audio.astype(np.float32) / np.float32(protocol.INT16_FULL_SCALE),
        chunk_start_index=np.asarray(recording.chunk_start, dtype=np.int64),
        chunk_arrival_ns=np.asarray(recording.chunk_arrival_ns, dtype=np.int64),
        fft_db=recording.fft_frames[: recording.fft_kept].copy(),
        fft_arrival_ns=np.asarray(recording.fft_arrival_ns, dtype=np.int64),
        fft_center_frequency_hz=config.center_frequency_hz,
        fft_sample_rate_hz=config.sample_rate_hz,
        smeter_power=np.asarray(recording.smeter, dtype=np.float64),
        smeter_arrival_ns=np.asarray(recording.smeter_arrival_ns, dtype=np.int64),
        start_time=datetime.fromtimestamp(start_ns / NS_PER_S, tz=UTC),
        driver=DRIVER_NAME,
        driver_version=f"heimdall-openwebrx {DRIVER_VERSION}; server {server}",
        metadata=metadata,
    )
