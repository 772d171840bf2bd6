import numpy as np
import pytest

from heimdall.dsp.measurement import mean_instantaneous_frequency_hz, measure
from heimdall.dsp.signals import complex_white_noise, fm_signal, make_capture, tone

from .conftest import (
    NOISE_POWER_FS2,
    SAMPLE_RATE_HZ,
    tone_amplitude_for_snr,
    tone_in_noise,
)

NOISE_FLOOR_DBFS = 10 * np.log10(NOISE_POWER_FS2)


def test_tone_frequency_offset_is_within_1_hz_at_10_db_over_1_s() -> None:
    for seed, offset_hz in enumerate([-4_321.7, -55.5, 0.3, 987.65, 3_333.3]):
        capture = make_capture(tone_in_noise(10.0, offset_hz, 1.0, seed), SAMPLE_RATE_HZ)
        assert abs(measure(capture).frequency_offset_hz - offset_hz) < 1.0


@pytest.mark.parametrize("snr_db", [5.0, 10.0, 20.0, 30.0, 40.0])
def test_tone_snr_noise_floor_and_power_over_1_s(snr_db: float) -> None:
    capture = make_capture(tone_in_noise(snr_db, 1_111.0, 1.0, seed=int(snr_db)), SAMPLE_RATE_HZ)
    result = measure(capture)
    assert result.snr_db == pytest.approx(snr_db, abs=1.0)
    assert result.noise_floor_dbfs == pytest.approx(NOISE_FLOOR_DBFS, abs=0.5)
    assert result.noise_floor_db_per_hz == pytest.approx(
        NOISE_FLOOR_DBFS - 10 * np.log10(SAMPLE_RATE_HZ), abs=0.5
    )
    expected_power_dbfs = 20 * np.log10(tone_amplitude_for_snr(snr_db))
    assert result.signal_power_dbfs == pytest.approx(expected_power_dbfs, abs=1.0)
    assert result.signal_detected
    assert result.is_spectral_line


@pytest.mark.parametrize(("snr_db", "max_error_db"), [(-5.0, 1.5), (0.0, 1.0)])
def test_weak_tone_snr_over_5_s(snr_db: float, max_error_db: float) -> None:
    # The power of a tone at -5 dB in a 141 Hz band cannot be estimated to better
    # than sqrt(2 / (snr * duration * band)): 0.9 dB (1 sigma) over 1 s, 0.4 dB
    # over 5 s. Several seeds check the bias (mean) and the spread.
    errors_db = [
        measure(make_capture(tone_in_noise(snr_db, -2_500.0, 5.0, seed), SAMPLE_RATE_HZ)).snr_db
        - snr_db
        for seed in range(6)
    ]
    assert abs(float(np.mean(errors_db))) < 0.5
    assert max(abs(error) for error in errors_db) < max_error_db


def test_noise_only_is_not_detected_and_reports_the_floor() -> None:
    noise = complex_white_noise(NOISE_POWER_FS2, 60_000, np.random.default_rng(11))
    result = measure(make_capture(noise, SAMPLE_RATE_HZ))
    assert not result.signal_detected
    assert result.noise_floor_dbfs == pytest.approx(NOISE_FLOOR_DBFS, abs=0.2)
    assert result.total_power_dbfs == pytest.approx(NOISE_FLOOR_DBFS, abs=0.1)
    assert result.snr_db < 3.0


def test_full_scale_complex_exponential_is_0_dbfs() -> None:
    result = measure(make_capture(tone(500.0, SAMPLE_RATE_HZ, 12_000), SAMPLE_RATE_HZ))
    assert result.total_power_dbfs == pytest.approx(0.0, abs=1e-3)
    assert result.signal_power_dbfs == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize(
    ("deviation_hz", "modulation_hz", "carrier_offset_hz"),
    [(1_000.0, 1_000.0, -700.0), (1_500.0, 800.0, 1_250.0), (600.0, 500.0, 0.0)],
)
def test_narrowband_fm_offset_and_carson_bandwidth(
    deviation_hz: float, modulation_hz: float, carrier_offset_hz: float
) -> None:
    rng = np.random.default_rng(int(deviation_hz))
    sample_count = 60_000
    message = np.sin(2 * np.pi * modulation_hz * np.arange(sample_count) / SAMPLE_RATE_HZ)
    fm = fm_signal(
        message,
        SAMPLE_RATE_HZ,
        deviation_hz=deviation_hz,
        carrier_offset_hz=carrier_offset_hz,
        amplitude=0.3,
    ) + complex_white_noise(NOISE_POWER_FS2, sample_count, rng)
    result = measure(make_capture(fm, SAMPLE_RATE_HZ))
    carson_hz = 2 * (deviation_hz + modulation_hz)
    assert not result.is_spectral_line
    assert abs(result.frequency_offset_hz - carrier_offset_hz) < 5.0
    assert result.occupied_bandwidth_hz == pytest.approx(carson_hz, rel=0.10)
    # The whole FM power is signal: amplitude 0.3 -> -10.5 dBFS.
    assert result.signal_power_dbfs == pytest.approx(20 * np.log10(0.3), abs=0.3)


def test_mean_instantaneous_frequency_ignores_white_noise() -> None:
    rng = np.random.default_rng(4)
    message = np.sin(2 * np.pi * 300.0 * np.arange(24_000) / SAMPLE_RATE_HZ)
    fm = fm_signal(message, SAMPLE_RATE_HZ, deviation_hz=1_200.0, carrier_offset_hz=-321.0)
    noisy = fm + complex_white_noise(0.1, 24_000, rng)  # 10 dB below the FM
    noise_density = 0.1 / SAMPLE_RATE_HZ
    offset_hz = mean_instantaneous_frequency_hz(
        noisy, SAMPLE_RATE_HZ, band_hz=(-2_500.0, 2_000.0), noise_floor_fs2_per_hz=noise_density
    )
    assert abs(offset_hz + 321.0) < 5.0


def test_dbm_from_calibration_offset() -> None:
    capture = make_capture(tone_in_noise(20.0, 0.0, 1.0, seed=5), SAMPLE_RATE_HZ)
    result = measure(capture, calibration_offset_db=-97.0)
    assert result.power_dbm == pytest.approx(result.signal_power_dbfs - 97.0, abs=1e-3)
    assert result.noise_floor_dbm == pytest.approx(result.noise_floor_dbfs - 97.0, abs=1e-3)


def test_dbm_from_rssi_is_anchored_on_the_total_power() -> None:
    # The S-meter reads the total passband power: total_power_dbm = mean RSSI.
    iq = tone_in_noise(20.0, 0.0, 1.0, seed=6)
    result = measure(make_capture(iq, SAMPLE_RATE_HZ, rssi_dbm=-80.0))
    assert result.dbfs_to_dbm_offset_db == pytest.approx(-80.0 - result.total_power_dbfs, abs=1e-4)
    assert result.power_dbm == pytest.approx(
        -80.0 - (result.total_power_dbfs - result.signal_power_dbfs), abs=1e-3
    )


def test_without_rssi_or_calibration_there_is_no_dbm() -> None:
    result = measure(make_capture(tone_in_noise(20.0, 0.0, 1.0, seed=7), SAMPLE_RATE_HZ))
    assert result.power_dbm is None
    assert result.noise_floor_dbm is None


def test_too_short_capture_is_rejected() -> None:
    with pytest.raises(ValueError, match="too short"):
        measure(make_capture(tone(0.0, SAMPLE_RATE_HZ, 500), SAMPLE_RATE_HZ))
