"""Known-answer tests of the simulator's physical model (no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod
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
    shadow_db = shadowing_db(7, "far", (TX_LAT, TX_LON, 0.0), 6.0)
    expected = at_reference + 33.0 * np.log10(100.0) + shadow_db
    assert budget.path_loss_db == pytest.approx(expected, abs=0.01)
    assert budget.shadowing_db == shadow_db != 0.0


HERE = (45.0, 8.0, 300.0)


def test_shadowing_is_fixed_per_link_and_seed_and_has_the_configured_spread() -> None:
    assert shadowing_db(1, "torino", HERE, 4.0) == shadowing_db(1, "torino", HERE, 4.0)
    assert shadowing_db(1, "torino", HERE, 4.0) != shadowing_db(2, "torino", HERE, 4.0)
    assert shadowing_db(1, "torino", HERE, 0.0) == 0.0
    # Far below a metre the link is the same one (positions that went through JSON).
    assert shadowing_db(1, "torino", HERE, 4.0) == shadowing_db(
        1, "torino", (45.0 + 1e-9, 8.0 - 1e-9, 300.0 + 1e-6), 4.0
    )
    across_receivers = np.array([shadowing_db(3, f"rx{i}", HERE, 4.0) for i in range(2000)])
    assert abs(across_receivers.mean()) < 0.3
    assert across_receivers.std() == pytest.approx(4.0, rel=0.08)


def test_one_receiver_sees_new_shadowing_wherever_the_transmitter_goes() -> None:
    """A receiver's shadowing is not a property of the receiver: a fit could not
    otherwise tell it from the receiver's gain. Across transmitter positions it has
    mean zero and the configured spread."""
    rng = np.random.default_rng(5)
    positions = zip(rng.uniform(44.0, 46.0, 2000), rng.uniform(7.0, 9.5, 2000), strict=True)
    values = np.array([shadowing_db(3, "torino", (lat, lon, 300.0), 4.0) for lat, lon in positions])
    assert abs(values.mean()) < 0.3
    assert values.std() == pytest.approx(4.0, rel=0.08)
    scenario = load_scenario()
    moved = scenario.model_copy(
        update={"transmitter": scenario.transmitter.model_copy(update={"latitude": 44.95})}
    )
    before = link_budget(scenario, scenario.receiver("torino")).shadowing_db
    after = link_budget(moved, moved.receiver("torino")).shadowing_db
    assert before != after


def test_a_gain_offset_scales_signal_and_noise_and_so_every_power_reading() -> None:
    plain = make_scenario([receiver_at("rx", 45.3, antenna_gain_dbi=2.0)])
    offset = make_scenario([receiver_at("rx", 45.3, antenna_gain_dbi=2.0, gain_offset_db=-4.5)])
    budget = link_budget(offset, offset.receivers[0])
    assert budget.signal_power_dbm == link_budget(plain, plain.receivers[0]).signal_power_dbm
    assert budget.measured_signal_power_dbm == pytest.approx(budget.signal_power_dbm - 4.5)
    for include_noise, include_signal in ((False, True), (True, False)):
        kwargs = {"include_noise": include_noise, "include_signal": include_signal}
        reference = render_receiver_iq(plain, "rx", START_NS, 8192, **kwargs)
        scaled = render_receiver_iq(offset, "rx", START_NS, 8192, **kwargs)
        change_db = power_dbm(scaled.samples, offset.full_scale_dbm) - power_dbm(
            reference.samples, plain.full_scale_dbm
        )
        assert change_db == pytest.approx(-4.5, abs=1e-3)
    assert scaled.truth.gain_offset_db == -4.5
    assert scaled.truth.snr_db == reference.truth.snr_db  # after the noise is set


def test_a_timing_bias_shifts_every_reported_stamp_by_exactly_the_bias() -> None:
    plain = make_scenario([receiver_at("rx", 45.2, gps_jitter_ns=80.0)])
    biased = make_scenario([receiver_at("rx", 45.2, gps_jitter_ns=80.0, timing_bias_ns=-730.0)])
    reference = render_receiver_iq(plain, "rx", START_NS, 512 * 20).truth
    shifted = render_receiver_iq(biased, "rx", START_NS, 512 * 20).truth
    np.testing.assert_array_equal(shifted.block_time_ns, reference.block_time_ns)
    np.testing.assert_array_equal(
        shifted.reported_block_time_ns - reference.reported_block_time_ns, -730
    )


def test_the_imperfections_are_scenario_yaml_fields(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(
        "transmitter: {latitude: 45.0, longitude: 8.0}\n"
        "receivers:\n"
        "  - {id: torino, gain_offset_db: 5.5, timing_bias_ns: 900}\n"
        "  - {id: milano}\n",
        encoding="utf-8",
    )
    scenario = load_scenario(scenario_file)
    assert scenario.receiver("torino").gain_offset_db == 5.5
    assert scenario.receiver("torino").timing_bias_ns == 900.0
    assert scenario.receiver("milano").gain_offset_db == 0.0
    assert scenario.receiver("milano").timing_bias_ns == 0.0


def _ecef_m(lat_deg: float, lon_deg: float, height_m: float) -> np.ndarray:
    """WGS84 geodetic to Earth-centred Cartesian by the closed-form formula."""
    a, f = 6_378_137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    n = a / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    return np.array(
        [
            (n + height_m) * np.cos(lat) * np.cos(lon),
            (n + height_m) * np.cos(lat) * np.sin(lon),
            (n * (1 - e2) + height_m) * np.sin(lat),
        ]
    )


def test_slant_range_is_the_straight_line_between_the_points() -> None:
    assert slant_range_m((45.0, 8.0, 0.0), (45.0, 8.0, 3000.0)) == pytest.approx(3000.0)
    a, b = (45.0, 7.5, 300.0), (45.9, 9.2, 1200.0)  # ~160 km apart
    chord_m = float(np.linalg.norm(_ecef_m(*a) - _ecef_m(*b)))
    assert slant_range_m(a, b) == pytest.approx(chord_m, abs=1e-3)
    # On the ground, shorter than the arc by about d^3 / (24 R^2) (3.5 m at 166 km).
    _, _, arc_m = Geod(ellps="WGS84").inv(a[1], a[0], b[1], b[0])
    sag_m = arc_m - slant_range_m((a[0], a[1], 0.0), (b[0], b[1], 0.0))
    assert sag_m == pytest.approx(arc_m**3 / (24 * 6_371_000.0**2), rel=0.05)


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
