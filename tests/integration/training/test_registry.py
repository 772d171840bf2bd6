"""The model registry: one active version, activation, rollback as a stack, what inference uses."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.localization.calibration import Calibration
from tests.integration.acquisition.test_acquisition_e2e import acquire, wait_finished
from tests.integration.localization.test_localization_e2e import wait_localized
from tests.support.asgi import service_client
from tests.support.records import add_model
from tests.support.tokens import tokens_required


def active_versions() -> list[int]:
    with sync_engine().connect() as conn:
        rows = conn.execute(text("SELECT version FROM models WHERE is_active ORDER BY version"))
        return [r.version for r in rows]


async def activate(training: httpx.AsyncClient, model_id: uuid.UUID) -> dict[str, object]:
    response = await training.post(f"/api/v1/training/models/{model_id}/activate")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def rollback(training: httpx.AsyncClient) -> httpx.Response:
    return await training.post("/api/v1/training/models/rollback")


async def test_activate_then_roll_back_through_the_history(training: httpx.AsyncClient) -> None:
    v1, v2, v3 = add_model(1), add_model(2), add_model(3)
    listed = (await training.get("/api/v1/training/models")).json()
    assert [m["version"] for m in listed["items"]] == [3, 2, 1]  # newest first
    assert listed["total"] == 3 and not any(m["is_active"] for m in listed["items"])

    body = await activate(training, v1)
    assert body["is_active"] is True and body["activated_at"] is not None
    for model_id in (v2, v3):
        await activate(training, model_id)
    assert active_versions() == [3]
    # Activating the active version again changes nothing (and adds no history).
    await activate(training, v3)
    await activate(training, v1)  # history: v1, v2, v3, v1

    expected = [(3, "calibration-v3"), (2, "calibration-v2"), (1, "calibration-v1")]
    for version, calibration_version in expected:
        response = await rollback(training)
        assert response.status_code == 200, response.text
        assert response.json()["active_model"]["version"] == version
        assert response.json()["calibration_version"] == calibration_version
        assert active_versions() == [version]
    to_default = await rollback(training)
    assert to_default.status_code == 200
    assert to_default.json() == {"active_model": None, "calibration_version": "default-v1"}
    assert active_versions() == []
    nothing_left = await rollback(training)
    assert nothing_left.status_code == 409
    assert "default calibration" in nothing_left.json()["detail"]

    shown = (await training.get(f"/api/v1/training/models/{v2}")).json()
    assert shown["parameters"]["version"] == "calibration-v2" and shown["is_active"] is False


async def test_unknown_models(training: httpx.AsyncClient) -> None:
    unknown = uuid.uuid4()
    assert (await training.get(f"/api/v1/training/models/{unknown}")).status_code == 404
    response = await training.post(f"/api/v1/training/models/{unknown}/activate")
    assert response.status_code == 404
    assert str(unknown) in response.json()["detail"]
    assert (await rollback(training)).status_code == 409
    assert (await training.post("/api/v1/training/models/not-an-id/activate")).status_code == 422


async def test_registry_changes_need_a_token_when_tokens_are_set(
    training: httpx.AsyncClient,
) -> None:
    v1 = add_model(1)
    with tokens_required("registry-token") as auth:
        assert (await training.post(f"/api/v1/training/models/{v1}/activate")).status_code == 401
        assert (await rollback(training)).status_code == 401
        assert (await training.post("/api/v1/training/jobs", json={})).status_code == 401
        cancel = await training.post(f"/api/v1/training/jobs/{uuid.uuid4()}/cancel")
        assert cancel.status_code == 401
        assert active_versions() == []
        assert (await training.get("/api/v1/training/models")).status_code == 200
        allowed = await training.post(f"/api/v1/training/models/{v1}/activate", headers=auth)
        assert allowed.status_code == 200
    assert active_versions() == [1]


async def test_localizations_use_and_name_the_active_model(
    api: httpx.AsyncClient, training: httpx.AsyncClient
) -> None:
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1)
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"
    fitted = Calibration(
        version="calibration-v7", path_loss_exponent=2.6, gain_offsets_db={"torino": 2.0}
    )
    model_id = add_model(7, calibration=fitted)
    async with service_client("inference") as inference:
        automatic = await wait_localized(inference, task_id)
        assert (automatic["model_id"], automatic["calibration_version"]) == (None, "default-v1")
        await activate(training, model_id)
        again = await inference.post(
            "/api/v1/inference/localize",
            json={"task_id": task_id, "method": "rss", "recompute": True},
        )
        assert again.status_code == 200, again.text
        assert again.json()["model_id"] == str(model_id)
        assert again.json()["calibration_version"] == "calibration-v7"
        assert (await rollback(training)).status_code == 200
        after = await inference.post(
            "/api/v1/inference/localize",
            json={"task_id": task_id, "method": "rss", "recompute": True},
        )
    assert (after.json()["model_id"], after.json()["calibration_version"]) == (None, "default-v1")
