"""Receivers' live state and a receiver's spectrum, from a real acquisition."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np

from heimdall.simulator.network import RunningNetwork
from tests.integration.acquisition.test_acquisition_e2e import acquire, set_fault, wait_finished

UNKNOWN = "00000000-0000-0000-0000-00000000beef"


async def states(api: httpx.AsyncClient) -> dict[str, dict[str, object]]:
    response = await api.get("/api/v1/acquisition/stations/state")
    assert response.status_code == 200
    return {s["station_id"]: s for s in response.json()}


async def test_receivers_are_recording_then_idle_or_failed(
    api: httpx.AsyncClient, simulator: RunningNetwork
) -> None:
    before = await states(api)
    assert len(before) == 7
    assert {s["state"] for s in before.values()} == {"idle"}
    assert all(s["task_id"] is None and s["busy_channels"] == 0 for s in before.values())
    assert {s["channels"] for s in before.values()} == {4}

    await set_fault(simulator, "genova", kind="refuse")
    selected = ["genova", "giaveno", "milano", "torino"]  # three are enough for SUCCESS
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1.5, stations=selected)
    seen_recording: set[str] = set()
    seen_busy: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = await states(api)
        seen_recording |= {k for k, s in now.items() if s["state"] == "recording"}
        seen_busy |= {k for k, s in now.items() if s["busy_channels"] == 1}
        status = (await api.get(f"/api/v1/acquisition/status/{task_id}")).json()
        if status["state"] not in ("PENDING", "PROGRESS"):
            break
        await asyncio.sleep(0.05)
    assert seen_recording == set(selected)
    assert seen_busy == set(selected)  # one leased channel on each receiver it selected
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"

    after = await states(api)
    assert {s["busy_channels"] for s in after.values()} == {0}  # released when it ended
    assert after["genova"]["state"] == "failed"
    assert "channels are in use" in str(after["genova"]["error"])
    assert after["genova"]["task_id"] == task_id
    for station in ("giaveno", "milano", "torino"):
        assert (after[station]["state"], after[station]["task_id"]) == ("idle", task_id)
    assert (after["coazze"]["state"], after["coazze"]["task_id"]) == ("idle", None)


async def test_spectrum_of_a_recorded_receiver(api: httpx.AsyncClient) -> None:
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1, stations=["torino"])
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"

    response = await api.get(f"/api/v1/acquisition/spectrum/{task_id}/torino?bins=256")
    assert response.status_code == 200, response.text
    spectrum = response.json()
    offsets = np.array(spectrum["frequency_offset_hz"])
    psd_db = np.array(spectrum["psd_dbfs_per_hz"])
    assert len(offsets) == len(psd_db) == 256
    assert spectrum["center_frequency_hz"] == 145.5e6
    assert spectrum["bin_width_hz"] == spectrum["sample_rate_hz"] / 256
    assert np.all(np.diff(offsets) > 0)
    # The simulated burst (about 5.4 kHz wide around the carrier) stands above the noise.
    in_band = np.median(psd_db[np.abs(offsets) < 2000])
    out_of_band = np.median(psd_db[np.abs(offsets) > 4000])
    assert in_band - out_of_band > 10

    missing = await api.get(f"/api/v1/acquisition/spectrum/{task_id}/genova")
    assert missing.status_code == 404
    assert "genova" in missing.json()["detail"]
    unknown = await api.get(f"/api/v1/acquisition/spectrum/{UNKNOWN}/torino")
    assert unknown.status_code == 404
    too_few = await api.get(f"/api/v1/acquisition/spectrum/{task_id}/torino?bins=8")
    assert too_few.status_code == 422
