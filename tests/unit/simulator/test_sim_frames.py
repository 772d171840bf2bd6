"""The SND frame encoder, GPS time and command parsing of the simulated KiwiSDR."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from heimdall.simulator.faults import MalformedVariant, malformed_frame
from heimdall.simulator.server import (
    FRAME_BYTES,
    encode_snd_frame,
    gps_week_time,
    parse_set_command,
    quantize_iq,
    smeter_from_dbm,
)


def test_gps_week_time_known_answers() -> None:
    # 2024-01-07T00:00:00Z is a Sunday: GPS week starts 18 s of leap seconds earlier in UTC.
    sunday_utc_ns = 1_704_585_600 * 10**9
    assert gps_week_time(sunday_utc_ns) == (18, 0)
    assert gps_week_time(sunday_utc_ns - 18 * 10**9) == (0, 0)
    assert gps_week_time(sunday_utc_ns + 3_600 * 10**9 + 250) == (3_618, 250)


def test_smeter_encodes_rssi_as_tenths_of_db_above_minus_127() -> None:
    assert smeter_from_dbm(-127.0) == 0
    assert smeter_from_dbm(-73.0) == 540
    assert smeter_from_dbm(-200.0) == 0  # clamped, never wraps


def test_quantize_scales_full_scale_to_32767_and_reports_clipping() -> None:
    words, clipped = quantize_iq(np.array([0.5 - 0.25j, -1.0 + 0j], dtype=np.complex64))
    np.testing.assert_array_equal(words, [16384, -8192, -32767, 0])
    assert not clipped
    _, clipped = quantize_iq(np.array([1.5 + 0j], dtype=np.complex64))
    assert clipped


@pytest.mark.parametrize("little_endian", [False, True])
def test_snd_frame_layout(little_endian: bool) -> None:
    samples = (np.arange(512) / 1024.0 * (1 - 1j)).astype(np.complex64)
    utc_ns = 1_704_585_600 * 10**9 + 5 * 10**9 + 123_456
    frame = encode_snd_frame(7, samples, -100.0, utc_ns, 3, little_endian)
    assert len(frame) == FRAME_BYTES == 2068
    assert frame[:3] == b"SND"
    flags = frame[3]
    assert flags & 0x08
    assert bool(flags & 0x80) is little_endian
    assert struct.unpack("<I", frame[4:8])[0] == 7
    assert struct.unpack(">H", frame[8:10])[0] == 270
    assert frame[10] == 3 and frame[11] == 0
    assert struct.unpack("<II", frame[12:20]) == (23, 123_456)
    decoded = np.frombuffer(frame[20:], dtype="<i2" if little_endian else ">i2")
    np.testing.assert_array_equal(decoded[0::2], np.round(samples.real * 32767))
    np.testing.assert_array_equal(decoded[1::2], np.round(samples.imag * 32767))


def test_parse_set_command() -> None:
    assert parse_set_command("SET mod=iq low_cut=-5000 high_cut=5000 freq=145500.000") == (
        "mod",
        {"mod": "iq", "low_cut": "-5000", "high_cut": "5000", "freq": "145500.000"},
    )
    assert parse_set_command("SET keepalive") == ("keepalive", {"keepalive": ""})
    assert parse_set_command("SET auth t=kiwi p=")[0] == "auth"
    assert parse_set_command("GET something") == ("", {})


def test_malformed_variants_are_each_detectably_wrong() -> None:
    valid = encode_snd_frame(1, np.zeros(512, dtype=np.complex64), -120.0, 10**18, 0, False)
    spoiled = {variant: malformed_frame(valid, variant) for variant in MalformedVariant}
    assert spoiled[MalformedVariant.wrong_tag][:3] == b"XYZ"
    assert len(spoiled[MalformedVariant.short]) < FRAME_BYTES
    assert len(spoiled[MalformedVariant.long]) > FRAME_BYTES
    absurd = spoiled[MalformedVariant.absurd_header]
    assert isinstance(absurd, bytes) and len(absurd) == FRAME_BYTES
    assert struct.unpack("<I", absurd[16:20])[0] >= 1_000_000_000
    assert isinstance(spoiled[MalformedVariant.text_garbage], str)
