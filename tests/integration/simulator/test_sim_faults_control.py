"""Every fault mode is observable on the wire; the control API changes what receivers hear."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from heimdall.simulator.network import RunningNetwork, network_in_thread, running_network
from heimdall.simulator.scenario import load_scenario
from heimdall.simulator.server import ServerOptions
from tests.integration.simulator.simkiwi_raw import (
    authenticate,
    collect_snd,
    complete_setup,
    frames_within,
    next_snd,
    parse_msg,
    parse_snd,
)

RECEIVER = "genova"


@pytest.fixture
async def network() -> AsyncIterator[RunningNetwork]:
    scenario = load_scenario()
    scenario = scenario.model_copy(update={"receivers": [scenario.receiver(RECEIVER)]})
    async with running_network(
        scenario, ephemeral=True, control_port=0, options=ServerOptions(shuffle_messages=False)
    ) as running:
        yield running


@pytest.fixture
async def control(network: RunningNetwork) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=network.control_url or "", timeout=5.0) as client:
        yield client


async def set_fault(control: httpx.AsyncClient, kind: str, **settings: object) -> None:
    response = await control.put(f"/receivers/{RECEIVER}/fault", json={"kind": kind} | settings)
    assert response.status_code == 200, response.text


def sound_url(network: RunningNetwork) -> str:
    return network.url(RECEIVER) + "/42/SND"


async def start_stream(network: RunningNetwork, ws: object) -> None:
    await authenticate(ws)  # type: ignore[arg-type]
    await complete_setup(ws, network.state.scenario.transmitter.frequency_hz)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "expected"), [("refuse", {"too_busy": "4"}), ("down", {"down": ""})]
)
async def test_refusals_on_connect(
    network: RunningNetwork, control: httpx.AsyncClient, kind: str, expected: dict[str, str]
) -> None:
    await set_fault(control, kind)
    async with connect(sound_url(network)) as ws:
        assert parse_msg(await ws.recv()) == expected
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2.0)


async def test_bad_password(network: RunningNetwork, control: httpx.AsyncClient) -> None:
    await set_fault(control, "badp")
    async with connect(sound_url(network)) as ws:
        await ws.send("SET auth t=kiwi p=")
        assert parse_msg(await ws.recv()) == {"badp": "1"}


async def test_not_answering_never_completes_the_handshake(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    await set_fault(control, "not_answering")
    with pytest.raises(TimeoutError):
        async with connect(sound_url(network), open_timeout=0.5):
            pass


async def test_silent_sends_nothing_after_the_handshake(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    await set_fault(control, "silent")
    async with connect(sound_url(network)) as ws:
        await ws.send("SET auth t=kiwi p=")
        assert await frames_within(ws, 0.5) == []


async def test_stall_stops_frames_but_keeps_the_socket(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    await set_fault(control, "stall", after_s=0.3)
    async with connect(sound_url(network)) as ws:
        await start_stream(network, ws)
        before = await frames_within(ws, 0.6)
        after = await frames_within(ws, 0.5)
        await ws.send("SET keepalive")  # still open
        await ws.ping()
    assert 4 <= len(before) <= 12
    assert after == []


async def test_drop_aborts_the_connection(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    await set_fault(control, "drop", after_s=0.3)
    async with connect(sound_url(network)) as ws:
        await start_stream(network, ws)
        started = time.monotonic()
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                await next_snd(ws)
    assert closed.value.rcvd is None  # no close frame: the TCP connection was cut
    assert time.monotonic() - started < 1.0


async def test_malformed_frames_are_mixed_into_the_stream(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    await set_fault(control, "malformed", every_n=2)
    async with connect(sound_url(network)) as ws:
        await start_stream(network, ws)
        frames = await frames_within(ws, 0.6)
    valid = [f for f in frames if isinstance(f, bytes) and len(f) == 2068 and f[:3] == b"SND"]
    wrong_tag = [f for f in frames if isinstance(f, bytes) and f[:3] == b"XYZ"]
    odd_length = [f for f in frames if isinstance(f, bytes) and len(f) != 2068]
    text = [f for f in frames if isinstance(f, str)]
    assert valid and wrong_tag and odd_length and text
    assert len(valid) >= len(frames) // 2 - 2


async def test_no_gps_fault_applies_to_a_running_stream(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    async with connect(sound_url(network)) as ws:
        await start_stream(network, ws)
        with_gps = await collect_snd(ws, 3)
        await set_fault(control, "no_gps")
        await frames_within(ws, 0.1)  # frames rendered before the change
        without_gps = await collect_snd(ws, 3)
    assert all(f.gps_status != 255 for f in with_gps)
    assert all(f.gps_status == 255 for f in without_gps)


async def test_hostile_streams_large_garbage(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    await set_fault(control, "hostile", garbage_frame_bytes=100_000, garbage_bytes_per_s=2e6)
    async with connect(sound_url(network), max_size=None) as ws:
        await start_stream(network, ws)
        frames = await frames_within(ws, 0.5)
    garbage = [f for f in frames if isinstance(f, bytes) and len(f) == 100_000]
    assert 5 <= len(garbage) <= 15  # about 2 MB/s


async def test_clearing_a_fault_restores_service(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    await set_fault(control, "down")
    assert (await control.delete(f"/receivers/{RECEIVER}/fault")).status_code == 204
    async with connect(sound_url(network)) as ws:
        await start_stream(network, ws)
        assert parse_snd(await next_snd(ws)).sequence == 1


async def test_control_api_validates_input(control: httpx.AsyncClient) -> None:
    assert (await control.get("/health")).json() == {"status": "ok"}
    unknown = await control.put("/receivers/nowhere/fault", json={"kind": "down"})
    assert unknown.status_code == 404
    assert (
        await control.put(f"/receivers/{RECEIVER}/fault", json={"kind": "x"})
    ).status_code == 422
    assert (await control.put("/transmitter", json={"latitude": 123})).status_code == 422
    scenario = (await control.get("/scenario")).json()
    assert scenario["scenario"]["transmitter"]["frequency_hz"] == 145_500_000
    assert RECEIVER in scenario["ports"]


async def test_moving_the_transmitter_changes_the_received_power(
    network: RunningNetwork, control: httpx.AsyncClient
) -> None:
    genova = network.state.receiver(RECEIVER)
    async with connect(sound_url(network)) as ws:
        await start_stream(network, ws)
        far = await collect_snd(ws, 6)
        truth_far = (await control.get("/truth")).json()[RECEIVER]
        moved = await control.put(
            "/transmitter",
            json={"latitude": genova.latitude + 0.05, "longitude": genova.longitude},
        )
        assert moved.status_code == 200
        truth_near = (await control.get("/truth")).json()[RECEIVER]
        await frames_within(ws, 0.1)
        near = await collect_snd(ws, 6)
    assert truth_near["signal_power_dbm"] > truth_far["signal_power_dbm"] + 20
    far_dbm = np.mean([f.rssi_dbm for f in far])
    near_dbm = np.mean([f.rssi_dbm for f in near])
    # Both SNRs are high, so the S-meter follows the signal power change.
    expected_change = truth_near["signal_power_dbm"] - truth_far["signal_power_dbm"]
    assert near_dbm - far_dbm == pytest.approx(expected_change, abs=1.0)


def test_network_runs_in_a_background_thread() -> None:
    scenario = load_scenario()
    with network_in_thread(scenario, ephemeral=True, control_port=0) as network:
        assert len(network.ports) == 7 and len(set(network.ports.values())) == 7
        response = httpx.get(f"{network.control_url}/health", timeout=5.0)
    assert response.json() == {"status": "ok"}
