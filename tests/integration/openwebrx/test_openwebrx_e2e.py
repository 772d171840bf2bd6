"""OpenWebRX and mixed networks end to end: API, broker, worker, PostgreSQL, S3, simulators.

A second simulator serves the seven sites as OpenWebRX receivers (the
``scenario-openwebrx.yaml`` world: the session simulator's transmitter, receivers
at their own SDR gains). For a test, the registry points some or all sites at it;
the rows are put back afterwards, so the rest of the suite keeps its KiwiSDRs.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from pyproj import Geod
from sigmf import sigmffile
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore
from heimdall.localization.calibration import Calibration
from heimdall.receivers.audio_sigmf_io import read_sidecar
from heimdall.simulator.network import RunningNetwork, network_in_thread
from heimdall.simulator.scenario import PACKAGE_DATA, Scenario, load_scenario
from heimdall.simulator.truth import ORACLE_VERSION, truth_calibration
from tests.integration.acquisition.test_acquisition_e2e import (
    STATIONS,
    acquire,
    set_fault,
    wait_finished,
)
from tests.integration.localization.test_localization_e2e import wait_localized
from tests.support.asgi import service_client

MIXED_OPENWEBRX = {"montanaro", "coazze", "genova"}


@pytest.fixture(scope="module")
def openwebrx_network(simulator: RunningNetwork) -> Iterator[RunningNetwork]:
    scenario = load_scenario(PACKAGE_DATA / "scenario-openwebrx.yaml")
    # One world: the KiwiSDR simulator and this one hear the same transmitter.
    assert scenario.transmitter == simulator.state.scenario.transmitter
    assert scenario.seed == simulator.state.scenario.seed
    with network_in_thread(scenario, ephemeral=True, control_port=0) as network:
        yield network


@contextlib.contextmanager
def registry_serving(network: RunningNetwork, station_ids: set[str]) -> Iterator[None]:
    """Point these registry rows at the OpenWebRX simulator; restore them afterwards."""
    with sync_engine().begin() as conn:
        saved = conn.execute(
            text("SELECT id, url, protocol FROM websdr_stations WHERE id = ANY(:ids)"),
            {"ids": sorted(station_ids)},
        ).all()
        for station_id in station_ids:
            conn.execute(
                text(
                    "UPDATE websdr_stations SET url = :url, protocol = 'openwebrx' WHERE id = :id"
                ),
                {"url": network.url(station_id), "id": station_id},
            )
    try:
        yield
    finally:
        with sync_engine().begin() as conn:
            for station_id, url, protocol in saved:
                conn.execute(
                    text("UPDATE websdr_stations SET url = :url, protocol = :p WHERE id = :id"),
                    {"url": url, "p": protocol, "id": station_id},
                )


def activate(calibration: Calibration) -> None:
    with sync_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (id, name, version, kind, parameters, is_active) "
                "VALUES (:id, 'calibration', 1, 'calibration', CAST(:p AS jsonb), true)"
            ),
            {"id": uuid.uuid4(), "p": calibration.model_dump_json()},
        )


def error_m(scenario: Scenario, result: dict[str, object]) -> float:
    truth = scenario.transmitter
    _, _, distance_m = Geod(ellps="WGS84").inv(
        truth.longitude, truth.latitude, result["longitude"], result["latitude"]
    )
    return float(distance_m)


async def test_all_openwebrx_network_records_and_localizes_from_power(
    api: httpx.AsyncClient,
    openwebrx_network: RunningNetwork,
    object_store: ObjectStore,
    settings: Settings,
    tmp_path: Path,
) -> None:
    with registry_serving(openwebrx_network, STATIONS):
        task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=3)
        state = await wait_finished(api, task_id)
    assert state["state"] == "SUCCESS", state
    assert state["errors"] == []
    measurements = (await api.get(f"/api/v1/acquisition/measurements/{task_id}")).json()
    assert {m["websdr_id"] for m in measurements} == STATIONS
    for m in measurements:
        assert not m["gps_locked"] and m["power_dbm"] is None
        assert m["snr"] > 10 and np.isfinite(m["signal_power_dbfs"])
        assert abs(m["frequency_offset"]) < 300  # the receivers' LO errors are < 1 ppm
    keys = set(object_store.list_keys(settings.s3_bucket_raw, f"sessions/{task_id}/"))
    assert keys == {
        f"sessions/{task_id}/{s}{suffix}"
        for s in STATIONS
        for suffix in (".sigmf-data", ".sigmf-meta", ".heimdall-spectra.npz")
    }
    # The audio is a SigMF recording the sigmf package reads; the meta names its sidecar.
    prefix = f"sessions/{task_id}/giovi"
    for suffix in (".sigmf-data", ".sigmf-meta"):
        (tmp_path / f"giovi{suffix}").write_bytes(
            object_store.get_bytes(settings.s3_bucket_raw, prefix + suffix)
        )
    recording = sigmffile.fromfile(str(tmp_path / "giovi.sigmf-meta"))
    assert recording.get_global_field("core:datatype") == "ri16_le"
    assert len(recording.read_samples()) == 36_000
    sidecar_name = recording.get_global_field("heimdall:sidecar")["name"]
    assert sidecar_name == "giovi.heimdall-spectra.npz"
    arrays = read_sidecar(
        object_store.get_bytes(settings.s3_bucket_raw, f"sessions/{task_id}/{sidecar_name}")
    )
    assert arrays["fft_db"].shape[1] == 4096 and len(arrays["smeter_power"]) >= 10

    async with service_client("inference") as inference:
        result = await wait_localized(inference, task_id)
    assert result["status"] == "ok", result
    assert result["method"] == "rss"
    assert result["inputs"]["power"] == sorted(STATIONS)
    assert result["inputs"]["tdoa"] == [] and result["inputs"]["gps_timed"] == []
    ellipse = result["ellipse"]
    scenario = openwebrx_network.state.scenario
    # The default calibration knows nothing of the SDRs' gains: honest, not precise.
    assert error_m(scenario, result) < 2 * ellipse["semi_major_m"], (result, ellipse)


async def test_mixed_network_takes_tdoa_from_gps_timed_and_power_from_all_once_calibrated(
    api: httpx.AsyncClient, openwebrx_network: RunningNetwork
) -> None:
    with registry_serving(openwebrx_network, MIXED_OPENWEBRX):
        task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=3)
        state = await wait_finished(api, task_id)
    assert state["state"] == "SUCCESS", state
    measurements = (await api.get(f"/api/v1/acquisition/measurements/{task_id}")).json()
    timed = {m["websdr_id"] for m in measurements if m["gps_locked"]}
    assert timed == STATIONS - MIXED_OPENWEBRX
    assert {m["websdr_id"] for m in measurements if m["power_dbm"] is None} == MIXED_OPENWEBRX

    async with service_client("inference") as inference:
        default = await wait_localized(inference, task_id)
        assert default["status"] == "ok", default
        inputs = default["inputs"]
        assert set(inputs["tdoa"]) <= timed and len(inputs["tdoa"]) >= 2
        assert inputs["no_gps_time"] == sorted(MIXED_OPENWEBRX)
        # Uncalibrated S-meters beside dBm readings wait for a calibration, and say so.
        assert inputs["power"] == sorted(timed)
        assert set(inputs["power_excluded"]) == MIXED_OPENWEBRX

        scenario = openwebrx_network.state.scenario
        activate(truth_calibration(scenario))
        response = await inference.post(
            "/api/v1/inference/localize", json={"task_id": task_id, "recompute": True}
        )
    assert response.status_code == 200, response.text
    calibrated = response.json()
    assert calibrated["calibration_version"] == ORACLE_VERSION
    assert calibrated["inputs"]["power"] == sorted(STATIONS)
    assert set(calibrated["inputs"]["tdoa"]) <= timed
    assert calibrated["method"] == "fused"
    assert error_m(scenario, calibrated) < 2 * calibrated["ellipse"]["semi_major_m"]


async def test_a_malformed_openwebrx_receiver_is_one_receiver_error(
    api: httpx.AsyncClient, openwebrx_network: RunningNetwork
) -> None:
    await set_fault(openwebrx_network, "genova", kind="malformed", after_s=0.3)
    try:
        with registry_serving(openwebrx_network, STATIONS):
            task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1)
            state = await wait_finished(api, task_id)
    finally:
        openwebrx_network.state.faults.clear()
    assert state["state"] == "SUCCESS", state
    assert [e["station_id"] for e in state["errors"]] == ["genova"]
    assert "receiver genova:" in state["errors"][0]["error"]
    measurements = (await api.get(f"/api/v1/acquisition/measurements/{task_id}")).json()
    assert len(measurements) == 6
    assert json.dumps(state["errors"])  # a plain JSON list an operator can read
