"""What the client records from the simulated network agrees with the physics.

Issue 3's acceptance, end to end (simulator in-process on ephemeral ports, the
real KiwiSDR client, the real DSP): RSSI within 1 dB of the simulated received
power, GPS-timestamped captures on every receiver, and for all 21 receiver
pairs an arrival-time difference equal to the true propagation-delay
difference within 3 sigma of the GPS timestamp jitter.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.core.settings import get_settings
from heimdall.dsp.tdoa import tdoa_lag
from heimdall.receivers.capture import IQCapture
from heimdall.receivers.kiwisdr import StationEndpoint, record_iq
from heimdall.simulator.network import running_network
from heimdall.simulator.physics import (
    link_budget,
    local_oscillator_hz,
    slant_range_m,
)
from heimdall.simulator.scenario import Scenario, load_scenario

RECORD_DURATION_S = 2.0
#: Allowance for the sub-sample lag estimate itself, in samples. Noise-free, the
#: estimator is within ~10 ns (0.0001 sample) of the truth on the simulator's
#: QPSK burst (the finite window's self-noise), and the receivers' SNR (>30 dB
#: over 2 s) adds a few ns: 0.001 sample (83 ns) is several times both, yet
#: small enough that a timing bug of a fraction of a microsecond fails.
LAG_ESTIMATE_ALLOWANCE_SAMPLES = 0.001
#: Largest error of the relative carrier offset estimate.
FREQUENCY_OFFSET_TOLERANCE_HZ = 0.5


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(get_settings().scenario_file)


async def record_network(scenario: Scenario, duration_s: float) -> list[IQCapture]:
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


@pytest.fixture(scope="module")
def captures(scenario: Scenario) -> dict[str, IQCapture]:
    """One 2 s recording of all seven receivers, shared by the checks below."""
    recorded = asyncio.run(record_network(scenario, RECORD_DURATION_S))
    return {capture.station_id: capture for capture in recorded}


def test_every_receiver_records_with_gps_time(
    scenario: Scenario, captures: dict[str, IQCapture]
) -> None:
    assert sorted(captures) == sorted(receiver.id for receiver in scenario.receivers)
    for receiver_id, capture in captures.items():
        assert capture.has_gps_time, receiver_id


def test_rssi_matches_the_simulated_received_power(
    scenario: Scenario, captures: dict[str, IQCapture]
) -> None:
    for receiver in scenario.receivers:
        budget = link_budget(scenario, receiver)
        total_dbm = 10 * math.log10(
            10 ** (budget.signal_power_dbm / 10) + 10 ** (budget.noise_power_dbm / 10)
        )
        mean_rssi_dbm = captures[receiver.id].mean_rssi_dbm
        assert mean_rssi_dbm is not None
        assert abs(mean_rssi_dbm - total_dbm) < 1.0, receiver.id


def test_arrival_time_differences_match_the_propagation_delays(
    scenario: Scenario, captures: dict[str, IQCapture]
) -> None:
    receivers = {receiver.id: receiver for receiver in scenario.receivers}
    tuned_hz = scenario.transmitter.frequency_hz
    failures = []
    for id_a, id_b in itertools.combinations(sorted(receivers), 2):
        rx_a, rx_b = receivers[id_a], receivers[id_b]
        baseline_m = slant_range_m(rx_a.require_position(), rx_b.require_position())
        lag = tdoa_lag(
            captures[id_a], captures[id_b], max_lag_s=baseline_m / SPEED_OF_LIGHT_M_PER_S
        )

        # Positive lag = b later: it must equal delay_b - delay_a, sign included.
        true_lag_s = link_budget(scenario, rx_b).delay_s - link_budget(scenario, rx_a).delay_s
        # Each capture's time base is the median over its blocks of GPS stamps with
        # independent per-block jitter, so 3 sigma of the pair's per-block jitter
        # sqrt(ja^2 + jb^2) bounds the timing error with room to spare (the median
        # of ~47 blocks shrinks it about five-fold): passing easily is the physics.
        jitter_s = math.hypot(rx_a.gps_jitter_ns, rx_b.gps_jitter_ns) * 1e-9
        bound_s = 3 * jitter_s + LAG_ESTIMATE_ALLOWANCE_SAMPLES / lag.sample_rate_hz
        error_s = lag.lag_s - true_lag_s

        # The LOs differ by (ppm_a - ppm_b) of the tuned frequency: up to ~30 Hz.
        true_offset_hz = local_oscillator_hz(rx_a, tuned_hz) - local_oscillator_hz(rx_b, tuned_hz)
        offset_error_hz = lag.frequency_offset_hz - true_offset_hz

        if (
            abs(error_s) > bound_s
            or abs(offset_error_hz) > FREQUENCY_OFFSET_TOLERANCE_HZ
            or not lag.is_reliable
        ):
            failures.append(
                f"{id_a}->{id_b}: lag error {error_s * 1e9:.0f} ns (bound {bound_s * 1e9:.0f}),"
                f" offset error {offset_error_hz:.2f} Hz, quality {lag.quality_db:.1f} dB"
            )
    assert not failures, "\n".join(failures)
