"""A training job end to end: simulated known-source sessions -> review -> fit -> registry.

Six known sources at different sites, two approved sessions each, one rejected session;
the job fits, registers v1 (active only if it beats the default calibration), and a
session approved afterwards is used by the next job, which is kept inactive on request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore, parse_s3_url
from heimdall.simulator.network import RunningNetwork
from tests.integration.acquisition.test_acquisition_e2e import acquire, wait_finished
from tests.support.asgi import service_client

SITES = [  # inside the receivers' hull, > 1 km apart (the fit's folds are whole sites)
    (44.90, 8.20),
    (45.10, 7.95),
    (44.75, 8.55),
    (45.25, 8.40),
    (44.95, 7.60),
    (45.30, 8.80),
]


@pytest.fixture
def restore_transmitter(simulator: RunningNetwork) -> Iterator[None]:
    scenario = simulator.state.scenario
    yield
    simulator.state.scenario = scenario


@pytest.fixture
async def review(clean_db: str) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client("data_ingestion_web") as client:
        yield client


async def place(simulator: RunningNetwork, latitude: float, longitude: float) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.put(
            f"{simulator.control_url}/transmitter",
            json={"latitude": latitude, "longitude": longitude},
        )
    assert response.status_code == 200, response.text


async def record(api: httpx.AsyncClient, source_id: str) -> str:
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1, known_source_id=source_id)
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"
    return task_id


async def run_job(training: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    started = await training.post("/api/v1/training/jobs", json=body)
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "PENDING"
    url = f"/api/v1/training/jobs/{started.json()['job_id']}"
    seen: list[float] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await training.get(url)).json()
        seen.append(job["progress"])
        if job["state"] in {"SUCCESS", "FAILED", "CANCELLED"}:
            assert seen == sorted(seen), seen  # progress only moves forward
            return job
        await asyncio.sleep(0.5)
    raise AssertionError(f"training job not finished: {job}")


async def test_known_source_sessions_train_a_registered_calibration(
    api: httpx.AsyncClient,
    review: httpx.AsyncClient,
    simulator: RunningNetwork,
    object_store: ObjectStore,
    settings: Settings,
    restore_transmitter: None,
) -> None:
    async with service_client("training") as training:
        approved: list[str] = []
        sources: list[str] = []
        for index, (latitude, longitude) in enumerate(SITES):
            created = await training.post(
                "/api/v1/training/known-sources",
                json={
                    "name": f"site {index}",
                    "latitude": latitude,
                    "longitude": longitude,
                    "altitude_m": 300.0,
                    "frequency_mhz": 145.5,
                    "eirp_dbm": 37.0,
                },
            )
            assert created.status_code == 201, created.text
            sources.append(created.json()["id"])
            await place(simulator, latitude, longitude)
            for _ in range(2):
                approved.append(await record(api, sources[-1]))
        # A bad session: recorded at the last site but labelled with the first source.
        rejected = await record(api, sources[0])
        late = await record(api, sources[-1])
        for task_id in approved:
            response = await review.post(
                f"/api/v1/sessions/approve/{task_id}", json={"reviewer": "test"}
            )
            assert response.status_code == 200, response.text
        response = await review.post(
            f"/api/v1/sessions/reject/{rejected}", json={"comment": "wrong source"}
        )
        assert response.status_code == 200

        first = await run_job(training, {"folds": 2})
        assert first["state"] == "SUCCESS", first
        assert first["progress"] == 100 and first["finished_at"] is not None
        result = first["result"]
        model = (await training.get(f"/api/v1/training/models/{first['model_id']}")).json()
        assert (model["version"], model["parameters"]["version"]) == (1, "calibration-v1")
        assert result["calibration_version"] == "calibration-v1"
        data = model["training_data"]
        assert sorted(data["task_ids"]) == sorted(approved)  # rejected and pending: never
        assert rejected not in data["task_ids"] and late not in data["task_ids"]
        assert data["sessions_per_receiver"] == dict.fromkeys(data["sessions_per_receiver"], 12)
        assert len(data["sessions_per_receiver"]) == 7
        assert sorted(data["known_source_ids"]) == sorted(sources)
        metrics = model["metrics"]
        assert {"held_out", "baseline", "comparison", "fit_report"} <= set(metrics)
        assert metrics["baseline_version"] == "default-v1"
        # Activated exactly when it beats the calibration in use on held-out sessions.
        assert model["is_active"] is metrics["beats_baseline"] is result["activated"]
        assert "kept_at_prior" in result
        artifact_ref = parse_s3_url(model["artifact_url"])
        assert artifact_ref.key == "models/calibration/v1.json"
        artifact = json.loads(object_store.get_bytes(artifact_ref.bucket, artifact_ref.key))
        assert artifact["calibration"] == model["parameters"]
        assert len(artifact["report"]["sessions"]) == 12

        # Approved after the fit: the next job uses it. "never" keeps v2 inactive.
        assert (await review.post(f"/api/v1/sessions/approve/{late}")).status_code == 200
        second = await run_job(training, {"folds": 2, "activate": "never"})
        assert second["state"] == "SUCCESS", second
        v2 = (await training.get(f"/api/v1/training/models/{second['model_id']}")).json()
        assert v2["version"] == 2 and v2["is_active"] is False
        assert late in v2["training_data"]["task_ids"] and v2["training_data"]["sessions"] == 13
        assert rejected not in v2["training_data"]["task_ids"]
        assert "comparison" in v2["metrics"] and second["result"]["activated"] is False
        expected_baseline = "calibration-v1" if model["is_active"] else "default-v1"
        assert v2["metrics"]["baseline_version"] == expected_baseline
        listed = (await training.get("/api/v1/training/models")).json()
        assert [m["version"] for m in listed["items"]] == [2, 1]
