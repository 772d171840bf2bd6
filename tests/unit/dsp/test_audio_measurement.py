"""Measurements of audio captures (OpenWebRX) against known answers."""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest

from heimdall.dsp import audio_measurement
from heimdall.dsp.audio_measurement import averaged_spectrum, measure_audio
from heimdall.dsp.signals import make_audio_capture


def test_docstring_examples() -> None:
    result = doctest.testmod(audio_measurement)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("offset_hz", [-1_234.5, -17.25, 0.0, 444.4, 2_100.0])
def test_a_carrier_offset_is_refined_far_below_a_bin(offset_hz: float) -> None:
    m = measure_audio(make_audio_capture(tone_offset_hz=offset_hz))
    assert m.is_spectral_line and m.signal_detected
    # A spectrum bin is 586 Hz; the audio tone pins it to well under a hertz.
    assert m.frequency_offset_hz == pytest.approx(offset_hz, abs=0.5)


def test_a_carrier_outside_the_passband_keeps_the_spectrum_estimate() -> None:
    m = measure_audio(make_audio_capture(tone_offset_hz=8_000.0))
    assert m.frequency_offset_hz == pytest.approx(8_000.0, abs=0.3 * 585.9375)


def test_power_is_the_s_meter_share_of_the_signal() -> None:
    """Carrier A^2 over noise N: the S-meter's passband holds A^2 + N B / fs; signal = share."""
    amplitude, noise_fs2, smeter = 0.01, 1e-4, 3e-7
    capture = make_audio_capture(
        tone_offset_hz=100.0,
        tone_amplitude=amplitude,
        noise_power_fs2=noise_fs2,
        smeter_power=smeter,
    )
    m = measure_audio(capture)
    passband_hz = 5_400.0
    noise_in_passband = noise_fs2 * passband_hz / capture.fft_sample_rate_hz
    expected_share = amplitude**2 / (amplitude**2 + noise_in_passband)
    assert m.total_power_dbfs == pytest.approx(10 * np.log10(smeter), abs=1e-3)
    assert m.signal_power_dbfs == pytest.approx(10 * np.log10(smeter * expected_share), abs=0.5)
    assert m.power_dbm is None and m.dbfs_to_dbm_offset_db is None
    # SNR in the line's resolution bandwidth (1.5 bins of 586 Hz).
    rbw_hz = 1.5 * 585.9375
    expected_snr_db = 10 * np.log10(
        amplitude**2 / (noise_fs2 * rbw_hz / capture.fft_sample_rate_hz)
    )
    assert m.snr_db == pytest.approx(expected_snr_db, abs=1.0)


def test_the_spectrum_window_is_centred_on_the_frequency_measured() -> None:
    spectrum = averaged_spectrum(make_audio_capture(tone_offset_hz=0.0))
    # 145.5 MHz is 853.33 bins above the 145 MHz centre: the nearest bin is 195 Hz below.
    assert int(np.argmin(np.abs(spectrum.frequency_offset_hz))) == 64
    assert spectrum.frequency_offset_hz[64] == pytest.approx(-195.3125)
    assert spectrum.degrees_of_freedom == 40.0


def test_unusable_captures_are_refused_with_a_reason() -> None:
    capture = make_audio_capture(tone_offset_hz=0.0)
    no_smeter = dataclasses.replace(
        capture,
        smeter_power=np.empty(0, np.float64),
        smeter_arrival_ns=np.empty(0, np.int64),
    )
    with pytest.raises(ValueError, match="S-meter"):
        measure_audio(no_smeter)
    elsewhere = dataclasses.replace(capture, center_frequency_hz=433e6)
    with pytest.raises(ValueError, match="outside the spectrum frames"):
        measure_audio(elsewhere)
