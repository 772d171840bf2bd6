"""The simulated OpenWebRX receiver's spectra, audio chain and S-meter against the physics."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from heimdall.simulator import adpcm_encoder, openwebrx_render, truth
from heimdall.simulator.openwebrx_render import (
    PROFILES,
    ChannelDemodulator,
    render_channel,
    spectrum_frame_db,
)
from heimdall.simulator.physics import link_budget, thermal_noise_dbm
from heimdall.simulator.scenario import PACKAGE_DATA, Modulation, load_scenario

START_NS = 1_717_200_000 * 10**9


def test_docstring_examples() -> None:
    for module in (openwebrx_render, adpcm_encoder, truth):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


def test_spectrum_noise_floor_and_line_follow_the_receiver_full_scale() -> None:
    scenario = load_scenario(PACKAGE_DATA / "scenario-openwebrx.yaml")
    scenario = scenario.model_copy(
        update={
            "transmitter": scenario.transmitter.model_copy(
                update={"modulation": Modulation.carrier}
            )
        }
    )
    receiver = scenario.receiver("giovi")
    frames = np.array(
        [
            spectrum_frame_db(scenario, receiver, PROFILES[0], START_NS + k * 10**8, 4096)
            for k in range(8)
        ]
    )
    power = np.mean(10 ** (frames / 10), axis=0)
    full_scale = scenario.full_scale_dbm_of(receiver)
    # Noise per bin: kTB F over the band, spread by the Hann window's ENBW over the bins.
    noise_dbm = thermal_noise_dbm(2.4e6, receiver.noise_figure_db)
    expected_bin_db = noise_dbm - full_scale - 10 * np.log10(4096 / 1.5)
    assert 10 * np.log10(np.median(power[:1000])) == pytest.approx(expected_bin_db, abs=1.0)
    # The carrier (a full-scale tone reads 0 dB) sits at its link-budget power.
    signal_dbm = link_budget(scenario, receiver).signal_power_dbm
    assert 10 * np.log10(power.max() * 1.0) == pytest.approx(signal_dbm - full_scale, abs=1.6)


def test_s_meter_is_the_passband_power_in_the_receiver_unit() -> None:
    scenario = load_scenario(PACKAGE_DATA / "scenario-openwebrx.yaml")
    receiver = scenario.receiver("torino")
    demodulator = ChannelDemodulator(12_000.0, "usb", 300.0, 5_700.0)
    powers = []
    for k in range(12):
        iq = render_channel(
            scenario, receiver, START_NS + k * 85_333_333, 1024, 145.497e6, 12_000.0
        )
        audio, power = demodulator.process(iq)
        powers.append(power)
        assert np.max(np.abs(audio)) <= 1.0
    budget = link_budget(scenario, receiver)
    # The 5.4 kHz passband holds nearly all of the 5.4 kHz wide signal (SNR ~ 40 dB).
    measured_db = 10 * np.log10(np.mean(powers[2:])) + scenario.full_scale_dbm_of(receiver)
    assert measured_db == pytest.approx(budget.signal_power_dbm, abs=1.0)


@pytest.mark.parametrize("mode", ["usb", "lsb", "am", "nfm"])
def test_every_demodulator_levels_its_audio(mode: str) -> None:
    n = np.arange(12_000)
    iq = (0.01 * np.exp(2j * np.pi * (1_000.0 if mode != "lsb" else -1_000.0) * n / 12_000)).astype(
        np.complex64
    )
    low, high = (
        (-3_000.0, -300.0)
        if mode == "lsb"
        else (-3_000.0, 3_000.0)
        if mode in ("am", "nfm")
        else (300.0, 3_000.0)
    )
    demodulator = ChannelDemodulator(12_000.0, mode, low, high)
    for chunk in np.split(iq, 12):
        audio, _ = demodulator.process(chunk)
    if mode in ("usb", "lsb"):
        assert float(np.sqrt(np.mean(audio**2))) == pytest.approx(0.25, rel=0.2)
    with pytest.raises(ValueError):
        ChannelDemodulator(12_000.0, "cw", 0.0, 1.0)
