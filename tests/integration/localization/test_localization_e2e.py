"""Every successful acquisition is localized by the chained task; the inference API serves it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from pyproj import Geod
from sqlalchemy import text

from heimdall.core.db import session_scope
from heimdall.core.settings import get_settings
from heimdall.core.storage import ObjectStore, ObjectStoreError
from heimdall.localization import service
from heimdall.simulator.network import RunningNetwork
from tests.integration.acquisition.test_acquisition_e2e import acquire, set_fault, wait_finished
from tests.support.asgi import service_client


async def wait_localized(
    client: httpx.AsyncClient, task_id: str, timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = await client.get(f"/api/v1/inference/localizations/{task_id}")
        if response.status_code == 200:
            result: dict[str, Any] = response.json()
            return result
        assert response.status_code == 404
        await asyncio.sleep(0.2)
    raise AssertionError(f"{task_id} was not localized within {timeout_s} s")


async def test_acquisition_is_localized_with_an_honest_ellipse(
    api: httpx.AsyncClient, simulator: RunningNetwork
) -> None:
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=3)
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"
    async with service_client("inference") as inference:
        result = await wait_localized(inference, task_id)
        with_surface = await inference.get(
            f"/api/v1/inference/localizations/{task_id}", params={"surface": True}
        )
    assert result["status"] == "ok", result
    assert result["method"] in {"rss", "tdoa", "fused"}
    assert result["receivers_used"] >= 3
    assert result["propagation_model"] == "line_of_sight"  # 145.5 MHz
    truth = simulator.state.scenario.transmitter
    _, _, error_m = Geod(ellps="WGS84").inv(
        truth.longitude, truth.latitude, result["longitude"], result["latitude"]
    )
    ellipse = result["ellipse"]
    assert ellipse["semi_major_m"] >= ellipse["semi_minor_m"] > 0
    # Honest uncertainty: the truth is not far outside what the fix claims.
    assert error_m < 2 * ellipse["semi_major_m"], (error_m, ellipse)
    assert with_surface.json()["surface_geojson"]["type"] == "FeatureCollection"


async def test_power_only_fix_does_not_read_the_recordings(api: httpx.AsyncClient) -> None:
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1)
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"
    async with service_client("inference") as inference:
        await wait_localized(inference, task_id)  # the chained task is done with them
        settings = get_settings()
        removed = await asyncio.to_thread(
            ObjectStore(settings).delete_prefix, settings.s3_bucket_raw, f"sessions/{task_id}/"
        )
        assert removed > 0
        power_only = await inference.post(
            "/api/v1/inference/localize", json={"task_id": task_id, "method": "rss"}
        )
    assert power_only.status_code == 200, power_only.text
    assert power_only.json()["status"] == "ok"
    assert power_only.json()["method"] == "rss"


async def test_localize_endpoint_refuses_unknown_and_unfinished(
    api: httpx.AsyncClient, simulator: RunningNetwork
) -> None:
    async with service_client("inference") as inference:
        unknown = await inference.post(
            "/api/v1/inference/localize", json={"task_id": "00000000-0000-0000-0000-000000000001"}
        )
        assert unknown.status_code == 404
        await set_fault(simulator, "genova", kind="down")
        await set_fault(simulator, "giovi", kind="down")
        task_id = await acquire(
            api, frequency_mhz=145.5, duration_seconds=1, stations=["genova", "giovi", "torino"]
        )
        assert (await wait_finished(api, task_id))["state"] == "FAILED"
        refused = await inference.post("/api/v1/inference/localize", json={"task_id": task_id})
        assert refused.status_code == 409
        assert "FAILED" in refused.json()["detail"]


async def test_too_few_receivers_is_an_explicit_result(api: httpx.AsyncClient) -> None:
    task_id = await acquire(
        api, frequency_mhz=145.5, duration_seconds=1, stations=["torino", "milano"]
    )
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"
    async with service_client("inference") as inference:
        result = await wait_localized(inference, task_id)
        again = await inference.post("/api/v1/inference/localize", json={"task_id": task_id})
    assert result["status"] == "insufficient_receivers"
    assert result["latitude"] is None
    assert again.status_code == 200
    assert again.json()["status"] == "insufficient_receivers"


async def test_timing_is_read_from_the_rows_and_from_the_store_for_older_rows(
    api: httpx.AsyncClient,
) -> None:
    """A row carrying its recording's metadata needs only the samples' object; a row
    without it (written before the column) still reads the metadata object."""
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=2)
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"
    async with service_client("inference") as inference:
        await wait_localized(inference, task_id)  # the chained task is done with them
    settings = get_settings()
    store = ObjectStore(settings)
    prefix = f"sessions/{task_id}/"
    metas = [k for k in store.list_keys(settings.s3_bucket_raw, prefix) if k.endswith("-meta")]
    assert len(metas) == 7
    for key in metas:
        store.delete_prefix(settings.s3_bucket_raw, key)

    def localize(null_rows: bool) -> dict[str, Any]:
        with session_scope() as session:
            if null_rows:
                session.execute(
                    text("UPDATE measurements SET sigmf_meta = NULL WHERE task_id = :t"),
                    {"t": task_id},
                )
            result = service.compute(session, store, settings, uuid.UUID(task_id), method="tdoa")
            outcome = {"status": result.status, "method": result.method}
            session.rollback()
            return outcome

    from_rows = await asyncio.to_thread(localize, False)
    assert from_rows["status"] == "ok" and from_rows["method"] == "tdoa", from_rows
    with pytest.raises(ObjectStoreError, match="sigmf-meta"):
        await asyncio.to_thread(localize, True)
