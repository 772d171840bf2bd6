"""Known-answer tests of the simulator's physical model (no network)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.simulator.physics import (
    SAMPLES_PER_BLOCK,
    link_budget,
    power_dbm,
    render_receiver_iq,
    shadowing_db,
    slant_range_m,
)
from heimdall.simulator.scenario import (
    Modulation,
    Propagation,
    PropagationModel,
    ReceiverSettings,
    Scenario,
    Transmitter,
    load_scenario,
)

START_NS = 1_717_171_717_123_456_789
TX_LAT, TX_LON = 45.0, 8.0


def make_scenario(
    receivers: list[ReceiverSettings],
    modulation: Modulation = Modulation.carrier,
    propagation: Propagation | None = None,
    seed: int = 7,
) -> Scenario:
    return Scenario(
        seed=seed,
        transmitter=Transmitter(
            latitude=TX_LAT,
            longitude=TX_LON,
            altitude_m=0.0,
            eirp_dbm=30.0,
            frequency_hz=145_500_000.0,
            modulation=modulation,
        ),
        receivers=receivers,
        propagation=propagation or Propagation(),
    )


def receiver_at(
    receiver_id: str, latitude: float, altitude_m: float = 0.0, **extra: object
) -> ReceiverSettings:
    return ReceiverSettings.model_validate(
        {"id": receiver_id, "latitude": latitude, "longitude": TX_LON, "altitude_m": altitude_m}
        | extra
    )


def test_free_space_loss_matches_friis_in_km_and_mhz_form() -> None:
    # Straight above the transmitter: the slant range is exactly the height difference.
    scenario = make_scenario([receiver_at("above", TX_LAT, altitude_m=2000.0)])
    budget = link_budget(scenario, scenario.receivers[0])
    assert budget.distance_m == pytest.approx(2000.0, abs=1e-6)
    friis_db = 32.45 + 20 * np.log10(2.0) + 20 * np.log10(145.5)  # d in km, f in MHz
    assert budget.path_loss_db == pytest.approx(friis_db, abs=0.01)
    assert budget.signal_power_dbm == pytest.approx(30.0 - friis_db, abs=0.01)


def test_log_distance_adds_ten_n_log_distance_ratio_and_seeded_shadowing() -> None:
    propagation = Propagation(
        model=PropagationModel.log_distance,
        path_loss_exponent=3.3,
        reference_distance_m=100.0,
        shadowing_sigma_db=6.0,
    )
    scenario = make_scenario(
        [receiver_at("far", TX_LAT, altitude_m=10_000.0)], propagation=propagation
    )
    budget = link_budget(scenario, scenario.receivers[0])
    at_reference = 32.45 + 20 * np.log10(0.1) + 20 * np.log10(145.5)
    expected = at_reference + 33.0 * np.log10(100.0) + shadowing_db(7, "far", 6.0)
    assert budget.path_loss_db == pytest.approx(expected, abs=0.01)


def test_shadowing_is_fixed_per_seed_and_has_the_configured_spread() -> None:
    assert shadowing_db(1, "torino", 4.0) == shadowing_db(1, "torino", 4.0)
    assert shadowing_db(1, "torino", 4.0) != shadowing_db(2, "torino", 4.0)
    assert shadowing_db(1, "torino", 0.0) == 0.0
    values = np.array([shadowing_db(3, f"rx{i}", 4.0) for i in range(2000)])
    assert abs(values.mean()) < 0.3
    assert values.std() == pytest.approx(4.0, rel=0.08)


def test_slant_range_combines_geodesic_and_height() -> None:
    ground = slant_range_m((45.0, 8.0, 0.0), (45.1, 8.0, 0.0))
    assert ground == pytest.approx(11_116.0, rel=1e-3)  # 0.1 degree of latitude at 45 N
    slanted = slant_range_m((45.0, 8.0, 0.0), (45.1, 8.0, 3000.0))
    assert slanted == pytest.approx(np.hypot(ground, 3000.0), rel=1e-9)


def test_noise_power_is_ktb_plus_noise_figure() -> None:
    receiver = receiver_at("rx", 45.2, noise_figure_db=6.0, sample_rate_hz=12_000.0)
    scenario = make_scenario([receiver])
    rendered = render_receiver_iq(scenario, "rx", START_NS, 200_000, include_signal=False)
    expected_dbm = -174.0 + 10 * np.log10(12_000.0) + 6.0
    assert rendered.truth.noise_power_dbm == pytest.approx(expected_dbm, abs=1e-9)
    assert power_dbm(rendered.samples, scenario.full_scale_dbm) == pytest.approx(
        expected_dbm, abs=0.05
    )


def test_rendered_signal_power_and_snr_match_the_link_budget() -> None:
    scenario = make_scenario([receiver_at("rx", 45.3, antenna_gain_dbi=4.0)])
    clean = render_receiver_iq(scenario, "rx", START_NS, 4096, include_noise=False)
    truth = clean.truth
    assert power_dbm(clean.samples, scenario.full_scale_dbm) == pytest.approx(
        truth.signal_power_dbm, abs=1e-3
    )
    assert truth.snr_db == pytest.approx(truth.signal_power_dbm - truth.noise_power_dbm)


def test_delay_is_distance_over_c() -> None:
    scenario = load_scenario()
    for receiver in scenario.receivers:
        truth = render_receiver_iq(scenario, receiver, START_NS, 16).truth
        assert truth.delay_s == pytest.approx(truth.distance_m / SPEED_OF_LIGHT_M_PER_S, rel=1e-12)
        assert 1e-5 < truth.delay_s < 1e-3  # tens of km in NW Italy


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    scenario = load_scenario()
    first = render_receiver_iq(scenario, "torino", START_NS, 2048)
    again = render_receiver_iq(scenario, "torino", START_NS, 2048)
    np.testing.assert_array_equal(first.samples, again.samples)
    np.testing.assert_array_equal(
        first.truth.reported_block_time_ns, again.truth.reported_block_time_ns
    )
    reseeded = scenario.model_copy(update={"seed": scenario.seed + 1})
    other = render_receiver_iq(reseeded, "torino", START_NS, 2048)
    assert not np.allclose(first.samples, other.samples)


def test_block_by_block_rendering_is_continuous() -> None:
    # The server renders one 512-sample block at a time; the signal must not notice.
    scenario = load_scenario()
    receiver = scenario.receiver("milano")
    whole = render_receiver_iq(scenario, receiver, START_NS, 2048, include_noise=False)
    blocks = [
        render_receiver_iq(
            scenario, receiver, int(block_start), SAMPLES_PER_BLOCK, include_noise=False
        ).samples
        for block_start in whole.truth.block_time_ns
    ]
    peak = np.max(np.abs(whole.samples))
    np.testing.assert_allclose(np.concatenate(blocks), whole.samples, atol=1e-4 * peak)


def test_block_timestamps_step_by_512_over_fs_with_configured_jitter() -> None:
    receiver = receiver_at("rx", 45.2, gps_jitter_ns=200.0, sample_rate_hz=12_001.135)
    scenario = make_scenario([receiver])
    truth = render_receiver_iq(scenario, "rx", START_NS, 512 * 1500).truth
    steps_ns = np.diff(truth.block_time_ns)
    assert np.all(np.abs(steps_ns - 512e9 / 12_001.135) <= 1.0)
    error_ns = (truth.reported_block_time_ns - truth.block_time_ns).astype(np.float64)
    assert abs(error_ns.mean()) < 20.0
    assert error_ns.std() == pytest.approx(200.0, rel=0.1)


def test_receiver_without_gps_has_a_fixed_clock_offset() -> None:
    receiver = receiver_at("rx", 45.2, gps_jitter_ns=0.0, has_gps=False)
    scenario = make_scenario([receiver])
    truth = render_receiver_iq(scenario, "rx", START_NS, 512 * 10).truth
    offsets = truth.reported_block_time_ns - truth.block_time_ns
    assert np.all(offsets == offsets[0])
    assert abs(offsets[0]) > 1000  # milliseconds-scale, not GPS nanoseconds


def test_lo_error_shifts_the_carrier_by_ppm_times_frequency() -> None:
    receiver = receiver_at("rx", 45.2, lo_error_ppm=2.0, sample_rate_hz=12_000.0)
    scenario = make_scenario([receiver])
    rendered = render_receiver_iq(scenario, "rx", START_NS, 12_000, include_noise=False)
    phase = np.unwrap(np.angle(rendered.samples.astype(np.complex128)))
    measured_hz = np.polyfit(np.arange(12_000) / 12_000.0, phase, 1)[0] / (2 * np.pi)
    assert measured_hz == pytest.approx(-2e-6 * 145_500_000.0, abs=0.01)
    assert rendered.truth.frequency_offset_hz == pytest.approx(-291.0, abs=1e-6)


def test_tuning_away_from_the_transmitter_leaves_only_noise() -> None:
    scenario = make_scenario([receiver_at("rx", 45.2)])
    tuned = scenario.transmitter.frequency_hz + 25_000.0
    rendered = render_receiver_iq(scenario, "rx", START_NS, 50_000, tuned_frequency_hz=tuned)
    assert not rendered.truth.in_passband
    assert power_dbm(rendered.samples, scenario.full_scale_dbm) == pytest.approx(
        rendered.truth.noise_power_dbm, abs=0.1
    )


def subsample_lag_s(reference: np.ndarray, delayed: np.ndarray, sample_rate_hz: float) -> float:
    """Lag of `delayed` behind `reference` from an FFT-interpolated cross-correlation."""
    upsample = 64
    n = len(reference)
    cross_spectrum = np.fft.fft(delayed) * np.conj(np.fft.fft(reference))
    padded = np.zeros(n * upsample, dtype=np.complex128)
    half = n // 2
    padded[:half] = cross_spectrum[:half]
    padded[-half:] = cross_spectrum[-half:]
    correlation = np.abs(np.fft.ifft(padded))
    peak = int(np.argmax(correlation))
    lag = peak if peak < n * upsample // 2 else peak - n * upsample
    return lag / (upsample * sample_rate_hz)


@pytest.mark.parametrize("modulation", [Modulation.wideband, Modulation.nfm])
def test_cross_correlation_recovers_the_fractional_delay_difference(
    modulation: Modulation,
) -> None:
    # Two receivers 37.3 km apart on a line through the transmitter: about 1.49 samples.
    receivers = [
        receiver_at("near", 45.1, sample_rate_hz=12_000.0),
        receiver_at("far", 45.1 + 37_300 / 111_130, sample_rate_hz=12_000.0),
    ]
    scenario = make_scenario(receivers, modulation=modulation)
    near = render_receiver_iq(scenario, "near", START_NS, 12_000)
    far = render_receiver_iq(scenario, "far", START_NS, 12_000)
    expected_s = far.truth.delay_s - near.truth.delay_s
    assert 1.2 < expected_s * 12_000 < 1.8  # genuinely fractional
    # Remove the common carrier phase so only the envelope delay is measured.
    measured_s = subsample_lag_s(near.samples, far.samples, 12_000.0)
    assert measured_s == pytest.approx(expected_s, abs=0.03 / 12_000)


def test_wideband_fills_most_of_the_passband() -> None:
    scenario = make_scenario(
        [receiver_at("rx", 45.2, sample_rate_hz=12_000.0)], Modulation.wideband
    )
    rendered = render_receiver_iq(scenario, "rx", START_NS, 48_000, include_noise=False)
    frequencies, density = signal.welch(
        rendered.samples, fs=12_000.0, nperseg=1024, return_onesided=False
    )
    occupied = np.abs(frequencies) <= 0.5 * 8000 * 1.35
    fraction_inside = density[occupied].sum() / density.sum()
    assert fraction_inside > 0.99
    # ... and is broadband: a flat 10.8 kHz spectrum would have 81 % outside +-1 kHz.
    assert density[np.abs(frequencies) > 1000].sum() / density.sum() > 0.7
