"""Analytic test signals with known answers (for tests, the simulator, benchmarks).

All generators return complex64 at full scale 1.0 and take a seeded
``numpy.random.Generator`` where they need randomness.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy import signal

from heimdall.receivers.capture import (
    GPS_STATUS_NO_GPS,
    SAMPLES_PER_BLOCK,
    AudioCapture,
    IQCapture,
)


def tone(
    frequency_offset_hz: float,
    sample_rate_hz: float,
    sample_count: int,
    *,
    amplitude: float = 1.0,
    phase_rad: float = 0.0,
) -> npt.NDArray[np.complex64]:
    """Complex exponential; power = amplitude**2 (amplitude 1 is 0 dBFS).

    >>> float(np.mean(np.abs(tone(100.0, 12_000.0, 1_000)) ** 2))
    1.0
    """
    n = np.arange(sample_count, dtype=np.float64)
    phase = 2 * np.pi * frequency_offset_hz * n / sample_rate_hz + phase_rad
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def complex_white_noise(
    power_fs2: float, sample_count: int, rng: np.random.Generator
) -> npt.NDArray[np.complex64]:
    """Circular complex Gaussian noise with mean power ``power_fs2`` over the full band.

    Its density is ``power_fs2 / sample_rate_hz`` FS^2/Hz.
    """
    scale = np.sqrt(power_fs2 / 2)
    noise = rng.normal(scale=scale, size=(sample_count, 2))
    return (noise[:, 0] + 1j * noise[:, 1]).astype(np.complex64)


def voice_like_modulation(
    sample_rate_hz: float, sample_count: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Speech-band (300-3000 Hz) noise shaped by a syllable-rate envelope, peak 1."""
    sos = signal.butter(4, [300.0, 3_000.0], btype="bandpass", fs=sample_rate_hz, output="sos")
    band = signal.sosfilt(sos, rng.normal(size=sample_count))
    n = np.arange(sample_count) / sample_rate_hz
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * n) ** 2  # ~4 syllables per second
    message = band * envelope
    return np.asarray(message / np.max(np.abs(message)), dtype=np.float64)


def fm_signal(
    message: npt.NDArray[np.float64],
    sample_rate_hz: float,
    *,
    deviation_hz: float,
    carrier_offset_hz: float = 0.0,
    amplitude: float = 1.0,
) -> npt.NDArray[np.complex64]:
    """Frequency modulation: instantaneous frequency = offset + deviation * message.

    >>> fm = fm_signal(np.zeros(100), 12_000.0, deviation_hz=2_500.0, carrier_offset_hz=50.0)
    >>> round(float(np.angle(fm[1] * np.conj(fm[0])) * 12_000.0 / (2 * np.pi)), 3)
    50.0
    """
    frequency_hz = carrier_offset_hz + deviation_hz * np.asarray(message, dtype=np.float64)
    phase = 2 * np.pi * np.cumsum(frequency_hz) / sample_rate_hz
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def broadband_burst(
    sample_count: int, rng: np.random.Generator, *, bandwidth_fraction: float = 0.8
) -> npt.NDArray[np.complex64]:
    """Noise-like signal of unit power occupying ``bandwidth_fraction`` of the band."""
    spectrum = np.zeros(sample_count, dtype=np.complex128)
    bins = scipy.fft.fftfreq(sample_count)
    occupied = np.abs(bins) < bandwidth_fraction / 2
    spectrum[occupied] = rng.normal(size=occupied.sum()) + 1j * rng.normal(size=occupied.sum())
    burst = scipy.fft.ifft(spectrum)
    return (burst / np.sqrt(np.mean(np.abs(burst) ** 2))).astype(np.complex64)


def fractional_delay(
    samples: npt.NDArray[np.complex64], delay_samples: float
) -> npt.NDArray[np.complex64]:
    """Delay by a possibly fractional number of samples (FFT phase ramp, circular).

    Circular: pass a signal longer than needed and crop both ends to avoid wrap.

    >>> x = np.zeros(8, dtype=np.complex64); x[2] = 1
    >>> int(np.argmax(np.abs(fractional_delay(x, 3.0))))
    5
    """
    frequency_cycles = scipy.fft.fftfreq(len(samples))
    ramp = np.exp(-2j * np.pi * frequency_cycles * delay_samples)
    return scipy.fft.ifft(scipy.fft.fft(samples) * ramp).astype(np.complex64)


