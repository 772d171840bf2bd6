"""The provisional sample clock of imports, and the positions files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.dsp.signals import make_capture
from heimdall.imports.positions import (
    PositionsError,
    kiwirecorder_position_line,
    parse_positions,
    station_key,
)
from heimdall.imports.timing import sample_rate_from_stamps_hz, timed_capture

TRUE_RATE_HZ = 12_001.135


def stamped(jitter_ns: float = 0.0, blocks: int = 200, announced_hz: float = 12_001.0):
    """A capture stamped at the true rate whose header announces ``announced_hz``."""
    capture = make_capture(np.zeros(512 * blocks, np.complex64), TRUE_RATE_HZ)
    noise = np.random.default_rng(5).normal(0.0, jitter_ns, blocks).round().astype(np.int64)
    return replace(
        capture, sample_rate_hz=announced_hz, block_time_ns=capture.block_time_ns + noise
    )


def test_the_rate_comes_from_the_stamps_not_the_header() -> None:
    fitted = timed_capture(stamped(jitter_ns=100.0))
    # 100 ns of jitter over ~8.5 s: a few parts in 10^8.
    assert fitted.sample_rate_hz == pytest.approx(TRUE_RATE_HZ, rel=1e-7)
    assert fitted.metadata["timing"]["sample_rate_source"] == "GPS stamps"
    assert fitted.metadata["timing"]["announced_sample_rate_hz"] == 12_001.0


def test_one_stamp_a_second_off_does_not_move_the_rate() -> None:
    capture = stamped()
    times = capture.block_time_ns.copy()
    times[0] += 1_000_000_000
    times[150] -= 1_000_000_000
    rate_hz = sample_rate_from_stamps_hz(replace(capture, block_time_ns=times))
    assert rate_hz == pytest.approx(TRUE_RATE_HZ, rel=1e-9)


def test_blocks_without_a_fix_do_not_count() -> None:
    capture = stamped()
    status = np.full(len(capture.block_start_index), 254, np.uint8)
    status[7] = 1
    assert sample_rate_from_stamps_hz(replace(capture, block_gps_status=status)) is None
    unfitted = timed_capture(replace(capture, block_gps_status=status))
    assert unfitted.sample_rate_hz == 12_001.0
    assert "unusable for TDOA" in unfitted.metadata["timing"]["sample_rate_source"]


def test_stamps_far_from_the_announced_rate_are_not_believed() -> None:
    kept = timed_capture(stamped(announced_hz=24_000.0))
    assert kept.sample_rate_hz == 24_000.0
    assert "ppm away" in kept.metadata["timing"]["sample_rate_source"]


def test_a_capture_without_gps_time_is_left_alone() -> None:
    capture = make_capture(np.zeros(4096, np.complex64), 12_000.0, gps=False)
    assert timed_capture(capture) is capture


KIWI_LINES = """% written by kiwirecorder
d.DF0KL_2 = struct('coord', [50.733100,7.098200], 'host', 'kiwi.example', 'port', 8073);
d.G8JNJ=struct('coord',[ 51.0 , -1.5 ],'host','','port',8074);

# another station
d.torino = struct('coord', [45.044,7.672], 'host', '127.0.0.1', 'port', 8075)
"""


def test_kiwirecorder_position_files() -> None:
    found = parse_positions(KIWI_LINES, "gnss_pos.txt")
    assert set(found) == {"df0kl_2", "g8jnj", "torino"}
    assert (found["df0kl_2"].latitude, found["df0kl_2"].longitude) == (50.7331, 7.0982)
    assert found["df0kl_2"].url == "ws://kiwi.example:8073"
    assert (found["g8jnj"].latitude, found["g8jnj"].longitude, found["g8jnj"].url) == (
        51.0,
        -1.5,
        "",
    )
    # The station named DF0KL-2 in its WAV file name finds its kiwirecorder line.
    assert station_key("DF0KL-2") in found


def test_the_position_line_writer_reads_back() -> None:
    line = kiwirecorder_position_line("DF0KL-2", 50.7331, 7.0982, "kiwi.example", 8073)
    assert parse_positions(line, "DF0KL-2.txt")["df0kl_2"].latitude == 50.7331


def test_yaml_and_csv_positions() -> None:
    registry_form = """stations:
  - {id: torino, name: Torino, latitude: 45.044, longitude: 7.672, altitude_m: 250}
"""
    mapping_form = "DF0KL: {lat: 50.7, lon: 7.1}\n"
    assert parse_positions(registry_form, "r.yaml")["torino"].altitude_m == 250
    assert parse_positions(mapping_form, "m.yml")["df0kl"].longitude == 7.1
    table = "Station,Lat,Lon,Alt\nDF0KL,50.7,7.1,60\nG8JNJ,51.0,-1.5,\n"
    found = parse_positions(table, "p.csv")
    assert (found["df0kl"].altitude_m, found["g8jnj"].altitude_m) == (60.0, 0.0)


@pytest.mark.parametrize(
    ("text", "filename", "reason"),
    [
        ("d.X = struct('coord', [50.7], 'host', '', 'port', 1);", "x.txt", "line 1: not a kiwi"),
        ("\n% nothing\n", "x.txt", "no station positions"),
        ("d.X = struct('coord', [95,7], 'host', '', 'port', 1);", "x.txt", "impossible position"),
        ("name,lat\nX,50\n", "x.csv", "line 2: no longitude"),
        ("X: {lat: north, lon: 7}", "x.yaml", "not a number"),
        ("[1, 2]", "x.yaml", "expected a 'stations' list"),
        ("a: [", "x.yaml", "not valid YAML"),
        ("X: {lat: 1, lon: 2}\nx: {lat: 1, lon: 2}\n", "x.yaml", "given twice"),
    ],
)
def test_bad_positions_files(text: str, filename: str, reason: str) -> None:
    with pytest.raises(PositionsError, match=reason):
        parse_positions(text, filename)
