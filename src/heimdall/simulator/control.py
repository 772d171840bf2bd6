"""Loopback HTTP control API of a running simulator (FastAPI).

Moves the transmitter, changes its power/frequency/modulation, and sets or
clears receiver faults while the network runs; ``GET /truth`` gives the link
budget of every receiver, with its hidden gain offset and timing bias, so tests and
demos can compare against what they measure and fit.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from heimdall.simulator.faults import Fault
from heimdall.simulator.physics import link_budget
from heimdall.simulator.scenario import Modulation, Transmitter, WidebandSettings
from heimdall.simulator.server import SimulationState


class TransmitterUpdate(BaseModel):
    """Any subset of the transmitter's fields; the rest keep their current values."""

    model_config = ConfigDict(extra="forbid")

    latitude: float | None = None
    longitude: float | None = None
    altitude_m: float | None = None
    eirp_dbm: float | None = None
    frequency_hz: float | None = None
    modulation: Modulation | None = None
    fm_deviation_hz: float | None = None
    wideband: WidebandSettings | None = None


def create_control_app(state: SimulationState, ports: dict[str, int] | None = None) -> FastAPI:
    """The control API bound to one live simulation state."""
    app = FastAPI(title="Heimdall receiver simulator control", version="1")

    def require_receiver(receiver_id: str) -> None:
        if receiver_id not in {receiver.id for receiver in state.scenario.receivers}:
            raise HTTPException(status_code=404, detail=f"unknown receiver {receiver_id!r}")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/scenario")
    async def get_scenario() -> dict[str, Any]:
        return {
            "scenario": state.scenario.model_dump(mode="json"),
            "faults": {rid: fault.model_dump(mode="json") for rid, fault in state.faults.items()},
            "ports": ports or {},
        }

    @app.get("/truth")
    async def get_truth() -> dict[str, dict[str, float]]:
        truth = {}
        for receiver in state.scenario.receivers:
            budget = link_budget(state.scenario, receiver)
            truth[receiver.id] = {
                "distance_m": budget.distance_m,
                "delay_s": budget.delay_s,
                "path_loss_db": budget.path_loss_db,
                "signal_power_dbm": budget.signal_power_dbm,
                "noise_power_dbm": budget.noise_power_dbm,
                "snr_db": budget.snr_db,
                "shadowing_db": budget.shadowing_db,
                "antenna_gain_dbi": receiver.antenna_gain_dbi,
                # The hidden imperfections, and what a perfect power reading then says.
                "gain_offset_db": receiver.gain_offset_db,
                "measured_signal_power_dbm": budget.measured_signal_power_dbm,
                "timing_bias_ns": receiver.timing_bias_ns,
                # dBm of a full-scale sample: an OpenWebRX S-meter reads dBm minus this.
                "full_scale_dbm": state.scenario.full_scale_dbm_of(receiver),
            }
        return truth

    @app.put("/transmitter")
    async def put_transmitter(update: TransmitterUpdate) -> dict[str, Any]:
        merged = state.scenario.transmitter.model_dump() | update.model_dump(exclude_none=True)
        try:
            transmitter = Transmitter.model_validate(merged)
        except ValidationError as error:
            raise HTTPException(status_code=422, detail=error.errors(include_url=False)) from None
        state.scenario = state.scenario.model_copy(update={"transmitter": transmitter})
        return transmitter.model_dump(mode="json")

    @app.put("/receivers/{receiver_id}/fault")
    async def put_fault(receiver_id: str, fault: Fault) -> dict[str, Any]:
        require_receiver(receiver_id)
        state.faults[receiver_id] = fault
        return fault.model_dump(mode="json")

    @app.delete("/receivers/{receiver_id}/fault", status_code=204)
    async def delete_fault(receiver_id: str) -> Response:
        require_receiver(receiver_id)
        state.faults.pop(receiver_id, None)
        return Response(status_code=204)

    return app
