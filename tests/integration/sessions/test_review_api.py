"""Session review on the real stack: list, detail, approve / reject, known-source links."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from heimdall.simulator.network import RunningNetwork
from tests.integration.acquisition.test_acquisition_e2e import acquire, set_fault, wait_finished
from tests.support.asgi import service_client
from tests.support.records import add_acquisition, add_known_source, review_of
from tests.support.tokens import tokens_required

UNKNOWN = "00000000-0000-0000-0000-00000000beef"


@pytest.fixture
async def review(clean_db: str) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client("data_ingestion_web") as client:
        yield client


async def wait_for(
    client: httpx.AsyncClient, url: str, ready: Any, timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await client.get(url)).json()
        if ready(body):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} not ready within {timeout_s} s: {body}")


async def test_a_recorded_session_is_listed_shown_and_reviewed(
    api: httpx.AsyncClient, review: httpx.AsyncClient
) -> None:
    source_id = str(add_known_source("monferrato beacon"))
    task_id = await acquire(api, frequency_mhz=145.5, duration_seconds=1, known_source_id=source_id)
    assert (await wait_finished(api, task_id))["state"] == "SUCCESS"
    status = (await api.get(f"/api/v1/acquisition/status/{task_id}")).json()
    assert status["known_source_id"] == source_id

    # The listing, once the chained localization has landed.
    page = await wait_for(
        review,
        "/api/v1/sessions/recent",
        lambda body: body["items"] and body["items"][0]["localization"] is not None,
    )
    assert (page["total"], page["limit"], page["offset"]) == (1, 50, 0)
    item = page["items"][0]
    assert item["task_id"] == task_id
    assert (item["status"], item["approval"], item["progress"]) == ("SUCCESS", "pending", 100)
    assert item["websdr_count"] == 7 and len(item["stations"]) == 7
    assert (item["known_source_id"], item["known_source_name"]) == (source_id, "monferrato beacon")
    assert set(item["localization"]) == {
        "status",
        "method",
        "latitude",
        "longitude",
        "semi_major_m",
        "semi_minor_m",
        "orientation_deg",
    }

    detail = (await review.get(f"/api/v1/sessions/{task_id}")).json()
    assert detail["state"] == "SUCCESS" and detail["errors"] == []
    assert detail["known_source"]["name"] == "monferrato beacon"
    measurements = (await api.get(f"/api/v1/acquisition/measurements/{task_id}")).json()
    assert detail["measurements"] == measurements
    fix = detail["localization"]
    assert fix["task_id"] == task_id and fix["residuals"]
    assert fix["surface_geojson"]["type"] == "FeatureCollection"
    assert fix["calibration_version"] == "default-v1" and fix["model_id"] is None

    approved = await review.post(
        f"/api/v1/sessions/approve/{task_id}",
        json={"comment": "clean capture", "reviewer": "ada"},
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["task_id"], body["approval"]) == (task_id, "approved")
    assert (body["reviewed_by"], body["review_comment"]) == ("ada", "clean capture")
    assert body["reviewed_at"] is not None
    assert review_of(task_id) == ("approved", "ada", "clean capture")

    # Re-deciding is allowed: the latest decision is the one stored. No body is fine.
    rejected = await review.post(f"/api/v1/sessions/reject/{task_id}")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["approval"] == "rejected"
    assert review_of(task_id) == ("rejected", None, None)
    listed = (await review.get("/api/v1/sessions/recent", params={"approval": "rejected"})).json()
    assert [i["task_id"] for i in listed["items"]] == [task_id]


async def test_only_finished_sessions_can_be_decided(
    api: httpx.AsyncClient, review: httpx.AsyncClient, simulator: RunningNetwork
) -> None:
    for receiver in ("genova", "giovi"):
        await set_fault(simulator, receiver, kind="down")
    failed = await acquire(
        api, frequency_mhz=145.5, duration_seconds=1, stations=["genova", "giovi", "torino"]
    )
    assert (await wait_finished(api, failed))["state"] == "FAILED"
    refused = await review.post(f"/api/v1/sessions/approve/{failed}")
    assert refused.status_code == 409
    assert "FAILED" in refused.json()["detail"]
    assert (await review.post(f"/api/v1/sessions/reject/{failed}")).status_code == 200

    pending = str(add_acquisition(status="PENDING"))
    running = str(add_acquisition(status="PROGRESS"))
    cancelled = str(add_acquisition(status="CANCELLED"))
    for task_id in (pending, running):
        for decision in ("approve", "reject"):
            response = await review.post(f"/api/v1/sessions/{decision}/{task_id}")
            assert response.status_code == 409, (decision, response.text)
        assert review_of(task_id) == ("pending", None, None)
    assert (await review.post(f"/api/v1/sessions/approve/{cancelled}")).status_code == 409
    assert (await review.post(f"/api/v1/sessions/reject/{cancelled}")).status_code == 200


async def test_unknown_sessions_and_bad_bodies(review: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", f"/api/v1/sessions/{UNKNOWN}"),
        ("POST", f"/api/v1/sessions/approve/{UNKNOWN}"),
        ("POST", f"/api/v1/sessions/reject/{UNKNOWN}"),
        ("GET", f"/sessions/{UNKNOWN}"),
    ):
        response = await review.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert UNKNOWN in response.json()["detail"]
    task_id = str(add_acquisition())
    for body in ({"comment": "x" * 2001}, {"reviewer": "x" * 101}, {"verdict": "good"}):
        response = await review.post(f"/api/v1/sessions/approve/{task_id}", json=body)
        assert response.status_code == 422, body
    assert review_of(task_id) == ("pending", None, None)
    assert (await review.get("/api/v1/sessions/not-a-uuid")).status_code == 422


async def test_recent_filters_and_pages(review: httpx.AsyncClient) -> None:
    beacon = add_known_source("beacon")
    relay = add_known_source("relay", frequency_mhz=433.5)
    a = str(add_acquisition(approval="approved", known_source_id=beacon))
    b = str(add_acquisition(approval="rejected", frequency_mhz=433.5, known_source_id=relay))
    c = str(add_acquisition(status="FAILED", frequency_mhz=144.0))
    d = str(add_acquisition())

    async def ids(**params: Any) -> list[str]:
        response = await review.get("/api/v1/sessions/recent", params=params)
        assert response.status_code == 200, response.text
        return [i["task_id"] for i in response.json()["items"]]

    assert await ids() == [d, c, b, a]  # newest first
    assert await ids(state="FAILED") == [c]
    assert await ids(approval="approved") == [a]
    assert await ids(approval="pending") == [d, c]
    assert await ids(frequency_min_mhz=145, frequency_max_mhz=146) == [d, a]
    assert await ids(frequency_min_mhz=400) == [b]
    assert await ids(known_source_id=str(relay)) == [b]
    assert await ids(state="SUCCESS", approval="pending") == [d]
    page = (await review.get("/api/v1/sessions/recent", params={"limit": 2, "offset": 1})).json()
    assert ([i["task_id"] for i in page["items"]], page["total"]) == ([c, b], 4)
    failed = (await review.get("/api/v1/sessions/recent", params={"state": "FAILED"})).json()
    assert failed["items"][0]["websdr_count"] == 0 and failed["items"][0]["localization"] is None
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"state": "DONE"}):
        assert (await review.get("/api/v1/sessions/recent", params=bad)).status_code == 422
    # The same routes under /sessions (ARCHITECTURE's names), kept out of the OpenAPI schema.
    assert await ids() == [
        i["task_id"] for i in (await review.get("/sessions/recent")).json()["items"]
    ]
    paths = (await review.get("/openapi.json")).json()["paths"]
    assert "/api/v1/sessions/recent" in paths
    assert not any(p.startswith("/sessions") for p in paths)


async def test_linking_a_known_source_afterwards(review: httpx.AsyncClient) -> None:
    source = str(add_known_source("beacon"))
    task_id = str(add_acquisition())
    linked = await review.put(
        f"/api/v1/sessions/{task_id}/known-source", json={"known_source_id": source}
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["known_source"]["id"] == source
    unknown_source = await review.put(
        f"/api/v1/sessions/{task_id}/known-source", json={"known_source_id": str(uuid.uuid4())}
    )
    assert unknown_source.status_code == 422
    unknown_session = await review.put(
        f"/api/v1/sessions/{UNKNOWN}/known-source", json={"known_source_id": source}
    )
    assert unknown_session.status_code == 404
    detail = (await review.get(f"/api/v1/sessions/{task_id}")).json()
    assert detail["known_source_id"] == source
    unlinked = await review.put(
        f"/api/v1/sessions/{task_id}/known-source", json={"known_source_id": None}
    )
    assert unlinked.status_code == 200
    assert (unlinked.json()["known_source_id"], unlinked.json()["known_source"]) == (None, None)


async def test_decisions_need_a_token_when_tokens_are_set(review: httpx.AsyncClient) -> None:
    task_id = str(add_acquisition())
    with tokens_required("review-token") as auth:
        for path in (f"/api/v1/sessions/approve/{task_id}", f"/api/v1/sessions/reject/{task_id}"):
            assert (await review.post(path)).status_code == 401
            wrong = await review.post(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 403
        link = await review.put(
            f"/api/v1/sessions/{task_id}/known-source", json={"known_source_id": None}
        )
        assert link.status_code == 401
        assert review_of(task_id) == ("pending", None, None)
        # Reading needs none; a valid token lets a decision through.
        assert (await review.get("/api/v1/sessions/recent")).status_code == 200
        ok = await review.post(f"/api/v1/sessions/approve/{task_id}", headers=auth)
        assert ok.status_code == 200, ok.text
    assert review_of(task_id)[0] == "approved"
