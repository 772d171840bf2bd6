"""The simulated KiwiSDR against a raw WebSocket client: handshake, gate, frames, timeouts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import unquote

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from heimdall.simulator.network import RunningNetwork, running_network
from heimdall.simulator.physics import link_budget
from heimdall.simulator.scenario import Scenario, load_scenario
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

GPS_UTC_OFFSET_S = 18
GPS_EPOCH_UNIX_S = 315_964_800


def small_scenario() -> Scenario:
    scenario = load_scenario()
    keep = [rx for rx in scenario.receivers if rx.id in {"torino", "milano"}]
    keep[1] = keep[1].model_copy(update={"rx_chans": 2})  # milano: only two channels
    return scenario.model_copy(update={"receivers": keep})


@pytest.fixture
async def network() -> AsyncIterator[RunningNetwork]:
    options = ServerOptions(
        keepalive_timeout_s=1.0, pre_auth_timeout_s=0.6, setup_timeout_s=1.5, shuffle_messages=False
    )
    async with running_network(small_scenario(), ephemeral=True, options=options) as running:
        yield running


def tx_frequency_hz(network: RunningNetwork) -> float:
    return network.state.scenario.transmitter.frequency_hz


async def test_greeting_messages_in_documented_order(network: RunningNetwork) -> None:
    async with connect(network.url("torino") + "/1234/SND") as ws:
        greeting = [parse_msg(frame) for frame in await authenticate(ws)]
    names = [next(iter(message)) for message in greeting]
    assert names == [
        "rx_chans",
        "chan_no_pwd",
        "badp",
        "version_maj",
        "load_cfg",
        "center_freq",
        "audio_init",
        "sample_rate",
    ]
    assert greeting[0]["rx_chans"] == "4" and greeting[2]["badp"] == "0"
    assert greeting[6]["audio_rate"] == "12000"
    torino = network.state.receiver("torino")
    assert float(greeting[7]["sample_rate"]) == pytest.approx(torino.sample_rate_hz, abs=1e-3)
    config = json.loads(unquote(greeting[4]["load_cfg"]))
    latitude, longitude = (float(v) for v in config["rx_gps"].strip("()").split(","))
    assert (latitude, longitude) == pytest.approx((45.044, 7.672))
    assert config["rx_asl"] == 250 and "Torino" in config["rx_name"]


async def test_shuffled_greeting_keeps_auth_replies_in_order(network: RunningNetwork) -> None:
    network.state.options = ServerOptions(shuffle_messages=True)
    orders = set()
    for attempt in range(8):
        async with connect(network.url("torino") + f"/{attempt}/SND") as ws:
            names = [next(iter(parse_msg(frame))) for frame in await authenticate(ws)]
        auth_only = [n for n in names if n in {"rx_chans", "chan_no_pwd", "badp", "version_maj"}]
        assert auth_only == ["rx_chans", "chan_no_pwd", "badp", "version_maj"]
        assert sorted(names) == sorted(set(names)) and len(names) == 8
        orders.add(tuple(names))
    assert len(orders) > 1  # really shuffled


@pytest.mark.parametrize("path", ["/ws/kiwi/77/SND", "/wb/78/SND"])
async def test_alternative_paths_are_accepted(network: RunningNetwork, path: str) -> None:
    async with connect(network.url("torino") + path) as ws:
        assert "rx_chans" in parse_msg((await authenticate(ws))[0])


async def test_other_paths_are_refused(network: RunningNetwork) -> None:
    with pytest.raises(InvalidStatus):
        async with connect(network.url("torino") + "/kiwi/W/F"):
            pass


async def test_setup_sent_before_auth_does_not_count(network: RunningNetwork) -> None:
    async with connect(network.url("torino") + "/5/SND") as ws:
        await complete_setup(ws, tx_frequency_hz(network))  # ignored: not authenticated
        await authenticate(ws)
        await ws.send("SET keepalive")
        frames = await frames_within(ws, 0.5)
    assert not [f for f in frames if isinstance(f, bytes) and f[:3] == b"SND"]


@pytest.mark.parametrize("missing", ["ar", "mod", "agc", "ar_out_zero"])
async def test_no_audio_until_all_five_conditions(network: RunningNetwork, missing: str) -> None:
    async with connect(network.url("torino") + "/6/SND") as ws:
        await authenticate(ws)
        skip = frozenset({"ar"}) if missing == "ar_out_zero" else frozenset({missing})
        await complete_setup(ws, tx_frequency_hz(network), skip=skip)
        if missing == "ar_out_zero":
            await ws.send("SET AR OK in=12000 out=0")
        assert await frames_within(ws, 0.4) == []
        # Completing the missing condition opens the gate.
        await complete_setup(ws, tx_frequency_hz(network))
        frame = parse_snd(await next_snd(ws, 2.0))
    assert frame.sequence == 1


async def test_frames_sequence_timestamps_and_pacing(network: RunningNetwork) -> None:
    torino = network.state.receiver("torino")
    async with connect(network.url("torino") + "/7/SND") as ws:
        await authenticate(ws)
        await complete_setup(ws, tx_frequency_hz(network))
        first = parse_snd(await next_snd(ws))
        started = time.monotonic()
        frames = [first, *await collect_snd(ws, 34)]
        elapsed_s = time.monotonic() - started
    assert [f.sequence for f in frames] == list(range(1, 36))
    assert all(f.flags & 0x08 and not f.flags & 0x80 for f in frames)
    steps_s = np.diff([f.gps_time_s for f in frames])
    # 512 / fs apart, within the configured GPS jitter (tens of ns).
    np.testing.assert_allclose(steps_s, 512 / torino.sample_rate_hz, atol=2e-6)
    # 34 further blocks of 512 samples take 34 * 512 / fs seconds of wall clock.
    assert elapsed_s == pytest.approx(34 * 512 / torino.sample_rate_hz, abs=0.25)
    # GPS time of week agrees with this machine's clock (a block is at most ~0.1 s old).
    now_gps_s = (time.time() + GPS_UTC_OFFSET_S - GPS_EPOCH_UNIX_S) % 604_800
    assert frames[-1].gps_time_s == pytest.approx(now_gps_s, abs=0.5)
    assert all(f.gps_status < 10 for f in frames)
    assert len({f.gps_status for f in frames}) > 1  # the fix age moves


@pytest.mark.parametrize("little_endian", [False, True])
async def test_smeter_matches_in_band_power(network: RunningNetwork, little_endian: bool) -> None:
    scenario = network.state.scenario
    async with connect(network.url("torino") + "/8/SND") as ws:
        await authenticate(ws)
        await complete_setup(ws, tx_frequency_hz(network), little_endian=little_endian)
        frames = await collect_snd(ws, 10)
    assert all(bool(f.flags & 0x80) is little_endian for f in frames)
    for frame in frames:
        measured_dbm = 10 * np.log10(np.mean(np.abs(frame.samples) ** 2)) + scenario.full_scale_dbm
        assert frame.rssi_dbm == pytest.approx(measured_dbm, abs=1.0)
    budget = link_budget(scenario, scenario.receiver("torino"))
    total_dbm = 10 * np.log10(
        10 ** (budget.signal_power_dbm / 10) + 10 ** (budget.noise_power_dbm / 10)
    )
    assert np.mean([f.rssi_dbm for f in frames]) == pytest.approx(total_dbm, abs=1.0)


async def test_tuned_away_hears_only_noise(network: RunningNetwork) -> None:
    scenario = network.state.scenario
    async with connect(network.url("torino") + "/9/SND") as ws:
        await authenticate(ws)
        await complete_setup(ws, tx_frequency_hz(network) + 50_000)
        frames = await collect_snd(ws, 5)
    noise_dbm = link_budget(scenario, scenario.receiver("torino")).noise_power_dbm
    assert np.mean([f.rssi_dbm for f in frames]) == pytest.approx(noise_dbm, abs=1.0)


async def test_extra_clients_get_too_busy(network: RunningNetwork) -> None:
    url = network.url("milano") + "/10/SND"
    async with connect(url) as first, connect(url) as second:
        await authenticate(first)
        await authenticate(second)
        async with connect(url) as third:
            assert parse_msg(await third.recv()) == {"too_busy": "2"}


async def test_silent_client_is_dropped_before_auth(network: RunningNetwork) -> None:
    async with connect(network.url("torino") + "/11/SND") as ws:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3.0)
    assert 0.5 < time.monotonic() - started < 1.5


async def test_client_without_keepalive_is_dropped_after_auth(network: RunningNetwork) -> None:
    async with connect(network.url("torino") + "/12/SND") as ws:
        await authenticate(ws)
        await ws.send("SET keepalive")
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3.0)
    assert 0.8 < time.monotonic() - started < 1.6


async def test_keepalives_without_setup_are_dropped(network: RunningNetwork) -> None:
    async with connect(network.url("torino") + "/13/SND") as ws:
        await authenticate(ws)
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            for _ in range(40):
                await ws.send("SET keepalive")
                await asyncio.sleep(0.1)
    # Set-up timeout 1.5 s, counted from the connection.
    assert 1.2 < time.monotonic() - started < 2.2
