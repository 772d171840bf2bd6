"""The control API's truth reports the hidden per-receiver imperfections (in process)."""

from __future__ import annotations

import httpx
import pytest

from heimdall.simulator.control import create_control_app
from heimdall.simulator.physics import link_budget
from heimdall.simulator.scenario import load_scenario
from heimdall.simulator.server import SimulationState


async def test_truth_reports_gain_offsets_timing_biases_and_measured_power() -> None:
    scenario = load_scenario()
    receivers = [
        r.model_copy(update={"gain_offset_db": 4.0, "timing_bias_ns": -650.0})
        if r.id == "torino"
        else r
        for r in scenario.receivers
    ]
    state = SimulationState(scenario=scenario.model_copy(update={"receivers": receivers}))
    transport = httpx.ASGITransport(app=create_control_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://control") as client:
        truth = (await client.get("/truth")).json()
    torino = truth["torino"]
    assert torino["gain_offset_db"] == 4.0
    assert torino["timing_bias_ns"] == -650.0
    assert torino["antenna_gain_dbi"] == scenario.receiver("torino").antenna_gain_dbi
    assert torino["measured_signal_power_dbm"] == pytest.approx(torino["signal_power_dbm"] + 4.0)
    budget = link_budget(state.scenario, state.scenario.receiver("torino"))
    assert torino["shadowing_db"] == budget.shadowing_db
    assert truth["milano"]["gain_offset_db"] == 0.0 and truth["milano"]["timing_bias_ns"] == 0.0
