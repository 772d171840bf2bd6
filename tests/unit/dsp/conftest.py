"""Known-answer signals for the DSP tests: a tone in white noise at a given SNR."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from heimdall.dsp.signals import complex_white_noise, tone
from heimdall.dsp.spectrum import DEFAULT_SEGMENT_LENGTH

SAMPLE_RATE_HZ = 12_000.0
NOISE_POWER_FS2 = 1e-2  # over the full 12 kHz band: -20 dBFS
NOISE_DENSITY_FS2_PER_HZ = NOISE_POWER_FS2 / SAMPLE_RATE_HZ
#: Hann ENBW (1.5 bins): the occupied bandwidth a spectral line is reported with.
RESOLUTION_BANDWIDTH_HZ = 1.5 * SAMPLE_RATE_HZ / DEFAULT_SEGMENT_LENGTH


def tone_amplitude_for_snr(snr_db: float) -> float:
    """Amplitude whose power is snr_db above the noise in the resolution bandwidth."""
    return float(np.sqrt(10 ** (snr_db / 10) * NOISE_DENSITY_FS2_PER_HZ * RESOLUTION_BANDWIDTH_HZ))


def tone_in_noise(
    snr_db: float, frequency_offset_hz: float, duration_s: float, seed: int
) -> npt.NDArray[np.complex64]:
    rng = np.random.default_rng(seed)
    sample_count = int(duration_s * SAMPLE_RATE_HZ)
    line = tone(
        frequency_offset_hz,
        SAMPLE_RATE_HZ,
        sample_count,
        amplitude=tone_amplitude_for_snr(snr_db),
        phase_rad=float(rng.uniform(0, 2 * np.pi)),
    )
    return line + complex_white_noise(NOISE_POWER_FS2, sample_count, rng)
