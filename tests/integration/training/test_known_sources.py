"""Known sources through the training API: create, list, read, update, delete."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text

from heimdall.core.db import sync_engine
from tests.support.records import add_acquisition
from tests.support.tokens import tokens_required

BEACON = {
    "name": "Superga beacon",
    "latitude": 45.08,
    "longitude": 7.77,
    "altitude_m": 670.0,
    "frequency_mhz": 145.5,
    "eirp_dbm": 37.0,
    "modulation": "fm",
    "description": "club beacon on the basilica roof",
}


async def test_create_read_update_list_delete(training: httpx.AsyncClient) -> None:
    created = await training.post("/api/v1/training/known-sources", json=BEACON)
    assert created.status_code == 201, created.text
    source = created.json()
    assert {k: source[k] for k in BEACON} == BEACON
    source_id = source["id"]
    assert source["created_at"] and source["updated_at"]

    read = await training.get(f"/api/v1/training/known-sources/{source_id}")
    assert read.json() == source

    patched = await training.patch(
        f"/api/v1/training/known-sources/{source_id}",
        json={"eirp_dbm": None, "altitude_m": 700.0, "modulation": "nfm"},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["eirp_dbm"], body["altitude_m"], body["modulation"]) == (None, 700.0, "nfm")
    assert body["name"] == BEACON["name"] and body["updated_at"] >= source["updated_at"]

    second = await training.post(
        "/api/v1/training/known-sources", json={**BEACON, "name": "Alessandria relay"}
    )
    assert second.status_code == 201
    page = (await training.get("/api/v1/training/known-sources", params={"limit": 1})).json()
    assert (page["total"], page["limit"], [i["name"] for i in page["items"]]) == (
        2,
        1,
        ["Alessandria relay"],
    )

    deleted = await training.delete(f"/api/v1/training/known-sources/{source_id}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert (await training.get(f"/api/v1/training/known-sources/{source_id}")).status_code == 404


async def test_names_are_unique(training: httpx.AsyncClient) -> None:
    assert (await training.post("/api/v1/training/known-sources", json=BEACON)).status_code == 201
    again = await training.post("/api/v1/training/known-sources", json=BEACON)
    assert again.status_code == 409
    assert "Superga beacon" in again.json()["detail"]
    other = await training.post("/api/v1/training/known-sources", json={**BEACON, "name": "other"})
    renamed = await training.patch(
        f"/api/v1/training/known-sources/{other.json()['id']}", json={"name": BEACON["name"]}
    )
    assert renamed.status_code == 409


async def test_unknown_ids_and_invalid_fields(training: httpx.AsyncClient) -> None:
    unknown = f"/api/v1/training/known-sources/{uuid.uuid4()}"
    assert (await training.get(unknown)).status_code == 404
    assert (await training.patch(unknown, json={"eirp_dbm": 30})).status_code == 404
    assert (await training.delete(unknown)).status_code == 404
    for bad in (
        {**BEACON, "latitude": 91},
        {**BEACON, "longitude": -181},
        {**BEACON, "frequency_mhz": 0},
        {**BEACON, "name": ""},
        {**BEACON, "colour": "red"},
        {k: v for k, v in BEACON.items() if k != "latitude"},
    ):
        response = await training.post("/api/v1/training/known-sources", json=bad)
        assert response.status_code == 422, bad
    created = (await training.post("/api/v1/training/known-sources", json=BEACON)).json()
    path = f"/api/v1/training/known-sources/{created['id']}"
    for bad in ({"latitude": None}, {"name": None}, {"frequency_mhz": -1}):
        assert (await training.patch(path, json=bad)).status_code == 422, bad
    assert (await training.get(path)).json() == created


async def test_deleting_a_source_keeps_its_acquisitions_unlinked(
    training: httpx.AsyncClient,
) -> None:
    source_id = (await training.post("/api/v1/training/known-sources", json=BEACON)).json()["id"]
    task_id = add_acquisition(approval="approved", known_source_id=uuid.UUID(source_id))
    assert (await training.delete(f"/api/v1/training/known-sources/{source_id}")).status_code == 204
    with sync_engine().connect() as conn:
        link = conn.execute(
            text("SELECT known_source_id FROM acquisitions WHERE task_id = :t"), {"t": task_id}
        ).one()
    assert link.known_source_id is None


async def test_changes_need_a_token_when_tokens_are_set(training: httpx.AsyncClient) -> None:
    created = (await training.post("/api/v1/training/known-sources", json=BEACON)).json()
    path = f"/api/v1/training/known-sources/{created['id']}"
    with tokens_required("train-token") as auth:
        other = {**BEACON, "name": "other"}
        assert (
            await training.post("/api/v1/training/known-sources", json=other)
        ).status_code == 401
        assert (await training.patch(path, json={"eirp_dbm": 1})).status_code == 401
        assert (await training.delete(path)).status_code == 401
        assert (await training.get(path)).status_code == 200
        allowed = await training.patch(path, json={"eirp_dbm": 1}, headers=auth)
        assert allowed.status_code == 200
