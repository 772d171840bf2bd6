"""Record GPS-timestamped IQ from a KiwiSDR over its websocket sound channel.

:func:`record_iq` is the whole driver: connect, authenticate, answer the
server's rate announcements, tune in IQ mode with AGC off, keep the connection
alive, collect exactly the requested number of 512-sample blocks, close. Every
way it can fail is a :class:`~heimdall.receivers.errors.ReceiverError` subclass
naming the station. Frame parsing lives in :mod:`.protocol`; this module owns
the I/O and the per-connection state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from heimdall.core.constants import NS_PER_S
from heimdall.receivers.capture import GPS_STATUS_NO_GPS, SAMPLES_PER_BLOCK, IQCapture
from heimdall.receivers.errors import (
    ReceiverError,
    ReceiverProtocolError,
    ReceiverStreamGap,
    ReceiverTimeout,
)
from heimdall.receivers.gps import GPS_UTC_OFFSET_S, gps_time_of_week_to_utc_ns
from heimdall.receivers.kiwisdr import protocol
from heimdall.receivers.websocket import (
    close_connection,
    closed_error,
    explain_close,
    open_connection,
)

DRIVER_NAME = "kiwisdr"
DRIVER_VERSION = "1.0"

#: Largest websocket message accepted. IQ frames are 2068 bytes; the largest
#: legitimate text is ``MSG load_cfg=...`` (the URL-encoded receiver
#: configuration, a few kB up to some tens of kB on busy receivers). Anything
#: bigger is refused by the websockets library from the frame header, before
#: the payload is read.
MAX_FRAME_BYTES = 64 * 1024
#: Non-sample frames (MSG, W/F, EXT, DAT) tolerated per recording: a fixed
#: allowance for the handshake plus a generous rate for occasional status messages.
OTHER_FRAMES_BASE_ALLOWANCE = 256
OTHER_FRAMES_PER_SECOND = 10.0
#: Sample rates a KiwiSDR can report (12 kHz or 20.25 kHz, GPS-corrected). A value
#: outside this range is refused before it can size the preallocated capture.
SAMPLE_RATE_RANGE_HZ = (1_000.0, 200_000.0)

_UINT32_MASK = 0xFFFFFFFF

# Part of the sound-channel path; the server only needs it to be unique per
# connection. Milliseconds since the epoch at import, then +1 per connection.
_connection_ids = itertools.count(time.time_ns() // 1_000_000)


@dataclass(frozen=True, slots=True)
class StationEndpoint:
    """Where and how to reach one KiwiSDR.

    Attributes:
        station_id: registry id, used in every error message.
        url: ``ws://host:port`` (``wss://`` also accepted), no path.
        password: the receiver's user password; empty for open receivers.
    """

    station_id: str
    url: str
    password: str = field(default="", repr=False)


def sound_channel_url(base_url: str, connection_id: int) -> str:
    """The websocket URL of the sound channel: ``<base>/<connection_id>/SND``.

    >>> sound_channel_url("ws://127.0.0.1:8073/", 1700000000000)
    'ws://127.0.0.1:8073/1700000000000/SND'
    """
    return f"{base_url.rstrip('/')}/{connection_id}/SND"


class _IQRecording:
    """The state of one recording: what the server said and the blocks kept so far.

    No I/O: :meth:`handle_frame` takes one server frame and returns the commands
    to send back, raising a :class:`ReceiverError` when the frame is a refusal or
    breaks the protocol.
    """

    def __init__(
        self,
        station_id: str,
        frequency_hz: float,
        duration_s: float,
        manual_gain_db: int,
        ident_user: str,
        max_other_frames: int,
    ) -> None:
        self.station_id = station_id
        self.frequency_hz = frequency_hz
        self.duration_s = duration_s
        self.manual_gain_db = manual_gain_db
        self.ident_user = ident_user
        self.max_other_frames = max_other_frames

        self.audio_rate: int | None = None
        self.sample_rate_hz: float | None = None
        self.configured = False
        self.server_version: str | None = None
        self.receiver_name: str | None = None
        self.position: tuple[float, float] | None = None
        self.rx_channels: int | None = None
        self.other_frames = 0

        self.n_blocks = 0
        self.blocks_received = 0
        self.next_sequence: int | None = None
        self.adc_overflow_blocks = 0
        self.little_endian_blocks = 0
        self.samples = np.empty(0, dtype=np.complex64)
        self.gps_tow_s = np.empty(0, dtype=np.int64)
        self.gps_tow_ns = np.empty(0, dtype=np.int64)
        self.gps_status = np.empty(0, dtype=np.uint8)
        self.rssi_dbm = np.empty(0, dtype=np.float32)

    @property
    def done(self) -> bool:
        return self.configured and self.blocks_received == self.n_blocks

    def protocol_error(self, detail: str) -> ReceiverProtocolError:
        return ReceiverProtocolError(self.station_id, detail)

    def handle_frame(self, frame: bytes) -> list[str]:
        try:
            tag = protocol.frame_tag(frame)
        except protocol.FrameError as exc:
            raise self.protocol_error(str(exc)) from exc
        if tag == protocol.TAG_SND:
            self._handle_iq_block(frame)
            return []
        self.other_frames += 1
        if self.other_frames > self.max_other_frames:
            raise self.protocol_error(
                f"sent more than {self.max_other_frames} non-sample messages; giving up"
            )
        if tag == protocol.TAG_MSG:
            return self._handle_msg(protocol.parse_msg(frame))
        if tag in protocol.IGNORED_TAGS:
            return []
        raise self.protocol_error(f"sent a frame with unknown tag {frame[:3]!r}")

    def _handle_msg(self, params: dict[str, str]) -> list[str]:
        refusal = protocol.refusal_error(self.station_id, params)
        if refusal is not None:
            raise refusal
        commands: list[str] = []
        if "audio_rate" in params and self.audio_rate is None:
            self.audio_rate = self._parse_audio_rate(params["audio_rate"])
            commands.append(protocol.audio_rate_reply(self.audio_rate))
        if "sample_rate" in params and self.sample_rate_hz is None:
            self.sample_rate_hz = self._parse_sample_rate(params["sample_rate"])
        if "version_maj" in params:
            self.server_version = f"{params['version_maj']}.{params.get('version_min', '?')}"
        if "rx_chans" in params and params["rx_chans"].isdigit():
            self.rx_channels = int(params["rx_chans"])
        if "load_cfg" in params:
            self._read_configuration(params["load_cfg"])
        return commands

    @property
    def ready_to_configure(self) -> bool:
        """Both rates are known and the tuning commands have not been sent yet."""
        return (
            not self.configured and self.audio_rate is not None and self.sample_rate_hz is not None
        )

    def configure(self) -> list[str]:
        """The commands that start the stream (the receiver's start gate), once."""
        assert self.ready_to_configure and self.sample_rate_hz is not None
        commands = protocol.configuration_commands(
            self.frequency_hz, self.manual_gain_db, self.ident_user
        )
        self._allocate(protocol.blocks_for_duration(self.duration_s, self.sample_rate_hz))
        return commands

    def _parse_audio_rate(self, value: str) -> int:
        if not value.isdigit() or not 0 < int(value) <= SAMPLE_RATE_RANGE_HZ[1]:
            raise self.protocol_error(f"announced an impossible audio_rate {value!r}")
        return int(value)

    def _parse_sample_rate(self, value: str) -> float:
        try:
            rate_hz = float(value)
        except ValueError:
            rate_hz = math.nan
        low_hz, high_hz = SAMPLE_RATE_RANGE_HZ
        if not low_hz <= rate_hz <= high_hz:  # also refuses NaN
            raise self.protocol_error(f"announced an impossible sample_rate {value!r}")
        return rate_hz

    def _read_configuration(self, load_cfg: str) -> None:
        # The configuration only adds metadata: a malformed one must not cost the recording.
        try:
            config = protocol.parse_load_cfg(load_cfg)
        except protocol.FrameError:
            return
        rx_gps = config.get("rx_gps")
        if isinstance(rx_gps, str):
            self.position = protocol.parse_rx_gps(rx_gps)
        rx_name = config.get("rx_name")
        if isinstance(rx_name, str):
            self.receiver_name = rx_name

    def _allocate(self, n_blocks: int) -> None:
        # Sized once, from the request: nothing the server sends later can grow it.
        self.n_blocks = n_blocks
        self.samples = np.empty(n_blocks * SAMPLES_PER_BLOCK, dtype=np.complex64)
        self.gps_tow_s = np.empty(n_blocks, dtype=np.int64)
        self.gps_tow_ns = np.empty(n_blocks, dtype=np.int64)
        self.gps_status = np.empty(n_blocks, dtype=np.uint8)
        self.rssi_dbm = np.empty(n_blocks, dtype=np.float32)
        self.configured = True

    def _handle_iq_block(self, frame: bytes) -> None:
        if not self.configured:
            raise self.protocol_error("sent samples before announcing audio_rate and sample_rate")
        try:
            header = protocol.parse_iq_header(frame)
        except protocol.FrameError as exc:
            raise self.protocol_error(f"sent a malformed sample block: {exc}") from exc
        if self.next_sequence is not None and header.sequence != self.next_sequence:
            raise ReceiverStreamGap(self.station_id, self.next_sequence, header.sequence)
        self.next_sequence = (header.sequence + 1) & _UINT32_MASK
        if self.done:
            return
        block = self.blocks_received
        start = block * SAMPLES_PER_BLOCK
        self.samples[start : start + SAMPLES_PER_BLOCK] = protocol.decode_iq_samples(
            frame, header.little_endian
        )
        self.gps_tow_s[block] = header.gps_time_of_week_s
        self.gps_tow_ns[block] = header.gps_time_of_week_ns
        self.gps_status[block] = header.last_gps_solution
        self.rssi_dbm[block] = protocol.rssi_dbm_from_smeter(header.smeter)
        self.adc_overflow_blocks += header.adc_overflow
        self.little_endian_blocks += header.little_endian
        self.blocks_received += 1


def block_times_ns(
    gps_tow_s: npt.NDArray[np.int64],
    gps_tow_ns: npt.NDArray[np.int64],
    gps_status: npt.NDArray[np.uint8],
    sample_rate_hz: float,
    host_utc_ns: int,
    gps_utc_offset_s: int = GPS_UTC_OFFSET_S,
) -> npt.NDArray[np.int64]:
    """UTC ns of each block's first sample.

    Blocks carrying a GPS time of week are converted with the GPS week of
    ``host_utc_ns``. A block from a receiver without a GPS clock (status 255)
    and an all-zero stamp has no time of its own: it is placed at
    ``host_utc_ns`` plus its sample offset, so a capture always has a
    monotonic time base (and ``has_gps_time`` says it is not GPS-grade).

    >>> tow = np.array([0, 0], dtype=np.int64)
    >>> block_times_ns(tow, tow, np.array([255, 255], np.uint8), 512.0, 10**18).tolist()
    [1000000000000000000, 1000000001000000000]
    """
    utc_ns = gps_time_of_week_to_utc_ns(gps_tow_s, gps_tow_ns, host_utc_ns, gps_utc_offset_s)
    unstamped = (gps_status == GPS_STATUS_NO_GPS) & (gps_tow_s == 0) & (gps_tow_ns == 0)
    block_offset_ns = np.round(
        np.arange(len(gps_tow_s), dtype=np.float64) * SAMPLES_PER_BLOCK * 1e9 / sample_rate_hz
    ).astype(np.int64)
    return np.where(unstamped, host_utc_ns + block_offset_ns, utc_ns).astype(np.int64)


async def _send_keepalives(connection: ClientConnection, interval_s: float) -> None:
    """``SET keepalive`` every ``interval_s``: the server drops silent clients after 60 s."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(interval_s)
            await connection.send(protocol.KEEPALIVE_COMMAND)


def _closed_error(
    recording: _IQRecording, exc: ConnectionClosed, max_frame_bytes: int
) -> ReceiverError:
    progress = (
        f"after {recording.blocks_received} of {recording.n_blocks} blocks"
        if recording.configured
        else "during the handshake"
    )
    return closed_error(recording.station_id, exc, max_frame_bytes, progress)


def _timeout_error(recording: _IQRecording, timeout_s: float) -> ReceiverTimeout:
    if recording.blocks_received:
        detail = (
            f"stream stalled: no samples for {timeout_s:g} s after block "
            f"{recording.blocks_received} of {recording.n_blocks}"
        )
    elif recording.configured:
        detail = f"no samples within {timeout_s:g} s of connecting"
    else:
        detail = f"handshake incomplete after {timeout_s:g} s (no audio_rate/sample_rate)"
    return ReceiverTimeout(recording.station_id, detail)


async def _open(
    station: StationEndpoint,
    connect_timeout_s: float,
    max_frame_bytes: int,
    close_timeout_s: float,
) -> ClientConnection:
    return await open_connection(
        sound_channel_url(station.url, next(_connection_ids)),
        station_id=station.station_id,
        station_url=station.url,
        connect_timeout_s=connect_timeout_s,
        max_frame_bytes=max_frame_bytes,
        close_timeout_s=close_timeout_s,
        user_agent=f"heimdall-kiwisdr/{DRIVER_VERSION}",
    )


async def record_iq(
    station: StationEndpoint,
    *,
    frequency_hz: float,
    duration_s: float,
    connect_timeout_s: float = 5.0,
    first_frame_timeout_s: float = 5.0,
    stall_timeout_s: float = 3.0,
    manual_gain_db: int = 50,
    ident_user: str = "heimdall",
    gps_utc_offset_s: int = GPS_UTC_OFFSET_S,
    keepalive_interval_s: float = 1.0,
    max_frame_bytes: int = MAX_FRAME_BYTES,
    close_timeout_s: float = 1.0,
    clock: Callable[[], int] = time.time_ns,
    start: Callable[[], Awaitable[None]] | None = None,
    max_speedup: float | None = None,
) -> IQCapture:
    """Record ``duration_s`` of IQ around ``frequency_hz`` from one KiwiSDR.

    Args:
        station: where the receiver is and its password.
        frequency_hz: centre frequency; the receiver tunes with 1 Hz resolution.
        duration_s: wanted length. The capture holds whole 512-sample blocks:
            ``ceil(duration_s * sample_rate / 512)`` of them, so it is at most one
            block (about 43 ms at 12 kHz) longer than asked.
        connect_timeout_s: TCP + websocket opening.
        first_frame_timeout_s: from the opened connection to the first sample
            block (the whole protocol handshake).
        stall_timeout_s: longest silence between two sample blocks.
        manual_gain_db: fixed RF gain with AGC off, so that IQ amplitude is
            proportional to the signal at the antenna across the recording.
        ident_user: the name shown in the receiver's user list (no spaces).
        gps_utc_offset_s: GPS - UTC leap seconds.
        keepalive_interval_s: period of ``SET keepalive``.
        max_frame_bytes: largest websocket message accepted.
        close_timeout_s: how long to wait for the server to acknowledge our close.
        clock: UTC now in Unix ns; gives the GPS week and the fallback time base.
        start: awaited once the handshake is done, before the tuning commands that
            start the stream; lets several receivers start together. Its wait does
            not count against ``first_frame_timeout_s``.
        max_speedup: when given, a receiver that delivered the blocks more than this
            many times faster than its announced sample rate allows (beyond
            ``PACE_SLACK_S``) is refused: no real receiver can, so its samples and
            timestamps are not what they claim.

    Returns:
        The capture, with driver ``"kiwisdr"`` and the receiver's position and
        name (from its configuration) in ``metadata`` when it sent them.

    Raises:
        ReceiverError: a subclass saying what went wrong, naming the station.
        asyncio.CancelledError: when cancelled; the connection is closed first.
    """
    if not duration_s > 0:
        raise ValueError("duration_s must be positive")
    recording = _IQRecording(
        station.station_id,
        frequency_hz,
        duration_s,
        manual_gain_db,
        ident_user,
        max_other_frames=OTHER_FRAMES_BASE_ALLOWANCE
        + math.ceil(OTHER_FRAMES_PER_SECOND * duration_s),
    )
    # Build the commands before connecting: a bad password or name fails here, not on the wire.
    auth = protocol.auth_command(station.password)
    protocol.configuration_commands(frequency_hz, manual_gain_db, ident_user)

    connection = await _open(station, connect_timeout_s, max_frame_bytes, close_timeout_s)
    first_block_host_ns = 0
    started_loop_s = 0.0
    keepalive = asyncio.create_task(_send_keepalives(connection, keepalive_interval_s))
    close_code = CloseCode.NORMAL_CLOSURE
    try:
        await connection.send(auth)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + first_frame_timeout_s
        timeout_s = first_frame_timeout_s
        while not recording.done:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await connection.recv()
            except TimeoutError as exc:
                raise _timeout_error(recording, timeout_s) from exc
            frame = message.encode("utf-8") if isinstance(message, str) else message
            blocks_before = recording.blocks_received
            for command in recording.handle_frame(frame):
                await connection.send(command)
            if recording.ready_to_configure:
                if start is not None:
                    await start()
                for command in recording.configure():
                    await connection.send(command)
                started_loop_s = loop.time()  # the receiver starts streaming from here
                deadline = loop.time() + first_frame_timeout_s
            if recording.blocks_received > blocks_before:
                if blocks_before == 0:
                    first_block_host_ns = clock()
                deadline = loop.time() + stall_timeout_s
                timeout_s = stall_timeout_s
    except ConnectionClosed as exc:
        raise await explain_close(
            connection,
            lambda frame: recording.handle_frame(
                frame.encode("utf-8") if isinstance(frame, str) else frame
            ),
            functools.partial(_closed_error, recording, exc, max_frame_bytes),
        ) from exc
    except ReceiverProtocolError:
        close_code = CloseCode.PROTOCOL_ERROR
        raise
    finally:
        # Runs on success, on every error and on cancellation alike.
        keepalive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keepalive
        await close_connection(connection, close_code)

    assert recording.sample_rate_hz is not None  # done implies configured
    if max_speedup is not None:
        _check_pace(recording, asyncio.get_running_loop().time() - started_loop_s, max_speedup)
    return _capture(station, recording, first_block_host_ns, gps_utc_offset_s)


#: Blocks may arrive in bursts (network, the receiver's own buffer): this much of the
#: recording may come at once without counting against its pace.
PACE_SLACK_S = 0.25


def _check_pace(recording: _IQRecording, elapsed_s: float, max_speedup: float) -> None:
    """Refuse a stream faster than real time allows: ``elapsed_s``, from the tuning
    commands that start the stream to the last block, must cover the recording's
    length / ``max_speedup`` (minus the slack).

    Measured from the start command, not the first block: a worker too busy to read
    for a while finds an honest receiver's blocks queued and reads them at once, but
    they cannot all have arrived before the receiver had recorded them.
    """
    assert recording.sample_rate_hz is not None
    span_s = recording.blocks_received * SAMPLES_PER_BLOCK / recording.sample_rate_hz
    if elapsed_s < span_s / max_speedup - PACE_SLACK_S:
        raise recording.protocol_error(
            f"sent {span_s:.2f} s of samples in {elapsed_s:.2f} s: faster than its "
            f"announced sample rate allows (more than {max_speedup:g}x); dropped"
        )


def _capture(
    station: StationEndpoint,
    recording: _IQRecording,
    first_block_host_ns: int,
    gps_utc_offset_s: int,
) -> IQCapture:
    assert recording.sample_rate_hz is not None
    times_ns = block_times_ns(
        recording.gps_tow_s,
        recording.gps_tow_ns,
        recording.gps_status,
        recording.sample_rate_hz,
        first_block_host_ns,
        gps_utc_offset_s,
    )
    server = recording.server_version or "unknown"
    metadata: dict[str, object] = {
        "url": station.url,
        "server_version": recording.server_version,
        "receiver_name": recording.receiver_name,
        "rx_channels": recording.rx_channels,
        "audio_rate_hz": recording.audio_rate,
        "agc": "off",
        "manual_gain_db": recording.manual_gain_db,
        "gps_utc_offset_s": gps_utc_offset_s,
        "adc_overflow_blocks": recording.adc_overflow_blocks,
        "little_endian_blocks": recording.little_endian_blocks,
        "requested_duration_s": recording.duration_s,
    }
    if recording.position is not None:
        metadata["latitude"], metadata["longitude"] = recording.position
    return IQCapture(
        station_id=station.station_id,
        center_frequency_hz=float(round(recording.frequency_hz)),
        sample_rate_hz=recording.sample_rate_hz,
        samples=recording.samples,
        block_start_index=np.arange(recording.n_blocks, dtype=np.int64) * SAMPLES_PER_BLOCK,
        block_time_ns=times_ns,
        block_gps_status=recording.gps_status,
        rssi_dbm=recording.rssi_dbm,
        start_time=datetime.fromtimestamp(int(times_ns[0]) / NS_PER_S, tz=UTC),
        driver=DRIVER_NAME,
        driver_version=f"heimdall-kiwisdr {DRIVER_VERSION}; server {server}",
        metadata=metadata,
    )
