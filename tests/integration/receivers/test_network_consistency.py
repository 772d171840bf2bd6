"""What the client records from the simulated network agrees with the physics.

Issue 3's acceptance: RSSI within 1 dB of the simulated received power, and
GPS-timestamped captures on every receiver. (Arrival-time differences need a
cross-ambiguity search over the receivers' LO offsets: see docs/dsp.md.)
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from heimdall.core.settings import get_settings
from heimdall.receivers.capture import IQCapture
from heimdall.receivers.kiwisdr import StationEndpoint, record_iq
from heimdall.simulator.network import running_network
from heimdall.simulator.physics import link_budget
from heimdall.simulator.scenario import load_scenario


@pytest.fixture(scope="module")
def scenario():  # type: ignore[no-untyped-def]
    return load_scenario(get_settings().scenario_file)


async def record_network(scenario, duration_s: float) -> list[IQCapture]:  # type: ignore[no-untyped-def]
    async with running_network(scenario, ephemeral=True) as network:
        return list(
            await asyncio.gather(
                *(
                    record_iq(
                        StationEndpoint(receiver_id, network.url(receiver_id)),
                        frequency_hz=scenario.transmitter.frequency_hz,
                        duration_s=duration_s,
                    )
                    for receiver_id in network.ports
                )
            )
        )


async def test_rssi_matches_the_simulated_received_power(scenario) -> None:  # type: ignore[no-untyped-def]
    captures = await record_network(scenario, duration_s=2.0)
    by_id = {c.station_id: c for c in captures}
    budgets = {r.id: link_budget(scenario, r) for r in scenario.receivers}

    for receiver_id, capture in by_id.items():
        budget = budgets[receiver_id]
        total_dbm = 10 * math.log10(
            10 ** (budget.signal_power_dbm / 10) + 10 ** (budget.noise_power_dbm / 10)
        )
        assert capture.mean_rssi_dbm is not None
        assert abs(capture.mean_rssi_dbm - total_dbm) < 1.0, receiver_id

    assert np.all([c.has_gps_time for c in captures])
