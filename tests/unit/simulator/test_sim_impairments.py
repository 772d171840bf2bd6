"""The simulator's real-world impairments do what docs/simulator.md says (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.dsp.measurement import measure
from heimdall.simulator.channel import GPS_STATUS_STALE
from heimdall.simulator.impairments import (
    Converter,
    GpsTiming,
    ImpairmentKind,
    Interference,
    Multipath,
    ReceiverImpairments,
    ablated,
    realistic_world,
)
from heimdall.simulator.physics import link_budget, render_receiver_iq
from heimdall.simulator.scenario import (
    Modulation,
    Propagation,
    PropagationModel,
    ReceiverSettings,
    Scenario,
    Transmitter,
    load_scenario,
)
from heimdall.training.simulated import record

START_NS = 1_717_171_717_123_456_789
TX_LAT, TX_LON = 45.0, 8.0


def scenario_with(*receivers: ReceiverSettings, propagation: Propagation | None = None) -> Scenario:
    return Scenario(
        seed=3,
        transmitter=Transmitter(
            latitude=TX_LAT,
            longitude=TX_LON,
            altitude_m=300.0,
            eirp_dbm=40.0,
            modulation=Modulation.carrier,
        ),
        receivers=list(receivers),
        propagation=propagation or Propagation(),
    )


def receiver(receiver_id: str, latitude: float, **impairments: object) -> ReceiverSettings:
    return ReceiverSettings(
        id=receiver_id,
        latitude=latitude,
        longitude=TX_LON,
        altitude_m=300.0,
        gps_jitter_ns=0.0,
        sample_rate_hz=12_000.0,
        impairments=ReceiverImpairments.model_validate(impairments),
    )


def test_gps_solution_error_is_shared_by_a_capture_not_drawn_per_block() -> None:
    gps = GpsTiming(solution_sigma_ns=500.0, solution_interval_s=8.0)
    scenario = scenario_with(receiver("rx", 45.3, gps=gps))
    truth = render_receiver_iq(scenario, "rx", START_NS, 512 * 100).truth
    errors = (truth.reported_block_time_ns - truth.block_time_ns).astype(float)
    # Linear between solutions: consecutive blocks differ by a tiny step, not by 500 ns.
    assert np.max(np.abs(np.diff(errors, 2))) <= 2.0
    # Across many captures the error has the configured spread.
    starts = START_NS + np.arange(60) * 8 * 10**9
    offsets = [
        float(
            np.mean(render_receiver_iq(scenario, "rx", int(s), 512).truth.reported_block_time_ns)
            - s
        )
        for s in starts
    ]
    assert 300.0 < np.std(offsets) < 750.0


def test_stale_solutions_report_254_and_drift_and_bad_stamps_jump() -> None:
    gps = GpsTiming(stale_probability=1.0, stale_drift_ns_per_s=1_000.0)
    scenario = scenario_with(receiver("rx", 45.3, gps=gps))
    truth = render_receiver_iq(scenario, "rx", START_NS, 512 * 100).truth
    assert np.all(truth.gps_status == GPS_STATUS_STALE)
    errors = (truth.reported_block_time_ns - truth.block_time_ns).astype(float)
    assert np.ptp(errors) > 1_000.0  # 4 s of 1 us/s drift, restarting at each solution
    bad = scenario_with(receiver("rx", 45.3, gps=GpsTiming(bad_stamp_probability=0.2)))
    truth = render_receiver_iq(bad, "rx", START_NS, 512 * 200).truth
    jumps = np.abs(truth.reported_block_time_ns - truth.block_time_ns) > 10_000
    assert 15 <= int(jumps.sum()) <= 65


def test_multipath_taps_keep_the_link_power_and_fade_slowly() -> None:
    multipath = Multipath(echoes=2, delay_spread_us=20.0, rician_k_db=None, fading_hz=1.0)
    scenario = scenario_with(receiver("rx", 45.3, multipath=multipath))
    rendered = render_receiver_iq(scenario, "rx", START_NS, 12_000 * 4, include_noise=False)
    taps = rendered.truth.multipath_taps
    assert len(taps) == 3 and taps[0].delay_s == 0.0
    assert all(1e-6 <= t.delay_s <= 20e-6 for t in taps[1:])
    assert sum(t.power for t in taps) == pytest.approx(1.0)
    # A Rayleigh-fading carrier: its envelope changes over a second, not within a block.
    envelope = np.abs(rendered.samples)
    assert np.max(np.abs(np.diff(envelope[:512]))) < 0.01 * np.max(envelope)
    assert np.ptp(envelope) > 0.3 * np.max(envelope)


def test_converter_offset_moves_the_carrier_and_the_announced_rate_is_off() -> None:
    converter = Converter(converter_offset_hz=1_500.0)
    scenario = scenario_with(
        receiver("rx", 45.3, converter=converter, announced_rate_error_ppm=4.0)
    )
    capture = record(scenario, "rx", START_NS, 100)
    assert capture.sample_rate_hz == pytest.approx(12_000.0 * (1 + 4e-6))
    assert measure(capture).frequency_offset_hz == pytest.approx(-1_500.0, abs=1.0)


def test_horizon_correlated_shadowing_and_obstruction() -> None:
    propagation = Propagation(
        model=PropagationModel.log_distance,
        path_loss_exponent=2.8,
        reference_distance_m=1000.0,
        shadowing_sigma_db=6.0,
        shadowing_correlation_m=50_000.0,
        radio_horizon=True,
    )
    near_a, near_b = receiver("a", 45.3), receiver("b", 45.3001)
    far = receiver("far", 47.0)  # 220 km: past the 4/3-Earth horizon of two 300 m sites
    scenario = scenario_with(near_a, near_b, far, propagation=propagation)
    a, b, beyond = (link_budget(scenario, r) for r in scenario.receivers)
    assert a.shadowing_db == pytest.approx(b.shadowing_db, abs=0.5)  # 11 m apart: rho 0.9998
    without = scenario.model_copy(
        update={"propagation": propagation.model_copy(update={"radio_horizon": False})}
    )
    assert beyond.path_loss_db - link_budget(without, far).path_loss_db > 20.0
    obstructed = scenario_with(receiver("rx", 45.3, obstruction_probability=1.0))
    clear = scenario_with(receiver("rx", 45.3))
    loss_db = link_budget(obstructed, obstructed.receivers[0]).path_loss_db
    assert loss_db - link_budget(clear, clear.receivers[0]).path_loss_db == pytest.approx(40.0)


def test_interference_adds_a_second_signal_and_impulses() -> None:
    settings = Interference(interferer_probability=1.0, interferer_snr_db=(20.0, 20.0))
    noisy = scenario_with(receiver("rx", 45.3, interference=settings))
    clean = scenario_with(receiver("rx", 45.3))
    kwargs = {"include_signal": False}
    power = np.mean(
        np.abs(render_receiver_iq(noisy, "rx", START_NS, 12_000, **kwargs).samples) ** 2
    )
    base = np.mean(np.abs(render_receiver_iq(clean, "rx", START_NS, 12_000, **kwargs).samples) ** 2)
    assert 10 * np.log10(power / base) == pytest.approx(10 * np.log10(101.0), abs=0.5)
    impulsive = scenario_with(
        receiver("rx", 45.3, interference=Interference(impulses_per_s=20.0, impulse_snr_db=40.0))
    )
    samples = render_receiver_iq(impulsive, "rx", START_NS, 12_000, **kwargs).samples
    assert np.sum(np.abs(samples) ** 2 > 1_000 * base) >= 5


def test_realistic_world_and_its_ablation() -> None:
    world = realistic_world(load_scenario(), np.random.default_rng(1))
    assert world.propagation.radio_horizon and world.propagation.shadowing_correlation_m > 0
    assert all(abs(r.impairments.converter.converter_offset_hz) <= 2_000 for r in world.receivers)
    lo_only = ablated(world, ImpairmentKind.lo)
    assert not lo_only.propagation.radio_horizon
    assert all(r.impairments.multipath.echoes == 0 for r in lo_only.receivers)
    assert [r.impairments.converter for r in lo_only.receivers] == [
        r.impairments.converter for r in world.receivers
    ]
    realistic = load_scenario(
        load_scenario.__defaults__[0].parent / "scenario-realistic.yaml"  # type: ignore[index]
    )
    assert all(r.impairments.multipath.echoes >= 1 for r in realistic.receivers)
