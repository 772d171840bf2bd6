"""The KiwiSDR client against the receiver simulator, both halves of the protocol together.

Runs the simulator in-process (ephemeral ports, no backing services needed) and
checks that a healthy receiver gives a GPS-timed capture at the true rate and
that each simulated fault comes back as its typed error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from heimdall.receivers.errors import (
    ReceiverAuthFailed,
    ReceiverBusy,
    ReceiverConnectionLost,
    ReceiverDown,
    ReceiverError,
    ReceiverProtocolError,
    ReceiverTimeout,
)
from heimdall.receivers.kiwisdr import StationEndpoint, record_iq
from heimdall.simulator.faults import Fault, FaultKind
from heimdall.simulator.network import running_network
from heimdall.simulator.scenario import load_scenario

TIMEOUTS = {"connect_timeout_s": 1.0, "first_frame_timeout_s": 2.0, "stall_timeout_s": 0.6}


async def test_healthy_simulated_receiver() -> None:
    scenario = load_scenario()
    receiver = scenario.receivers[0]
    async with running_network(scenario, ephemeral=True) as network:
        capture = await record_iq(
            StationEndpoint(receiver.id, network.url(receiver.id)),
            frequency_hz=scenario.transmitter.frequency_hz,
            duration_s=1.0,
            **TIMEOUTS,
        )
    assert capture.station_id == receiver.id and capture.driver == "kiwisdr"
    assert len(capture.samples) == math.ceil(capture.sample_rate_hz / 512) * 512
    assert capture.has_gps_time
    spacing_ns = np.diff(capture.block_time_ns)
    # Fresh GPS stamps carry jitter; the spacing still follows 512 / fs within a sample.
    assert np.all(
        np.abs(spacing_ns - 512e9 / capture.sample_rate_hz) < 1e9 / capture.sample_rate_hz
    )
    assert np.all(np.isfinite(capture.rssi_dbm))
    assert capture.metadata["latitude"] == pytest.approx(receiver.latitude, abs=1e-3)
    assert capture.metadata["longitude"] == pytest.approx(receiver.longitude, abs=1e-3)


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (Fault(kind=FaultKind.refuse), ReceiverBusy),
        (Fault(kind=FaultKind.badp), ReceiverAuthFailed),
        (Fault(kind=FaultKind.down), ReceiverDown),
        (Fault(kind=FaultKind.not_answering), ReceiverTimeout),
        (Fault(kind=FaultKind.silent), ReceiverTimeout),
        (Fault(kind=FaultKind.stall, after_s=0.2), ReceiverTimeout),
        (Fault(kind=FaultKind.drop, after_s=0.2), ReceiverConnectionLost),
        (Fault(kind=FaultKind.malformed, after_s=0.1), ReceiverProtocolError),
        (Fault(kind=FaultKind.hostile), ReceiverProtocolError),
    ],
    ids=lambda value: value.kind.value if isinstance(value, Fault) else "",
)
async def test_simulated_faults_become_typed_errors(
    fault: Fault, error_type: type[ReceiverError]
) -> None:
    scenario = load_scenario()
    receiver = scenario.receivers[0]
    async with running_network(scenario, ephemeral=True) as network:
        network.state.faults[receiver.id] = fault
        with pytest.raises(error_type) as raised:
            await record_iq(
                StationEndpoint(receiver.id, network.url(receiver.id)),
                frequency_hz=scenario.transmitter.frequency_hz,
                duration_s=2.0,
                **TIMEOUTS,
            )
    assert receiver.id in str(raised.value)


async def test_simulated_receiver_without_gps() -> None:
    scenario = load_scenario()
    receiver = scenario.receivers[0]
    async with running_network(scenario, ephemeral=True) as network:
        network.state.faults[receiver.id] = Fault(kind=FaultKind.no_gps)
        capture = await record_iq(
            StationEndpoint(receiver.id, network.url(receiver.id)),
            frequency_hz=scenario.transmitter.frequency_hz,
            duration_s=0.5,
            **TIMEOUTS,
        )
    assert not capture.has_gps_time
    assert np.all(np.diff(capture.block_time_ns) > 0)
