"""Known-answer tests of the transmitted waveforms."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.simulator.scenario import WidebandSettings
from heimdall.simulator.waveforms import (
    nfm_baseband,
    nfm_message,
    root_raised_cosine,
    wideband_baseband,
)

BASE_NS = 1_700_000_000_250_000_000


@pytest.mark.parametrize("rolloff", [0.2, 0.35, 0.5])
def test_rrc_has_unit_energy_and_its_square_is_nyquist(rolloff: float) -> None:
    step = 1 / 200
    t = np.arange(-40, 40 + step / 2, step)
    pulse = root_raised_cosine(t, rolloff)
    assert np.sum(pulse**2) * step == pytest.approx(1.0, abs=2e-3)
    # RRC * RRC = raised cosine: zero at every non-zero symbol instant.
    raised = np.convolve(pulse, pulse) * step
    centre = len(raised) // 2
    at_symbols = raised[centre + np.arange(-5, 6) * 200]
    expected = np.zeros(11)
    expected[5] = 1.0
    np.testing.assert_allclose(at_symbols, expected, atol=5e-3)


def test_wideband_is_the_same_wherever_the_time_base_is_split() -> None:
    settings = WidebandSettings()
    offsets = np.arange(600) / 12_000.0
    direct = wideband_baseband(settings, 5, BASE_NS, offsets)
    shifted = wideband_baseband(settings, 5, BASE_NS - 123_456_789, offsets + 0.123456789)
    np.testing.assert_allclose(shifted, direct, atol=1e-6)


def test_wideband_bursts_switch_off_for_the_rest_of_the_period() -> None:
    settings = WidebandSettings(burst_period_s=0.5, duty_cycle=0.5)
    start_ns = 1_700_000_000 * 1_000_000_000  # a whole second: a burst starts here
    offsets = np.arange(6000) / 12_000.0
    power = np.abs(wideband_baseband(settings, 2, start_ns, offsets)) ** 2
    keyed = power[120:2880].mean()  # inside the first 0.25 s, away from the edges
    unkeyed = power[3120:5880].mean()
    assert keyed == pytest.approx(1.0, rel=0.15)
    assert unkeyed < 1e-4


def test_nfm_has_constant_envelope_and_the_configured_peak_deviation() -> None:
    sample_rate_hz = 96_000.0
    offsets = np.arange(int(2 * sample_rate_hz)) / sample_rate_hz
    samples = nfm_baseband(2500.0, 11, BASE_NS, offsets)
    np.testing.assert_allclose(np.abs(samples), 1.0, atol=1e-12)
    instantaneous_hz = np.diff(np.unwrap(np.angle(samples))) * sample_rate_hz / (2 * np.pi)
    assert np.max(np.abs(instantaneous_hz)) <= 2500.0 * 1.01
    # The instantaneous frequency follows deviation * message (the FM definition).
    time_in_period = (BASE_NS % 10_000_000_000) / 1e9 + offsets[:-1] + 0.5 / sample_rate_hz
    np.testing.assert_allclose(instantaneous_hz, 2500.0 * nfm_message(11, time_in_period), atol=2.5)


def test_nfm_message_peaks_at_one_over_its_whole_period() -> None:
    sample_rate_hz = 48_000.0
    message = nfm_message(7, np.arange(int(10 * sample_rate_hz)) / sample_rate_hz)
    assert np.max(np.abs(message)) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nfm_is_mostly_sidebands_like_voice_at_full_deviation(seed: int) -> None:
    """Speech at 2.5 kHz peak deviation: indices of order 1-3, so the carrier is a minority."""
    sample_rate_hz = 12_000.0
    offsets = np.arange(int(2 * sample_rate_hz)) / sample_rate_hz
    samples = nfm_baseband(2500.0, seed, BASE_NS, offsets)
    carrier_share = np.abs(np.mean(samples)) ** 2  # power left at the carrier frequency
    assert carrier_share < 0.4
    # RMS bandwidth of FM = RMS instantaneous frequency = deviation x RMS of the message.
    power = np.abs(np.fft.fft(samples)) ** 2
    frequencies_hz = np.fft.fftfreq(len(samples), 1 / sample_rate_hz)
    rms_bandwidth_hz = np.sqrt(np.sum(frequencies_hz**2 * power) / np.sum(power))
    time_in_period = (BASE_NS % 10_000_000_000) / 1e9 + offsets
    message_rms = np.sqrt(np.mean(nfm_message(seed, time_in_period) ** 2))
    assert rms_bandwidth_hz == pytest.approx(2500.0 * message_rms, rel=0.05)
    assert 400.0 < rms_bandwidth_hz < 900.0


def test_nfm_message_is_voice_band() -> None:
    sample_rate_hz = 16_000.0
    message = nfm_message(4, np.arange(int(10 * sample_rate_hz)) / sample_rate_hz)
    spectrum = np.abs(np.fft.rfft(message)) ** 2
    frequencies = np.fft.rfftfreq(len(message), 1 / sample_rate_hz)
    in_voice_band = (frequencies >= 290) & (frequencies <= 3010)
    assert spectrum[in_voice_band].sum() / spectrum.sum() > 0.999
