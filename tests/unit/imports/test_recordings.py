"""A set of files -> recordings with their stations, or one error per bad file."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import yaml
from pyproj import Geod

from heimdall.core.settings import PACKAGE_DATA
from heimdall.dsp.signals import make_capture
from heimdall.imports.kiwi_wav import encode_kiwi_wav, kiwi_wav_name
from heimdall.imports.positions import parse_positions
from heimdall.imports.recordings import (
    KnownStation,
    NamedFile,
    read_recordings,
    resolve_stations,
)
from heimdall.imports.service import ImportRejected, new_station_row, prepare_import
from heimdall.receivers.sigmf_io import encode_ci16_le
from heimdall.simulator.scenario import load_scenario

START_NS = 1_717_243_200_000_000_000
TORINO = KnownStation("torino", "Torino (simulated)", 45.044, 7.672, 250.0)


def wav(station: str, frequency_hz: float = 145_500_000, blocks: int = 40) -> NamedFile:
    noise = np.random.default_rng(len(station)).normal(0, 0.01, (2, blocks * 512))
    capture = make_capture(
        (noise[0] + 1j * noise[1]).astype(np.complex64), 12_001.135, start_time_ns=START_NS
    )
    return NamedFile(
        kiwi_wav_name(capture.start_time, frequency_hz, station), encode_kiwi_wav(capture)
    )


def sigmf(stem: str, latitude: float = 50.7, longitude: float = 7.1) -> list[NamedFile]:
    samples = np.zeros(20_000, np.complex64)
    meta = {
        "global": {
            "core:datatype": "ci16_le",
            "core:sample_rate": 12_000.0,
            "core:version": "1.2.0",
            "core:geolocation": {"type": "Point", "coordinates": [longitude, latitude]},
        },
        "captures": [
            {
                "core:sample_start": 0,
                "core:frequency": 145.5e6,
                "core:datetime": "2024-06-01T12:00:00Z",
            }
        ],
    }
    return [
        NamedFile(f"{stem}.sigmf-meta", json.dumps(meta).encode()),
        NamedFile(f"{stem}.sigmf-data", encode_ci16_le(samples)),
    ]


def test_wav_files_and_sigmf_pairs_are_read_together() -> None:
    recordings, errors = read_recordings([wav("torino"), *sigmf("bonn")])
    assert errors == []
    assert {(r.kind, r.station, r.capture.station_id) for r in recordings} == {
        ("kiwi-wav", "torino", "torino"),
        ("sigmf", "bonn", "bonn"),
    }
    by_kind = {r.kind: r for r in recordings}
    # The seam fitted the kiwirecorder file's rate from its stamps (header: 12001).
    assert by_kind["kiwi-wav"].capture.sample_rate_hz == pytest.approx(12_001.135, rel=1e-8)
    assert by_kind["sigmf"].position == (50.7, 7.1, 0.0)


def test_every_bad_file_is_named() -> None:
    files = [
        wav("torino"),
        wav("torino").__class__("20240601T120000Z_145500000_TORINO_iq.wav", wav("x").data),
        wav("milano", frequency_hz=145_600_000),
        wav("short", blocks=1),
        NamedFile("notes.txt", b"hello"),
        sigmf("lonely")[0],
        sigmf("orphan")[1],
        NamedFile("broken_iq.wav", b""),
    ]
    _, errors = read_recordings(files)
    reasons = {e.file: e.error for e in errors}
    assert set(reasons) == {
        "20240601T120000Z_145500000_TORINO_iq.wav",
        wav("milano", frequency_hz=145_600_000).name,
        wav("short", blocks=1).name,
        "notes.txt",
        "lonely.sigmf-meta",
        "orphan.sigmf-data",
        "broken_iq.wav",
    }
    assert "is also in" in reasons["20240601T120000Z_145500000_TORINO_iq.wav"]
    assert (
        "tuned to 145600000 Hz, the others to 145500000 Hz"
        in reasons[wav("milano", frequency_hz=145_600_000).name]
    )
    assert "too short to measure" in reasons[wav("short", blocks=1).name]
    assert "no orphan.sigmf-meta" in reasons["orphan.sigmf-data"]
    assert "name" in reasons["broken_iq.wav"]


def test_stations_come_from_the_registry_then_positions_then_the_recording() -> None:
    recordings, _ = read_recordings([wav("TORINO"), wav("DF0KL-2"), *sigmf("bonn"), wav("nowhere")])
    positions = parse_positions(
        "d.DF0KL_2 = struct('coord', [50.7331,7.0982], 'host', 'kiwi.example', 'port', 8073);",
        "DF0KL-2.txt",
    )
    stations, errors = resolve_stations(recordings, positions, [TORINO])
    by_station = {r.station: stations.get(r.source) for r in recordings}
    assert by_station["TORINO"] is not None and by_station["TORINO"].id == "torino"
    assert not by_station["TORINO"].new and by_station["TORINO"].altitude_m == 250.0
    assert by_station["DF0KL-2"] is not None and by_station["DF0KL-2"].new
    assert (by_station["DF0KL-2"].id, by_station["DF0KL-2"].url) == (
        "df0kl-2",
        "ws://kiwi.example:8073",
    )
    assert by_station["bonn"] is not None and by_station["bonn"].latitude == 50.7
    assert [e.file for e in errors] == [wav("nowhere").name]
    assert "no position for station 'nowhere'" in errors[0].error


def test_a_registry_station_given_elsewhere_is_an_error() -> None:
    recordings, _ = read_recordings([wav("torino")])
    positions = parse_positions("torino: {lat: 45.2, lon: 7.672}", "p.yaml")  # 17 km north
    _, errors = resolve_stations(recordings, positions, [TORINO])
    assert "17.3 km away" in errors[0].error
    near = parse_positions("torino: {lat: 45.0441, lon: 7.672}", "p.yaml")
    assert resolve_stations(recordings, near, [TORINO])[1] == []


def test_prepare_import_rejects_with_every_reason_at_once() -> None:
    with pytest.raises(ImportRejected) as rejected:
        prepare_import(
            [wav("nowhere"), NamedFile("x.bin", b"")],
            [NamedFile("p.yaml", b"\xff\xfe")],
            [TORINO],
        )
    assert {e.file for e in rejected.value.errors} == {wav("nowhere").name, "x.bin", "p.yaml"}
    assert str(rejected.value).startswith("3 files cannot be imported (nothing was): ")


def test_new_stations_are_inactive_imported_receivers_covering_their_band() -> None:
    prepared = prepare_import(
        [wav("DF0KL", frequency_hz=7_100_000), wav("torino", frequency_hz=7_100_000)],
        [
            NamedFile(
                "DF0KL.txt", b"d.DF0KL = struct('coord', [50.7,7.1], 'host', 'h', 'port', 8073);"
            )
        ],
        [TORINO],
    )
    assert prepared.station_ids == ["df0kl", "torino"]
    assert prepared.frequency_hz == 7_100_000
    recording = next(r for r in prepared.recordings if r.station == "DF0KL")
    row = new_station_row(prepared.stations[recording.source], recording)
    assert row["active"] is False and row["source"] == "imported"
    assert row["protocol"] == "kiwisdr" and row["frequency_ranges_mhz"] == [[0.01, 30.0]]
    assert row["url"] == "ws://h:8073"


def test_the_hf_scenario_spreads_its_receivers_200_to_500_km_apart() -> None:
    scenario = load_scenario(PACKAGE_DATA / "scenario-hf-europe.yaml")
    assert 4 <= len(scenario.receivers) <= 8
    assert 10e3 <= scenario.transmitter.frequency_hz <= 30e6
    geod = Geod(ellps="WGS84")
    points = {r.id: r.require_position() for r in scenario.receivers}
    for (a, pa), (b, pb) in itertools.combinations(points.items(), 2):
        _, _, distance_m = geod.inv(pa[1], pa[0], pb[1], pb[0])
        assert 200e3 <= distance_m <= 500e3, (a, b, distance_m)
    # The transmitter is inside their hull: bearings to the receivers leave no gap > 180 deg.
    tx = scenario.transmitter
    bearings = sorted(
        geod.inv(tx.longitude, tx.latitude, p[1], p[0])[0] % 360 for p in points.values()
    )
    gaps = np.diff([*bearings, bearings[0] + 360])
    assert gaps.max() < 180
    registry = yaml.safe_load((PACKAGE_DATA / "stations-simulated-hf.yaml").read_text())
    for entry in registry["stations"]:
        receiver = scenario.receiver(entry["id"])
        assert (entry["latitude"], entry["longitude"]) == (receiver.latitude, receiver.longitude)
        assert entry["url"] == f"ws://127.0.0.1:{receiver.port}"
    assert {e["id"] for e in registry["stations"]} == set(points)
