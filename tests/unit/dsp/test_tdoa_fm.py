"""tdoa_lag on FM voice-like signals: the carrier is notched out before correlating."""

import numpy as np
import numpy.typing as npt
import pytest
from scipy.special import j0

from heimdall.dsp.signals import broadband_burst, complex_white_noise, make_capture, tone
from heimdall.dsp.tdoa import cross_correlation_lag, tdoa_lag
from heimdall.simulator.waveforms import nfm_baseband

from .conftest import SAMPLE_RATE_HZ

EPOCH_NS = 1_700_000_000 * 10**9
# Three-tone FM: (tone Hz, modulation index). Too periodic for an unambiguous lag, but
# its spectrum is known in closed form (Bessel functions).
FM_TONES = ((410.0, 2.2), (930.0, 1.6), (1_730.0, 0.8))


def fm_tones(
    times_s: npt.NDArray[np.float64],
    tones: tuple[tuple[float, float], ...],
    carrier_hz: float,
) -> npt.NDArray[np.complex64]:
    """exp(j [2 pi f_c t + sum beta_i sin(2 pi f_i t)]): FM, exact at any instant."""
    phase_rad = 2 * np.pi * carrier_hz * times_s
    for frequency_hz, index in tones:
        phase_rad = phase_rad + index * np.sin(2 * np.pi * frequency_hz * times_s)
    return np.exp(1j * phase_rad).astype(np.complex64)


def fm_pair(
    tones: tuple[tuple[float, float], ...], delay_samples: float, offset_hz: float, snr_db: float
) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]]:
    rng = np.random.default_rng(round(1_000 * delay_samples) % 2**32)
    times_s = np.arange(24_000) / SAMPLE_RATE_HZ
    noise_power = 10 ** (-snr_db / 10)
    a = fm_tones(times_s, tones, 150.0) + complex_white_noise(noise_power, len(times_s), rng)
    delayed_s = times_s - delay_samples / SAMPLE_RATE_HZ
    b = fm_tones(delayed_s, tones, 150.0 + offset_hz)
    return a, b + complex_white_noise(noise_power, len(times_s), rng)


def voice_fm_pair(
    deviation_hz: float, delay_samples: float, offset_hz: float, snr_db: float
) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]]:
    """The simulator's voice-like NFM (exact at any instant) heard by two receivers."""
    rng = np.random.default_rng(round(1_000 * abs(delay_samples)))
    offsets_s = np.arange(24_000) / SAMPLE_RATE_HZ
    noise_power = 10 ** (-snr_db / 10)
    a = nfm_baseband(deviation_hz, 3, EPOCH_NS, offsets_s)
    b = nfm_baseband(deviation_hz, 3, EPOCH_NS, offsets_s - delay_samples / SAMPLE_RATE_HZ)
    b = b * np.exp(2j * np.pi * offset_hz * offsets_s)
    return (
        (a + complex_white_noise(noise_power, len(a), rng)).astype(np.complex64),
        (b + complex_white_noise(noise_power, len(b), rng)).astype(np.complex64),
    )


@pytest.mark.parametrize("delay_samples", [0.37, -2.6, 5.05])
def test_voice_fm_delay_with_lo_offset_is_found_with_good_quality(delay_samples: float) -> None:
    # Speech at the full 2.5 kHz deviation (indices 2-3 on its syllables).
    a, b = voice_fm_pair(2_500.0, delay_samples, offset_hz=-13.7, snr_db=20.0)
    result = tdoa_lag(
        make_capture(a, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
        make_capture(b, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
        max_lag_s=10 / SAMPLE_RATE_HZ,
    )
    assert result.lag_samples == pytest.approx(delay_samples, abs=0.05)
    assert result.frequency_offset_hz == pytest.approx(-13.7, abs=0.5)
    assert result.is_reliable


def test_the_carrier_pedestal_is_what_hid_the_peak() -> None:
    # The same pair correlated without the notch: its ~20 % carrier is a flat pedestal
    # under the peak, and the quality falls below the threshold.
    a, b = voice_fm_pair(2_500.0, 2.2, offset_hz=0.0, snr_db=20.0)
    plain = cross_correlation_lag(a, b, SAMPLE_RATE_HZ, 10)
    notched = cross_correlation_lag(a, b, SAMPLE_RATE_HZ, 10, carrier_notch_hz=30.0)
    assert not plain.is_reliable
    assert notched.is_reliable
    assert notched.lag_samples == pytest.approx(2.2, abs=0.05)


def test_fm_rms_bandwidth_is_that_of_its_sidebands() -> None:
    # Without the carrier, the RMS bandwidth of FM is the RMS instantaneous frequency
    # over the sidebands' share of the power: sum (beta f)^2 / 2 / (1 - carrier share).
    a, b = fm_pair(FM_TONES, 1.4, offset_hz=8.0, snr_db=10.0)
    result = tdoa_lag(
        make_capture(a, SAMPLE_RATE_HZ), make_capture(b, SAMPLE_RATE_HZ), max_lag_s=1e-3
    )
    carrier_share = float(np.prod([j0(index) ** 2 for _, index in FM_TONES]))
    mean_square_hz2 = sum((index * frequency_hz) ** 2 / 2 for frequency_hz, index in FM_TONES)
    expected_hz = np.sqrt(mean_square_hz2 / (1 - carrier_share))
    assert result.rms_bandwidth_hz == pytest.approx(expected_hz, rel=0.05)


def test_pure_carrier_leaves_only_noise_after_the_notch() -> None:
    rng = np.random.default_rng(21)
    x = tone(-512.3, SAMPLE_RATE_HZ, 24_000) + complex_white_noise(1e-3, 24_000, rng)
    y = tone(-512.3, SAMPLE_RATE_HZ, 24_000, phase_rad=1.0) + complex_white_noise(1e-3, 24_000, rng)
    result = cross_correlation_lag(x, y, SAMPLE_RATE_HZ, 10, carrier_notch_hz=30.0)
    # The 30 dB carrier and its leakage are gone: independent noise does not correlate.
    assert result.peak_correlation < 0.05
    assert not result.is_reliable


def test_broadband_rms_bandwidth_is_that_of_a_flat_band() -> None:
    rng = np.random.default_rng(6)
    burst = broadband_burst(24_000, rng, bandwidth_fraction=0.5)
    noisy = burst + complex_white_noise(0.1, 24_000, rng)
    result = cross_correlation_lag(burst, noisy, SAMPLE_RATE_HZ, 5, carrier_notch_hz=30.0)
    # A flat band of width B has B / sqrt(12); the noise outside it must not count.
    assert result.rms_bandwidth_hz == pytest.approx(0.5 * SAMPLE_RATE_HZ / np.sqrt(12), rel=0.02)