def make_capture(
    samples: npt.NDArray[np.complex64],
    sample_rate_hz: float,
    *,
    station_id: str = "test",
    center_frequency_hz: float = 145_500_000.0,
    start_time_ns: int = 1_700_000_000 * 10**9,
    rssi_dbm: float | None = None,
    gps: bool = True,
) -> IQCapture:
    """Wrap samples as an IQCapture with KiwiSDR-like 512-sample blocks and timestamps.

    Without ``rssi_dbm`` the per-block RSSI is NaN: the receiver gave no reading.
    """
    block_start_index = np.arange(0, len(samples), SAMPLES_PER_BLOCK, dtype=np.int64)
    block_time_ns = start_time_ns + np.round(block_start_index * 1e9 / sample_rate_hz).astype(
        np.int64
    )
    status = 0 if gps else GPS_STATUS_NO_GPS
    rssi = np.full(len(block_start_index), np.nan if rssi_dbm is None else rssi_dbm, np.float32)
    return IQCapture(
        station_id=station_id,
        center_frequency_hz=center_frequency_hz,
        sample_rate_hz=sample_rate_hz,
        samples=samples.astype(np.complex64, copy=False),
        block_start_index=block_start_index,
        block_time_ns=block_time_ns,
        block_gps_status=np.full(len(block_start_index), status, dtype=np.uint8),
        rssi_dbm=rssi,
        start_time=datetime.fromtimestamp(start_time_ns / 1e9, tz=UTC),
        driver="synthetic",
        driver_version="0",
    )


def make_audio_capture(
    *,
    tone_offset_hz: float,
    tone_amplitude: float = 0.01,
    noise_power_fs2: float = 1e-4,
    smeter_power: float = 1e-6,
    center_frequency_hz: float = 145_500_000.0,
    fft_center_frequency_hz: float = 145_000_000.0,
    fft_sample_rate_hz: float = 2_400_000.0,
    fft_size: int = 4096,
    frames: int = 20,
    audio_rate_hz: float = 12_000.0,
    duration_s: float = 2.0,
    tone_audio_hz: float = 3_000.0,
    seed: int = 0,
) -> AudioCapture:
    """An OpenWebRX-like capture of one carrier ``tone_offset_hz`` from ``center_frequency_hz``.

    Spectrum frames are Hann periodograms (dB, 0 dB = full-scale tone) of the
    carrier in white noise over the band; the audio is USB with the frequency
    measured at ``tone_audio_hz``, so the carrier is a tone at
    ``tone_audio_hz + tone_offset_hz``; the S-meter reads ``smeter_power`` throughout.
    """
    rng = np.random.default_rng(seed)
    window = signal.get_window("hann", fft_size)
    line_hz = center_frequency_hz + tone_offset_hz - fft_center_frequency_hz
    frames_db = np.empty((frames, fft_size), dtype=np.float32)
    for frame in range(frames):
        iq = tone(line_hz, fft_sample_rate_hz, fft_size, amplitude=tone_amplitude, phase_rad=frame)
        iq = iq + complex_white_noise(noise_power_fs2, fft_size, rng)
        spectrum = scipy.fft.fftshift(scipy.fft.fft(iq * window))
        power = np.abs(spectrum) ** 2 / np.sum(window) ** 2
        frames_db[frame] = 10 * np.log10(np.maximum(power, 1e-20))
    audio_count = round(duration_s * audio_rate_hz)
    t = np.arange(audio_count) / audio_rate_hz
    audio = 0.3 * np.cos(2 * np.pi * (tone_audio_hz + tone_offset_hz) * t)
    audio += rng.normal(0.0, 0.01, audio_count)
    chunks = np.arange(0, audio_count, 1024, dtype=np.int64)
    start_ns = 1_700_000_000 * 10**9
    arrivals = start_ns + np.round((chunks + 1024) * 1e9 / audio_rate_hz).astype(np.int64)
    readings = max(1, round(duration_s * 6))
    return AudioCapture(
        station_id="test",
        center_frequency_hz=center_frequency_hz,
        dial_frequency_hz=center_frequency_hz - tone_audio_hz,
        demodulator="usb",
        passband_hz=(300.0, 5_700.0),
        sample_rate_hz=audio_rate_hz,
        samples=audio.astype(np.float32),
        chunk_start_index=chunks,
        chunk_arrival_ns=arrivals,
        fft_db=frames_db,
        fft_arrival_ns=start_ns + np.arange(frames, dtype=np.int64) * 111_111_111,
        fft_center_frequency_hz=fft_center_frequency_hz,
        fft_sample_rate_hz=fft_sample_rate_hz,
        smeter_power=np.full(readings, smeter_power, dtype=np.float64),
        smeter_arrival_ns=start_ns + np.arange(readings, dtype=np.int64) * 170_000_000,
        start_time=datetime.fromtimestamp(start_ns / 1e9, tz=UTC),
        driver="synthetic",
        driver_version="0",
    )
