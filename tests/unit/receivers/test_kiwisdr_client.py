"""The KiwiSDR client against a scripted KiwiSDR peer on loopback (no mocks)."""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import socket
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from heimdall.receivers.capture import GPS_STATUS_NO_GPS, IQCapture
from heimdall.receivers.errors import (
    ReceiverAuthFailed,
    ReceiverBusy,
    ReceiverConnectionLost,
    ReceiverDown,
    ReceiverError,
    ReceiverProtocolError,
    ReceiverRedirect,
    ReceiverStreamGap,
    ReceiverTimeout,
    ReceiverUnreachable,
)
from heimdall.receivers.gps import GPS_EPOCH_UNIX_S, GPS_UTC_OFFSET_S, SECONDS_PER_WEEK
from heimdall.receivers.kiwisdr import StationEndpoint, record_iq
from heimdall.receivers.kiwisdr.client import MAX_FRAME_BYTES
from tests.unit.receivers.fake_kiwisdr import (
    DEFAULT_START_UTC_NS,
    RX_GPS,
    Behaviour,
    FakeKiwi,
    accept_websocket,
    block_utc_ns,
    expected_iq,
    iq_frame,
    raw_server,
    unmasked_binary_frame_header,
)

NS_PER_S = 1_000_000_000
STATION_ID = "giaveno"
FAST: dict[str, Any] = {
    "connect_timeout_s": 1.0,
    "first_frame_timeout_s": 1.0,
    "stall_timeout_s": 0.5,
}


def station(kiwi_url: str, password: str = "") -> StationEndpoint:
    return StationEndpoint(station_id=STATION_ID, url=kiwi_url, password=password)


def host_clock_at(utc_ns: int) -> Callable[[], int]:
    return lambda: utc_ns


async def record(kiwi: FakeKiwi, duration_s: float = 1.0, **kwargs: Any) -> IQCapture:
    options: dict[str, Any] = {
        **FAST,
        "clock": host_clock_at(DEFAULT_START_UTC_NS + 5 * NS_PER_S),
    }
    options.update(kwargs)
    password = str(options.pop("password", kiwi.behaviour.password))
    return await record_iq(
        station(kiwi.url, password),
        frequency_hz=7_074_000.0,
        duration_s=duration_s,
        **options,
    )


# --- a healthy receiver ---------------------------------------------------------------


