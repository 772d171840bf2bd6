"""The kiwirecorder IQ WAV reader and writer: known bytes, round trips, every malformed case."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from heimdall.dsp.signals import make_capture
from heimdall.imports.kiwi_wav import (
    KiwiWavError,
    capture_from_kiwi_wav,
    encode_kiwi_wav,
    kiwi_wav_name,
    parse_kiwi_wav_name,
    read_kiwi_wav,
)
from heimdall.receivers.gps import gps_time_of_week_from_utc_ns
from tests.unit.imports.wav_bytes import (
    chunk,
    fmt_chunk,
    iq_chunk,
    kiwi_chunk,
    kiwi_file,
    regular_stamps,
    riff,
)

# 2024-06-01T12:00:00Z: GPS week 2316, 561618 s into it (leap seconds: 18).
NAME_TIME = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
NAME_NS = int(NAME_TIME.timestamp()) * 10**9
NAME = kiwi_wav_name(NAME_TIME, 7_100_000, "DF0KL-2")


def quantized(samples: np.ndarray) -> np.ndarray:
    """Samples the KiwiSDR could send: whole int16 steps of 1/32768."""
    return (np.round(samples * 32768.0) / 32768.0).astype(np.complex64)


def test_known_bytes_decode_to_known_samples_and_times() -> None:
    tow_s, tow_ns = (int(v[0]) for v in gps_time_of_week_from_utc_ns(NAME_NS + 250_000_000))
    data = riff(
        fmt_chunk(12001),
        kiwi_chunk(3, tow_s, tow_ns),
        iq_chunk([(16384, -32768), (1, -1)]),
        kiwi_chunk(4, tow_s, tow_ns + 166_651),
        iq_chunk([(0, 8192)]),
    )
    wav = read_kiwi_wav(data)
    assert wav.nominal_sample_rate_hz == 12001
    np.testing.assert_array_equal(wav.samples, [0.5 - 1j, (1 - 1j) / 32768, 0.25j])
    np.testing.assert_array_equal(wav.block_start_index, [0, 2])
    capture = capture_from_kiwi_wav(wav, parse_kiwi_wav_name(NAME), station_id="df0kl-2")
    assert capture.block_time_ns.tolist() == [NAME_NS + 250_000_000, NAME_NS + 250_166_651]
    assert capture.block_gps_status.tolist() == [3, 4]
    assert capture.center_frequency_hz == 7_100_000
    assert capture.sample_rate_hz == 12001.0
    assert capture.has_gps_time
    assert np.isnan(capture.rssi_dbm).all()  # kiwirecorder keeps no S-meter


def test_a_live_capture_round_trips_exactly() -> None:
    rng = np.random.default_rng(3)
    samples = quantized(0.05 * (rng.normal(size=20_480) + 1j * rng.normal(size=20_480)))
    original = make_capture(samples, 12_001.135, start_time_ns=NAME_NS + 123_456_789)
    statuses = rng.integers(0, 5, len(original.block_start_index)).astype(np.uint8)
    original = replace(original, block_gps_status=statuses)
    data = encode_kiwi_wav(original)
    name = kiwi_wav_name(original.start_time, 145_500_000, "torino")
    back = capture_from_kiwi_wav(
        read_kiwi_wav(data), parse_kiwi_wav_name(name), station_id="torino"
    )
    np.testing.assert_array_equal(back.samples, original.samples)
    np.testing.assert_array_equal(back.block_time_ns, original.block_time_ns)
    np.testing.assert_array_equal(back.block_gps_status, original.block_gps_status)
    np.testing.assert_array_equal(back.block_start_index, original.block_start_index)
    assert back.sample_rate_hz == 12001.0  # the header's whole hertz, as kiwirecorder writes
    assert back.start_time == original.start_time
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8


def test_a_recording_across_the_gps_week_boundary_keeps_its_order() -> None:
    # GPS week 2316 ends at 2024-06-08T23:59:42Z UTC; the file starts 2 s before.
    boundary_ns = int(datetime(2024, 6, 8, 23, 59, 42, tzinfo=UTC).timestamp()) * 10**9
    start_ns = boundary_ns - 2 * 10**9
    capture = make_capture(np.zeros(512 * 100, np.complex64), 12_000.0, start_time_ns=start_ns)
    tow_s, _ = gps_time_of_week_from_utc_ns(capture.block_time_ns)
    assert tow_s[0] > 604_790 and tow_s[-1] < 5  # the stamps wrap inside the file
    name = kiwi_wav_name(capture.start_time, 10_000_000, "x")
    back = capture_from_kiwi_wav(
        read_kiwi_wav(encode_kiwi_wav(capture)), parse_kiwi_wav_name(name), station_id="x"
    )
    np.testing.assert_array_equal(back.block_time_ns, capture.block_time_ns)


def test_a_plain_wav_is_iq_without_time() -> None:
    pairs = np.random.default_rng(1).integers(-100, 100, size=(1300, 2))
    wav = read_kiwi_wav(riff(fmt_chunk(12000), chunk(b"LIST", b"INFOx"), iq_chunk(pairs)))
    assert not wav.timed
    capture = capture_from_kiwi_wav(wav, parse_kiwi_wav_name(NAME), station_id="df0kl-2")
    assert not capture.has_gps_time
    assert capture.block_start_index.tolist() == [0, 512, 1024]
    assert capture.block_time_ns[0] == NAME_NS  # timed by the name's clock
    assert set(capture.block_gps_status.tolist()) == {255}


def test_a_capture_without_gps_is_written_as_a_plain_wav() -> None:
    capture = make_capture(np.zeros(2048, np.complex64), 12_000.0, gps=False)
    assert not read_kiwi_wav(encode_kiwi_wav(capture)).timed


def test_names() -> None:
    name = parse_kiwi_wav_name("some/dir/20240601T120000Z_7100000_DF0KL_x_iq.wav")
    assert (name.start_time, name.frequency_hz, name.station) == (NAME_TIME, 7.1e6, "DF0KL_x")
    for bad in ("recording.wav", "20240601T120000Z_7100000_iq.wav", "20241301T120000Z_1_a_iq.wav"):
        with pytest.raises(KiwiWavError, match="name|time"):
            parse_kiwi_wav_name(bad)


GOOD = kiwi_file(regular_stamps(20))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"ID3\x03 an mp3", "not a WAV file"),
        (GOOD[:-100], "truncated: the RIFF header announces"),
        (riff(fmt_chunk(), kiwi_chunk(2, 1, 0), iq_chunk([(1, 1)] * 4, size=400)), "truncated"),
        (riff(fmt_chunk(), kiwi_chunk(2, 1, 0)), "last kiwi chunk has no data"),
        (riff(fmt_chunk(), b"kiw"), "stray bytes"),
        (riff(fmt_chunk(channels=1), iq_chunk([(1, 1)])), "wrong format: format tag 1, 1 channel"),
        (riff(fmt_chunk(bits=8), iq_chunk([(1, 1)])), "wrong format"),
        (riff(fmt_chunk(tag=3), iq_chunk([(1, 1)])), "wrong format: format tag 3"),
        (riff(fmt_chunk(rate_hz=0), iq_chunk([(1, 1)])), "impossible sample rate"),
        (riff(iq_chunk([(1, 1)])), "before any fmt chunk"),
        (riff(fmt_chunk()), "no IQ samples"),
        (
            riff(
                fmt_chunk(),
                chunk(b"kiwi", struct.pack("<BBIIH", 2, 0, 1, 0, 0)),
                iq_chunk([(1, 1)]),
            ),
            "wrong chunk size: kiwi chunk of 12 bytes",
        ),
        (
            riff(fmt_chunk(), kiwi_chunk(2, 1, 0), chunk(b"data", b"\1\2\3\4\5\6")),
            "wrong chunk size: data",
        ),
        (
            riff(fmt_chunk(), kiwi_chunk(2, 1, 0), iq_chunk([(1, 1)]), iq_chunk([(1, 1)])),
            "has no kiwi chunk before it",
        ),
        (
            riff(fmt_chunk(), iq_chunk([(1, 1)]), kiwi_chunk(2, 1, 0), iq_chunk([(1, 1)])),
            "after data chunks without one",
        ),
        (kiwi_file(regular_stamps(20, status=255)), "no valid GPS fix"),
        (kiwi_file(regular_stamps(20, status=254)), "no valid GPS fix"),
        (kiwi_file(regular_stamps(20)[::-1]), "non-monotonic GPS stamps: 19 of 19 steps"),
        (kiwi_file([(2, 604_800, 0)]), "GPS stamp out of range in block 0"),
    ],
)
def test_malformed_files_say_what_is_wrong(data: bytes, reason: str) -> None:
    with pytest.raises(KiwiWavError, match=reason):
        read_kiwi_wav(data)


def test_a_few_corrupt_stamps_are_left_to_the_timestamp_hygiene() -> None:
    stamps = regular_stamps(200)
    status, seconds, nanoseconds = stamps[50]
    stamps[50] = (status, seconds + 1, nanoseconds)  # one stamp a second off
    assert read_kiwi_wav(kiwi_file(stamps)).timed


def test_blocks_before_the_first_fix_are_kept_with_their_status() -> None:
    stamps = [(255, 0, 0)] * 3 + regular_stamps(10)
    wav = read_kiwi_wav(kiwi_file(stamps))
    assert wav.gps_status.tolist()[:4] == [255, 255, 255, 2]
