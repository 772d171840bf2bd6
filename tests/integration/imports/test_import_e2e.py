"""Imports end to end on the real stack: API, broker, workers, PostgreSQL, S3, simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pyproj import Geod
from sqlalchemy import text

from heimdall.acquisition.recording import load_recording
from heimdall.core.db import sync_engine
from heimdall.core.settings import PACKAGE_DATA, Settings
from heimdall.core.storage import ObjectStore, parse_s3_url
from heimdall.dsp.signals import make_capture, tone
from heimdall.imports.kiwi_wav import encode_kiwi_wav, kiwi_wav_name
from heimdall.imports.positions import kiwirecorder_position_line
from heimdall.simulator.kiwirecorder import record_scenario, write_kiwirecorder_files
from heimdall.simulator.scenario import load_scenario
from tests.integration.acquisition.test_acquisition_e2e import acquire, wait_finished
from tests.integration.localization.test_localization_e2e import wait_localized
from tests.support.asgi import service_client
from tests.support.processes import wait_until
from tests.support.tcp_proxy import TcpProxy
from tests.support.tokens import tokens_required

IMPORT = "/api/v1/acquisition/import"
Upload = tuple[str, bytes]


@pytest.fixture(autouse=True)
def forget_imported_stations() -> Iterator[None]:
    """The registry outlives each test (it is seeded once): drop what imports added to it."""
    yield
    with sync_engine().begin() as conn:
        conn.execute(text("DELETE FROM acquisitions WHERE source = 'import'"))
        conn.execute(text("DELETE FROM websdr_stations WHERE source = 'imported'"))


async def post_import(
    api: httpx.AsyncClient,
    files: Sequence[Upload],
    positions: Sequence[Upload] = (),
    **fields: str,
) -> httpx.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    parts += [("positions", (name, data, "text/plain")) for name, data in positions]
    return await api.post(IMPORT, files=parts, data=fields)


def uploads(paths: Sequence[Path]) -> list[Upload]:
    return [(p.name, p.read_bytes()) for p in sorted(paths)]


async def measurements(api: httpx.AsyncClient, task_id: str) -> dict[str, dict[str, Any]]:
    rows = (await api.get(f"/api/v1/acquisition/measurements/{task_id}")).json()
    return {m["websdr_id"]: m for m in rows}


def keys(store: ObjectStore, settings: Settings, prefix: str) -> list[str]:
    return list(store.list_keys(settings.s3_bucket_raw, prefix))


def scalar(sql: str, **params: Any) -> Any:
    with sync_engine().connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def assert_same_measurements(
    live: dict[str, dict[str, Any]], imported: dict[str, dict[str, Any]]
) -> None:
    assert set(imported) == set(live)
    for station, m in live.items():
        got = imported[station]
        for field in ("snr", "signal_power_dbfs", "noise_floor_dbfs"):
            assert abs(got[field] - m[field]) <= 0.1, (station, field, got[field], m[field])
        assert abs(got["frequency_offset"] - m["frequency_offset"]) <= 1.0, station
        assert got["gps_locked"] and got["timestamp"] == m["timestamp"], station


async def test_importing_the_simulators_own_recordings_gives_the_live_acquisition(
    api: httpx.AsyncClient, object_store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    live_id = await acquire(api, frequency_mhz=145.5, duration_seconds=3)
    assert (await wait_finished(api, live_id))["state"] == "SUCCESS"
    live = await measurements(api, live_id)
    stations = {s["id"]: s for s in (await api.get("/api/v1/acquisition/stations")).json()}
    sigmf_pairs: list[Upload] = []
    for station_id, m in live.items():
        capture = await asyncio.to_thread(
            load_recording, object_store, m["data_url"], m["meta_url"]
        )
        station = stations[station_id]
        write_kiwirecorder_files(
            tmp_path,
            capture,
            station=station_id,
            latitude=station["latitude"],
            longitude=station["longitude"],
            url=station["url"],
        )
        for url in (m["data_url"], m["meta_url"]):
            ref = parse_s3_url(url)
            data = await asyncio.to_thread(object_store.get_bytes, ref.bucket, ref.key)
            sigmf_pairs.append((ref.key.rsplit("/", 1)[-1], data))

    # kiwirecorder IQ WAV files with kiwirecorder's position files.
    wavs, positions = await asyncio.to_thread(
        lambda: (uploads(list(tmp_path.glob("*.wav"))), uploads(list(tmp_path.glob("gnss_pos/*"))))
    )
    accepted = await post_import(api, wavs, positions)
    assert accepted.status_code == 202, accepted.text
    wav_id = accepted.json()["task_id"]
    assert all(r["gps_timed"] and not r["new_station"] for r in accepted.json()["recordings"])
    state = await wait_finished(api, wav_id)
    assert state["state"] == "SUCCESS", state
    assert state["source"] == "import"
    from_wav = await measurements(api, wav_id)
    assert_same_measurements(live, from_wav)
    assert all(m["power_dbm"] is None for m in from_wav.values())  # no S-meter in a WAV

    # The same recordings as the SigMF pairs Heimdall stored (their RSSI included).
    accepted = await post_import(api, sigmf_pairs, description="re-import")
    assert accepted.status_code == 202, accepted.text
    sigmf_id = accepted.json()["task_id"]
    assert (await wait_finished(api, sigmf_id))["state"] == "SUCCESS"
    from_sigmf = await measurements(api, sigmf_id)
    assert_same_measurements(live, from_sigmf)
    for station, m in live.items():
        assert abs(from_sigmf[station]["power_dbm"] - m["power_dbm"]) <= 0.1, station

    async with service_client("inference") as inference:
        fixes = [await wait_localized(inference, t) for t in (live_id, wav_id, sigmf_id)]
    assert [f["status"] for f in fixes] == ["ok"] * 3, fixes
    geod = Geod(ellps="WGS84")
    for fix in fixes[1:]:
        _, _, apart_m = geod.inv(
            fixes[0]["longitude"], fixes[0]["latitude"], fix["longitude"], fix["latitude"]
        )
        assert apart_m < 100, (apart_m, fix["method"], fixes[0]["method"])

    # Stored like any acquisition; nothing staged remains; reviewable.
    for task_id in (wav_id, sigmf_id):
        assert len(keys(object_store, settings, f"sessions/{task_id}/")) == 2 * len(live)
        assert keys(object_store, settings, f"imports/{task_id}/") == []
    async with service_client("data_ingestion_web") as review:
        session = (await review.get(f"/api/v1/sessions/{wav_id}")).json()
    assert session["source"] == "import" and len(session["measurements"]) == len(live)
    assert session["localization"]["status"] == "ok"


def _good_capture(seed: int) -> Any:
    rng = np.random.default_rng(seed)
    iq = tone(1500.0, 12_001.135, 512 * 60, amplitude=0.05) + 0.002 * (
        rng.normal(size=512 * 60) + 1j * rng.normal(size=512 * 60)
    )
    return make_capture(iq.astype(np.complex64), 12_001.135, start_time_ns=1_717_243_200 * 10**9)


def _named(station: str, data: bytes) -> Upload:
    return (kiwi_wav_name(_good_capture(0).start_time, 7_100_000, station), data)


def _positions(*stations: str) -> list[Upload]:
    return [
        (f"{s}.txt", kiwirecorder_position_line(s, 48.0 + i / 10, 11.0, "h", 8073).encode())
        for i, s in enumerate(stations)
    ]


async def test_every_malformed_file_is_named_and_nothing_is_kept(
    api: httpx.AsyncClient, object_store: ObjectStore, settings: Settings
) -> None:
    good = encode_kiwi_wav(_good_capture(1))
    header = 12 + 8 + 16  # RIFF + fmt chunk
    no_fix = bytearray(good)
    non_monotonic = bytearray(good)
    wrong_size = bytearray(good)
    block = 8 + 10 + 8 + 2048
    for k in range(60):
        no_fix[header + k * block + 8] = 255  # last_gps_solution of every block
        # gpssec of the blocks run backwards
        non_monotonic[header + k * block + 10 : header + k * block + 14] = (200 - k).to_bytes(
            4, "little"
        )
    wrong_size[header + 4 : header + 8] = (12).to_bytes(4, "little")
    mono = bytearray(good)
    mono[12 + 8 + 2 : 12 + 8 + 4] = (1).to_bytes(2, "little")
    files = [
        _named("good", good),
        _named("truncated", good[:-1000]),
        _named("chunks", bytes(wrong_size)),
        _named("backwards", bytes(non_monotonic)),
        _named("empty", b""),
        _named("mono", bytes(mono)),
        _named("nofix", bytes(no_fix)),
    ]
    stations = ["good", "truncated", "chunks", "backwards", "empty", "mono", "nofix"]
    response = await post_import(api, files, _positions(*stations))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("6 files cannot be imported (nothing was)")
    expected = {
        "truncated": "truncated",
        "chunks": "wrong chunk size: kiwi chunk of 12 bytes",
        "backwards": "non-monotonic GPS stamps",
        "empty": "empty file (0 bytes)",
        "mono": "a WAV of the wrong format",
        "nofix": "no valid GPS fix",
    }
    for station, reason in expected.items():
        assert f"_{station}_iq.wav: {reason}" in detail, (station, detail)
    assert "_good_iq.wav" not in detail
    assert scalar("SELECT count(*) FROM acquisitions") == 0
    assert scalar("SELECT count(*) FROM websdr_stations WHERE source = 'imported'") == 0
    assert keys(object_store, settings, "imports/") == []


async def test_request_limits_and_token(api: httpx.AsyncClient, settings: Settings) -> None:
    as_json = await api.post(IMPORT, json={"files": []})
    assert as_json.status_code == 415
    nothing = await post_import(api, [], _positions("x"))
    assert nothing.status_code == 422 and "no recording given" in nothing.json()["detail"]
    unknown_field = await post_import(api, [_named("a", b"")], colour="blue")
    assert unknown_field.status_code == 422 and "colour" in unknown_field.json()["detail"]
    bad_source = await post_import(api, [_named("a", b"")], known_source_id="not-a-uuid")
    assert bad_source.status_code == 422
    big = encode_kiwi_wav(_good_capture(2))
    settings.import_max_bytes, before = len(big) // 2, settings.import_max_bytes
    try:
        too_large = await post_import(api, [_named("big", big)])
    finally:
        settings.import_max_bytes = before
    assert too_large.status_code == 413, too_large.text
    assert "HEIMDALL_IMPORT_MAX_BYTES" in too_large.json()["detail"]
    with tokens_required("import-token"):
        refused = await post_import(api, [_named("a", b"")])
    assert refused.status_code == 401
    assert scalar("SELECT count(*) FROM acquisitions") == 0


async def test_hf_recordings_of_unknown_receivers_bring_imported_stations(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    scenario = load_scenario(PACKAGE_DATA / "scenario-hf-europe.yaml")
    written = await asyncio.to_thread(record_scenario, scenario, tmp_path, duration_s=1.5)
    accepted = await post_import(
        api, uploads([w.wav for w in written]), uploads([w.positions for w in written])
    )
    assert accepted.status_code == 202, accepted.text
    assert all(r["new_station"] and r["gps_timed"] for r in accepted.json()["recordings"])
    task_id = accepted.json()["task_id"]
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"
    found = await measurements(api, task_id)
    assert set(found) == {r.id for r in scenario.receivers}
    assert all(m["snr"] > 20 and m["gps_locked"] for m in found.values()), found
    # Tuned where the file names say: the 2.4 kBd signal's centroid near 0 Hz (it moves
    # with the symbols recorded, ~12 Hz rms over 1.5 s; a wrong tuning is kHz away).
    offsets = [m["frequency_offset"] for m in found.values()]
    assert max(abs(f) for f in offsets) < 100, offsets
    with sync_engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, latitude, longitude, active, source, protocol FROM websdr_stations "
                "WHERE source = 'imported' ORDER BY id"
            )
        ).all()
    assert [r.id for r in rows] == sorted(found)
    for row in rows:
        receiver = scenario.receiver(row.id)
        assert (row.latitude, row.longitude) == (receiver.latitude, receiver.longitude)
        assert not row.active and row.protocol == "kiwisdr"
    # Inactive: never recorded live, not among the receivers the page shows.
    states = (await api.get("/api/v1/acquisition/stations/state")).json()
    assert not {s["station_id"] for s in states} & set(found)
    # Located with the ground-wave model (7.055 MHz), over a region that follows these
    # receivers, 200-500 km apart (issue 16 phase 2).
    async with service_client("inference") as inference:
        fix = await wait_localized(inference, task_id)
    assert fix["status"] == "ok" and fix["propagation_model"] == "ground_wave", fix
    truth = scenario.transmitter
    _, _, error_m = Geod(ellps="WGS84").inv(
        truth.longitude, truth.latitude, fix["longitude"], fix["latitude"]
    )
    assert error_m < 5000.0, (error_m, fix["method"], fix["ellipse"])


async def test_object_storage_down_while_importing_fails_it_and_leaves_nothing(
    api: httpx.AsyncClient, s3_proxy: TcpProxy, object_store: ObjectStore, settings: Settings
) -> None:
    # The API stages through its own S3 connection; the worker's goes through the proxy.
    files = [_named("stormy", encode_kiwi_wav(_good_capture(3)))]
    s3_proxy.cut()
    try:
        accepted = await post_import(api, files, _positions("stormy"))
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        state = await wait_finished(api, task_id, timeout_s=60)
    finally:
        s3_proxy.restore()
    assert state["state"] == "FAILED", state
    assert "object storage" in state["error_message"].lower() or "s3" in state["error_message"]
    assert scalar("SELECT count(*) FROM measurements WHERE task_id = :t", t=task_id) == 0
    assert scalar("SELECT count(*) FROM websdr_stations WHERE source = 'imported'") == 0
    # The sweeper removes what the failed import staged, once S3 answers again.
    await asyncio.to_thread(
        wait_until,
        lambda: not keys(object_store, settings, f"imports/{task_id}/"),
        30,
        "staged files removed",
    )
    assert json.dumps(state["errors"])  # the status stays serialisable
