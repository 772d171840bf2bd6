"""Pure KiwiSDR frame and message handling: known byte layouts in, values out."""

from __future__ import annotations

import json
import struct
from urllib.parse import quote

import numpy as np
import pytest

from heimdall.receivers.errors import (
    ReceiverAuthFailed,
    ReceiverBusy,
    ReceiverDown,
    ReceiverRedirect,
)
from heimdall.receivers.kiwisdr import protocol


def build_frame(
    flags: int = 0x08,
    sequence: int = 1,
    smeter: int = 0,
    gps_status: int = 0,
    tow_s: int = 0,
    tow_ns: int = 0,
    payload: bytes = bytes(2048),
) -> bytes:
    # Written from the layout table, field by field, independently of the parser.
    return (
        b"SND"
        + bytes([flags])
        + struct.pack("<I", sequence)
        + struct.pack(">H", smeter)
        + bytes([gps_status, 0])
        + struct.pack("<II", tow_s, tow_ns)
        + payload
    )


def test_header_fields_and_their_byte_orders() -> None:
    frame = build_frame(
        flags=0x8A, sequence=0x01020304, smeter=0x0506, gps_status=7, tow_s=345_600, tow_ns=999
    )
    header = protocol.parse_iq_header(frame)
    assert header == protocol.IQBlockHeader(0x8A, 0x01020304, 0x0506, 7, 345_600, 999)
    assert header.little_endian and header.adc_overflow


def test_samples_big_and_little_endian() -> None:
    rng = np.random.default_rng(7)
    ints = rng.integers(-32768, 32768, size=1024).astype(np.int16)
    expected = (ints[0::2] / 32768 + 1j * ints[1::2] / 32768).astype(np.complex64)
    for little_endian, dtype in ((False, ">i2"), (True, "<i2")):
        frame = build_frame(payload=ints.astype(dtype).tobytes())
        samples = protocol.decode_iq_samples(frame, little_endian)
        assert samples.dtype == np.complex64 and samples.shape == (512,)
        np.testing.assert_array_equal(samples, expected)


def test_full_scale() -> None:
    payload = np.array([-32768, 32767] * 512, dtype=">i2").tobytes()
    samples = protocol.decode_iq_samples(build_frame(payload=payload), little_endian=False)
    assert samples[0].real == -1.0
    assert samples[0].imag == pytest.approx(1.0, abs=1 / 32768)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (build_frame()[:-1], "2067 bytes"),
        (build_frame() + b"\0", "2069 bytes"),
        (b"MSG" + build_frame()[3:], "not a SND"),
        (build_frame(flags=0x18), "compressed"),
        (build_frame(tow_ns=1_000_000_000), "nanoseconds"),
    ],
)
def test_malformed_headers(frame: bytes, message: str) -> None:
    with pytest.raises(protocol.FrameError, match=message):
        protocol.parse_iq_header(frame)


def test_rssi_from_smeter() -> None:
    assert protocol.rssi_dbm_from_smeter(0) == -127.0
    assert protocol.rssi_dbm_from_smeter(1270) == pytest.approx(0.0)
    assert protocol.rssi_dbm_from_smeter(123) == pytest.approx(-114.7)


def test_frame_tag() -> None:
    assert protocol.frame_tag(b"W/F\x00") == "W/F"
    with pytest.raises(protocol.FrameError):
        protocol.frame_tag(b"MS")


def test_parse_msg_splits_on_first_equals() -> None:
    params = protocol.parse_msg(b"MSG sample_rate=12001.135 redirect=ws://a/b=c down")
    assert params == {"sample_rate": "12001.135", "redirect": "ws://a/b=c", "down": ""}


def test_load_cfg_position_and_name() -> None:
    config = {"rx_name": "Aquila di Giaveno", "rx_gps": "(45.020000, 7.290000)", "n": [1, 2]}
    params = protocol.parse_msg(f"MSG load_cfg={quote(json.dumps(config))}".encode())
    decoded = protocol.parse_load_cfg(params["load_cfg"])
    assert decoded == config
    assert protocol.parse_rx_gps(str(decoded["rx_gps"])) == (45.02, 7.29)


@pytest.mark.parametrize("text", ["", "(91, 7)", "(45.0 7.0)", "45.0, 7.0", "(a, b)", "(1e999, 0)"])
def test_bad_positions_are_none(text: str) -> None:
    assert protocol.parse_rx_gps(text) is None


def test_bad_load_cfg() -> None:
    with pytest.raises(protocol.FrameError):
        protocol.parse_load_cfg("%7Bnot json")
    with pytest.raises(protocol.FrameError):
        protocol.parse_load_cfg(quote("[1, 2]"))


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        ("too_busy=3", ReceiverBusy),
        ("badp=1", ReceiverAuthFailed),
        ("badp=5", ReceiverAuthFailed),
        ("down", ReceiverDown),
        ("redirect=http%3A%2F%2Fkiwi.example%3A8073", ReceiverRedirect),
        ("password_timeout", ReceiverAuthFailed),
    ],
)
def test_refusals(payload: str, error_type: type[Exception]) -> None:
    error = protocol.refusal_error("rx1", protocol.parse_msg(f"MSG {payload}".encode()))
    assert isinstance(error, error_type)
    assert str(error).startswith("receiver rx1: ")
    if isinstance(error, ReceiverRedirect):
        assert error.url == "http://kiwi.example:8073"


@pytest.mark.parametrize("payload", ["badp=0", "too_busy=0", "audio_rate=12000", "rx_chans=4"])
def test_ordinary_messages_are_not_refusals(payload: str) -> None:
    assert protocol.refusal_error("rx1", protocol.parse_msg(f"MSG {payload}".encode())) is None


def test_commands() -> None:
    assert protocol.auth_command("pw") == "SET auth t=kiwi p=pw"
    assert protocol.audio_rate_reply(20250) == "SET AR OK in=20250 out=44100"
    assert protocol.tune_command(145_500_000.4) == (
        "SET mod=iq low_cut=-5000 high_cut=5000 freq=145500.000"
    )
    assert protocol.tune_command(7_074_001.6).endswith("freq=7074.002")
    commands = protocol.configuration_commands(1e6, 30, "heimdall")
    assert commands[-1] == "SET keepalive"
    assert "SET agc=0 hang=0 thresh=-100 slope=6 decay=1000 manGain=30" in commands


@pytest.mark.parametrize("password", ["two words", "tab\there", "new\nline"])
def test_passwords_that_would_break_the_command_are_refused(password: str) -> None:
    with pytest.raises(ValueError, match="password"):
        protocol.auth_command(password)


@pytest.mark.parametrize(
    ("duration_s", "sample_rate_hz", "n_blocks"),
    [(1.0, 12001.135, 24), (1.0, 12288.0, 24), (1.0, 12288.1, 25), (0.001, 12000.0, 1)],
)
def test_blocks_for_duration(duration_s: float, sample_rate_hz: float, n_blocks: int) -> None:
    assert protocol.blocks_for_duration(duration_s, sample_rate_hz) == n_blocks


def test_load_cfg_nested_deeper_than_the_parser_is_a_frame_error() -> None:
    from urllib.parse import quote

    from heimdall.receivers.kiwisdr import protocol as kiwi_protocol

    with pytest.raises(kiwi_protocol.FrameError, match="nested"):
        kiwi_protocol.parse_load_cfg(quote("[" * 20_000))