async def test_full_handshake_and_capture(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.password = "s3cret"
    capture = await record(fake_kiwi, duration_s=1.0)

    session = fake_kiwi.sessions[0]
    assert re.fullmatch(r"/\d+/SND", session.path)
    assert session.commands[0] == "SET auth t=kiwi p=s3cret"
    for command in (
        "SET AR OK in=12000 out=44100",
        "SET squelch=0 max=0",
        "SET genattn=0",
        "SET gen=0 mix=-1",
        "SET ident_user=heimdall",
        "SET mod=iq low_cut=-5000 high_cut=5000 freq=7074.000",
        "SET agc=0 hang=0 thresh=-100 slope=6 decay=1000 manGain=50",
        "SET keepalive",
    ):
        assert command in session.commands
    # The capture ends the connection itself, with a normal close.
    await asyncio.wait_for(session.closed.wait(), 2)
    assert session.close_code == 1000

    n_blocks = math.ceil(1.0 * 12001.135 / 512)
    assert capture.driver == "kiwisdr"
    assert "1.550" in capture.driver_version
    assert capture.station_id == STATION_ID
    assert capture.sample_rate_hz == pytest.approx(12001.135)
    assert capture.center_frequency_hz == 7_074_000.0
    assert len(capture.samples) == n_blocks * 512
    np.testing.assert_array_equal(capture.samples, expected_iq(0, n_blocks * 512))
    np.testing.assert_array_equal(capture.block_start_index, np.arange(n_blocks) * 512)
    np.testing.assert_allclose(capture.rssi_dbm, 0.1 * 470 - 127, atol=1e-4)
    assert np.all(capture.block_gps_status == 3) and capture.has_gps_time
    assert (capture.metadata["latitude"], capture.metadata["longitude"]) == RX_GPS
    assert capture.metadata["receiver_name"] == "Fake Kiwi"


async def test_each_connection_uses_a_new_path(fake_kiwi: FakeKiwi) -> None:
    await record(fake_kiwi, duration_s=0.1)
    await record(fake_kiwi, duration_s=0.1)
    assert fake_kiwi.sessions[0].path != fake_kiwi.sessions[1].path


@pytest.mark.parametrize("order", list(itertools.permutations(("auth", "sound", "rate"))))
@pytest.mark.parametrize("groups_before_auth", [0, 1])
async def test_message_order_does_not_matter(
    fake_kiwi: FakeKiwi, order: tuple[str, ...], groups_before_auth: int
) -> None:
    fake_kiwi.behaviour.msg_order = order
    fake_kiwi.behaviour.groups_before_auth = groups_before_auth
    capture = await record(fake_kiwi, duration_s=0.2)
    assert len(capture.samples) == math.ceil(0.2 * 12001.135 / 512) * 512
    commands = fake_kiwi.sessions[0].commands
    # Configuration waits for both rates, and the AR answer comes exactly once.
    assert commands.count("SET AR OK in=12000 out=44100") == 1
    assert sum(c.startswith("SET mod=iq") for c in commands) == 1


@pytest.mark.parametrize(
    ("duration_s", "sample_rate_hz"),
    [(1.0, 12001.135), (2.5, 12001.135), (0.01, 12001.135), (1.0, 20250.0), (3.0, 11999.2)],
)
async def test_sample_count_is_duration_rounded_up_to_whole_blocks(
    fake_kiwi: FakeKiwi, duration_s: float, sample_rate_hz: float
) -> None:
    fake_kiwi.behaviour.sample_rate_hz = sample_rate_hz
    capture = await record(fake_kiwi, duration_s=duration_s)
    wanted = duration_s * sample_rate_hz
    assert wanted <= len(capture.samples) < wanted + 512
    assert capture.duration_s == pytest.approx(duration_s, abs=512 / sample_rate_hz)


async def test_block_times_are_utc_and_spaced_by_block_length(fake_kiwi: FakeKiwi) -> None:
    capture = await record(fake_kiwi, duration_s=2.0)
    n_blocks = len(capture.block_time_ns)
    truth = [block_utc_ns(DEFAULT_START_UTC_NS, k, 12001.135) for k in range(n_blocks)]
    # GPS time of week -> UTC is exact to the nanosecond.
    np.testing.assert_array_equal(capture.block_time_ns, truth)
    spacing_ns = np.diff(capture.block_time_ns)
    assert np.all(np.abs(spacing_ns - 512 / 12001.135 * 1e9) < 1_000)
    assert capture.start_time.timestamp() == pytest.approx(DEFAULT_START_UTC_NS / NS_PER_S)


async def test_recording_across_the_gps_week_boundary(fake_kiwi: FakeKiwi) -> None:
    week_start_gps_s = 2288 * SECONDS_PER_WEEK + SECONDS_PER_WEEK  # start of week 2289
    boundary_utc_ns = (week_start_gps_s + GPS_EPOCH_UNIX_S - GPS_UTC_OFFSET_S) * NS_PER_S
    fake_kiwi.behaviour.start_utc_ns = boundary_utc_ns - NS_PER_S  # one second before it
    # Host clock on the far side of the boundary: the first blocks still belong to week 2288.
    capture = await record(
        fake_kiwi, duration_s=2.0, clock=host_clock_at(boundary_utc_ns + 3 * NS_PER_S)
    )
    truth = [
        block_utc_ns(boundary_utc_ns - NS_PER_S, k, 12001.135)
        for k in range(len(capture.block_time_ns))
    ]
    np.testing.assert_array_equal(capture.block_time_ns, truth)


async def test_receiver_without_gps_keeps_status_per_block(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.gps_status = GPS_STATUS_NO_GPS
    capture = await record(fake_kiwi, duration_s=0.5)
    assert np.all(capture.block_gps_status == GPS_STATUS_NO_GPS)
    assert not capture.has_gps_time


@pytest.mark.parametrize("little_endian", [False, True])
@pytest.mark.parametrize("text_frames", [False, True])
async def test_both_byte_orders_and_frame_types(
    fake_kiwi: FakeKiwi, little_endian: bool, text_frames: bool
) -> None:
    fake_kiwi.behaviour.little_endian = little_endian
    fake_kiwi.behaviour.text_frames = text_frames
    capture = await record(fake_kiwi, duration_s=0.3)
    np.testing.assert_array_equal(capture.samples, expected_iq(0, len(capture.samples)))
    assert capture.samples.dtype == np.complex64


async def test_sequence_may_start_anywhere_and_wrap(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.first_sequence = 0xFFFFFFFF - 3
    capture = await record(fake_kiwi, duration_s=0.5)
    assert len(capture.block_time_ns) == math.ceil(0.5 * 12001.135 / 512)


async def test_harmless_tags_are_ignored(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.frames_before_stream = [b"W/F" + bytes(100), b"EXT x", b"DAT y", b"MSG x=1"]
    capture = await record(fake_kiwi, duration_s=0.2)
    np.testing.assert_array_equal(capture.samples, expected_iq(0, len(capture.samples)))


async def test_keepalives_are_sent_while_streaming(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.block_interval_s = 0.02
    await record(fake_kiwi, duration_s=0.5, keepalive_interval_s=0.05)
    # ~0.25 s of streaming at one keepalive per 50 ms, plus the one in the configuration.
    assert fake_kiwi.sessions[0].commands.count("SET keepalive") >= 4


# --- refusals and faults -------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "error_type"),
    [
        ("too_busy=4", ReceiverBusy),
        ("badp=1", ReceiverAuthFailed),
        ("down", ReceiverDown),
        ("redirect=ws%3A%2F%2F127.0.0.1%3A9999", ReceiverRedirect),
        ("password_timeout", ReceiverAuthFailed),
    ],
)
@pytest.mark.parametrize("on_connect", [False, True], ids=["after-auth", "on-connect-then-close"])
async def test_refusals_become_typed_errors(
    fake_kiwi: FakeKiwi, refusal: str, error_type: type[ReceiverError], on_connect: bool
) -> None:
    fake_kiwi.behaviour.refusal = refusal
    fake_kiwi.behaviour.refuse_on_connect = on_connect
    with pytest.raises(error_type) as raised:
        await record(fake_kiwi)
    assert raised.value.station_id == STATION_ID
    assert STATION_ID in str(raised.value)
    if isinstance(raised.value, ReceiverRedirect):
        assert raised.value.url == "ws://127.0.0.1:9999"


async def test_wrong_password(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.password = "right"
    with pytest.raises(ReceiverAuthFailed, match="password"):
        await record(fake_kiwi, password="wrong")


async def test_connection_refused() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ReceiverUnreachable, match=STATION_ID):
        await record_iq(station(f"ws://127.0.0.1:{port}"), frequency_hz=1e6, duration_s=1, **FAST)


async def test_connect_timeout_when_the_upgrade_never_comes() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(30)

    async with raw_server(never_answer) as url:
        started = time.monotonic()
        with pytest.raises(ReceiverTimeout, match="no connection"):
            await record_iq(station(url), frequency_hz=1e6, duration_s=1, connect_timeout_s=0.3)
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("setting", "value", "timeout_option", "message"),
    [
        ("silent", True, "first_frame_timeout_s", "handshake incomplete after 0.3 s"),
        ("stall_after", 0, "first_frame_timeout_s", "no samples within 0.3 s"),
        ("stall_after", 5, "stall_timeout_s", "stalled: no samples for 0.3 s after block 5 of"),
    ],
)
async def test_silences_time_out(
    fake_kiwi: FakeKiwi, setting: str, value: object, timeout_option: str, message: str
) -> None:
    setattr(fake_kiwi.behaviour, setting, value)
    started = time.monotonic()
    with pytest.raises(ReceiverTimeout, match=message):
        await record(fake_kiwi, **{timeout_option: 0.3})
    assert time.monotonic() - started < 1.5


async def test_dropped_connection(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.drop_after = 5
    with pytest.raises(ReceiverConnectionLost, match=r"after \d of 24 blocks"):
        await record(fake_kiwi)


async def test_sequence_gap_names_the_blocks(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.gap_after = 7
    with pytest.raises(ReceiverStreamGap) as raised:
        await record(fake_kiwi)
    assert (raised.value.expected_sequence, raised.value.received_sequence) == (8, 9)
    assert STATION_ID in str(raised.value)


@pytest.mark.parametrize(
    ("bad_frame", "message"),
    [
        (b"XYZ" + bytes(2065), "unknown tag"),
        (b"SND" + bytes(2000), "2003 bytes"),
        (b"SN", "too short"),
        (iq_frame(Behaviour(), 0, 1)[:3] + b"\x18" + iq_frame(Behaviour(), 0, 1)[4:], "compressed"),
    ],
)
async def test_malformed_frames_are_protocol_errors(
    fake_kiwi: FakeKiwi, bad_frame: bytes, message: str
) -> None:
    fake_kiwi.behaviour.replace_block = (3, bad_frame)
    with pytest.raises(ReceiverProtocolError, match=message):
        await record(fake_kiwi)


async def test_samples_before_the_rates_are_a_protocol_error(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.block_before_rates = True
    with pytest.raises(ReceiverProtocolError, match="before announcing"):
        await record(fake_kiwi)


@pytest.mark.parametrize("rate", ["1e12", "nan", "-12000", "fast"])
async def test_absurd_sample_rate_is_refused(fake_kiwi: FakeKiwi, rate: str) -> None:
    fake_kiwi.behaviour.msg_order = ("auth", "sound")
    fake_kiwi.behaviour.frames_before_stream = []
    fake_kiwi.behaviour.refusal = None
    fake_kiwi.msg_groups = lambda: {  # type: ignore[method-assign]
        "auth": ["badp=0"],
        "sound": ["audio_rate=12000", f"sample_rate={rate}"],
    }
    with pytest.raises(ReceiverProtocolError, match="sample_rate"):
        await record(fake_kiwi)


async def test_oversized_frame_is_refused(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.frames_before_stream = [b"MSG " + b"x" * (MAX_FRAME_BYTES + 10)]
    with pytest.raises(ReceiverProtocolError, match="larger than"):
        await record(fake_kiwi)


async def test_cancellation_closes_the_connection(fake_kiwi: FakeKiwi) -> None:
    fake_kiwi.behaviour.block_interval_s = 0.05
    task = asyncio.create_task(record(fake_kiwi, duration_s=30.0))
    await asyncio.wait_for(fake_kiwi.connected.wait(), 2)
    session = fake_kiwi.sessions[0]
    await asyncio.wait_for(session.streaming.wait(), 2)
    await asyncio.sleep(0.15)
    assert session.blocks_sent >= 2 and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(session.closed.wait(), 1.0)
    assert session.close_code == 1000


# --- hostile servers: memory stays bounded by the requested capture -----------------

DURATION_S = 10.0
CAPTURE_BYTES = math.ceil(DURATION_S * 12000 / 512) * (512 * 8 + 8 + 8 + 1 + 4)
GARBAGE_BYTES = 100 * 2**20


async def peak_traced_bytes(
    coroutine_factory: Callable[[], Awaitable[IQCapture]],
) -> tuple[ReceiverError, int]:
    """Run the recording with tracemalloc on; return (exception, peak bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        with pytest.raises(ReceiverError) as raised:
            await coroutine_factory()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return raised.value, peak - baseline


async def test_flood_of_ignored_frames_is_bounded(fake_kiwi: FakeKiwi) -> None:
    chunk = b"W/F" + bytes(60_000)
    fake_kiwi.behaviour.frames_before_stream = [chunk] * (GARBAGE_BYTES // len(chunk))
    error, peak = await peak_traced_bytes(lambda: record(fake_kiwi, duration_s=DURATION_S))
    assert isinstance(error, ReceiverProtocolError) and "non-sample messages" in str(error)
    assert peak < 4 * CAPTURE_BYTES


RANDOM_BYTES = np.random.default_rng(20240601).integers(0, 256, 2**16, np.uint8).tobytes()


@pytest.mark.parametrize(
    ("prefix", "chunk"),
    [
        # A frame header announcing a 1 TiB payload: refused from the header alone.
        (unmasked_binary_frame_header(2**40) + b"MSG ", bytes(range(256)) * 256),
        # Bytes that are not websocket frames at all.
        (b"", RANDOM_BYTES),
    ],
    ids=["absurd-length", "random-bytes"],
)
async def test_hostile_byte_stream_is_refused_without_buffering(
    prefix: bytes, chunk: bytes
) -> None:
    async def spew(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_websocket(reader, writer)
        writer.write(prefix)
        # The same chunk again and again: the server itself allocates nothing per write.
        for _ in range(GARBAGE_BYTES // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    async with raw_server(spew) as url:
        error, peak = await peak_traced_bytes(
            lambda: record_iq(station(url), frequency_hz=1e6, duration_s=DURATION_S, **FAST)
        )
    assert isinstance(error, ReceiverProtocolError), error
    assert peak < 4 * CAPTURE_BYTES


async def test_endless_stream_stops_at_the_requested_length(fake_kiwi: FakeKiwi) -> None:
    error_free = await record(fake_kiwi, duration_s=DURATION_S)
    assert len(error_free.samples) == math.ceil(DURATION_S * 12001.135 / 512) * 512


async def test_the_stream_starts_only_once_the_start_hook_returns(fake_kiwi: FakeKiwi) -> None:
    # The hook runs after the handshake and before the tuning commands; its wait is
    # not counted against the first-frame timeout.
    seen_at_start: list[list[str]] = []

    async def start() -> None:
        seen_at_start.append(list(fake_kiwi.sessions[0].commands))
        await asyncio.sleep(0.3)

    capture = await record(fake_kiwi, duration_s=0.1, start=start, first_frame_timeout_s=0.25)
    assert len(seen_at_start) == 1
    assert not any(c.startswith("SET mod=iq") for c in seen_at_start[0])
    assert "SET AR OK in=12000 out=44100" in fake_kiwi.sessions[0].commands
    assert len(capture.samples) == math.ceil(0.1 * 12001.135 / 512) * 512


async def test_a_stream_faster_than_its_sample_rate_is_refused_when_asked(
    fake_kiwi: FakeKiwi,
) -> None:
    # The fake streams as fast as it can: far faster than 12 kHz.
    with pytest.raises(ReceiverProtocolError, match="faster than its announced sample rate"):
        await record(fake_kiwi, duration_s=2.0, max_speedup=3.0)
    # Without the check (the default), the same stream is recorded.
    assert len((await record(fake_kiwi, duration_s=2.0)).samples) > 0
    # At its real pace it passes the check.
    fake_kiwi.behaviour.block_interval_s = 512 / fake_kiwi.behaviour.sample_rate_hz
    assert len((await record(fake_kiwi, duration_s=1.0, max_speedup=3.0)).samples) > 0
