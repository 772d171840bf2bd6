"""Measurements of an audio capture (OpenWebRX): power, SNR and frequency offset without IQ.

What each series gives:

* The **spectrum frames** (the receiver's FFT of its whole band, in its own dB
  scale) are averaged in power and cut to ``SPECTRUM_HALF_SPAN_BINS`` bins each
  side of the frequency measured. That window is an ordinary
  :class:`~heimdall.dsp.spectrum.PowerSpectrum` (one frame = one segment, so
  ``2 x frames`` degrees of freedom), and the IQ path's detector finds the
  signal's band, its noise-subtracted power and the noise density N0 there:
  the SNR (signal power / N0 x occupied bandwidth, as for IQ) and the coarse
  frequency offset come from it, in the spectrum's own unit, which cancels.
* The **S-meter** is the receiver's only power reading: the mean power in the
  demodulator's passband, linear, in its own uncalibrated unit. Its average
  (a power average) is ``total_power_dbfs``. The spectrum says which part of that
  is signal: with ``S_pb`` the signal power and ``N0 B`` the noise inside the
  passband, the signal's whole power in S-meter units is
  ``S-meter x S / (S_pb + N0 B)``: ``signal_power_dbfs``. Nothing here converts
  to dBm: ``power_dbm`` stays ``None`` and the calibration's per-receiver terms
  (``full_scale_dbm``, ``gain_offsets_db``) correct the reading at localization
  time, so a better calibration later improves old acquisitions too.
* The **audio** refines a spectral line: in USB the line is a tone at
  ``f - dial``, and a tone's frequency in seconds of audio is known to a
  fraction of a hertz, where a spectrum bin is hundreds of hertz wide.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from heimdall.dsp.detection import detect_signal_band
from heimdall.dsp.measurement import (
    MIN_REPORTED_SNR_DB,
    Measurement,
    mean_instantaneous_frequency_hz,
    tone_frequency_offset_hz,
)
from heimdall.dsp.spectrum import PowerSpectrum
from heimdall.receivers.capture import AudioCapture

#: Bins each side of the frequency measured that the detector sees: 64 bins are
#: 37.5 kHz at 586 Hz a bin, room for a 12.5 kHz channel and its noise around it.
SPECTRUM_HALF_SPAN_BINS = 64
#: The audio refines the spectrum's line only within this many bins of its peak.
AUDIO_SEARCH_BINS = 1.5
#: Demodulators in which a line becomes a tone at (RF - dial).
TONE_DEMODULATORS = frozenset({"usb"})
#: A modulated signal is located in the audio only when this much of its band is audible.
MIN_BAND_IN_PASSBAND = 0.8
#: Shortest audio searched for a tone (about 40 ms at 12 kHz).
MIN_AUDIO_SAMPLES = 512


def averaged_spectrum(capture: AudioCapture) -> PowerSpectrum:
    """The power-averaged spectrum frames around the measured frequency, offsets from it.

    PSD values are in the receiver's spectrum unit per Hz: only ratios are used.

    >>> from heimdall.dsp.signals import make_audio_capture
    >>> spectrum = averaged_spectrum(make_audio_capture(tone_offset_hz=1_000.0))
    >>> len(spectrum.psd_fs2_per_hz), spectrum.segment_count, spectrum.bin_width_hz
    (129, 20, 585.9375)
    """
    if capture.fft_db.shape[0] == 0:
        raise ValueError("the capture has no spectrum frame")
    bins = capture.fft_db.shape[1]
    bin_width_hz = capture.fft_bin_width_hz
    power = np.mean(10.0 ** (capture.fft_db.astype(np.float64) / 10.0), axis=0)
    # fft-shifted frames: bin bins/2 is the centre frequency.
    centre_bin = bins // 2 + (capture.center_frequency_hz - capture.fft_center_frequency_hz) / (
        bin_width_hz
    )
    nearest = round(centre_bin)
    first = max(0, nearest - SPECTRUM_HALF_SPAN_BINS)
    stop = min(bins, nearest + SPECTRUM_HALF_SPAN_BINS + 1)
    if stop - first < 16:
        raise ValueError(
            f"{capture.center_frequency_hz / 1e6:.4f} MHz is outside the spectrum frames "
            f"({capture.fft_center_frequency_hz / 1e6:.4f} MHz +- "
            f"{capture.fft_sample_rate_hz / 2e6:.3f} MHz)"
        )
    offsets_hz = (np.arange(first, stop) - centre_bin) * bin_width_hz
    frames = capture.fft_db.shape[0]
    return PowerSpectrum(
        frequency_offset_hz=offsets_hz.astype(np.float32),
        psd_fs2_per_hz=(power[first:stop] / bin_width_hz).astype(np.float32),
        sample_rate_hz=bin_width_hz * (stop - first),
        segment_length=stop - first,
        segment_count=frames,
        # Independent periodograms: two degrees of freedom each.
        degrees_of_freedom=2.0 * frames,
        center_frequency_hz=capture.center_frequency_hz,
    )


def _peak_offset_hz(spectrum: PowerSpectrum, peak_bin: int) -> float:
    """Sub-bin peak: a parabola through the log power of the peak and its neighbours."""
    psd = spectrum.psd_fs2_per_hz.astype(np.float64)
    if not 0 < peak_bin < len(psd) - 1:
        return float(spectrum.frequency_offset_hz[peak_bin])
    left, centre, right = np.log(np.maximum(psd[peak_bin - 1 : peak_bin + 2], 1e-300))
    curvature = left - 2 * centre + right
    delta = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return float(spectrum.frequency_offset_hz[peak_bin] + delta * spectrum.bin_width_hz)


def _centroid_offset_hz(spectrum: PowerSpectrum, start: int, stop: int, noise: float) -> float:
    excess = np.maximum(spectrum.psd_fs2_per_hz[start:stop].astype(np.float64) - noise, 0.0)
    if excess.sum() <= 0:
        return float(np.mean(spectrum.frequency_offset_hz[start:stop]))
    return float(np.average(spectrum.frequency_offset_hz[start:stop], weights=excess))


def refine_line_from_audio(
    audio: npt.NDArray[np.float32],
    sample_rate_hz: float,
    *,
    expected_tone_hz: float,
    search_half_width_hz: float,
    passband_hz: tuple[float, float],
) -> float | None:
    """The tone's audio frequency near ``expected_tone_hz``, or None if it cannot be searched.

    >>> n = np.arange(24_000)
    >>> audio = (0.3 * np.cos(2 * np.pi * 3_123.4 * n / 12_000.0)).astype(np.float32)
    >>> round(refine_line_from_audio(audio, 12_000.0, expected_tone_hz=3_000.0,
    ...     search_half_width_hz=800.0, passband_hz=(300.0, 5_700.0)), 1)
    3123.4
    """
    low_hz = max(expected_tone_hz - search_half_width_hz, passband_hz[0])
    high_hz = min(expected_tone_hz + search_half_width_hz, passband_hz[1])
    if len(audio) < MIN_AUDIO_SAMPLES or not low_hz < high_hz or not np.all(np.isfinite(audio)):
        return None
    # A real tone at a has lines at +-a; searching the positive band finds +a.
    return tone_frequency_offset_hz(
        audio.astype(np.complex64), sample_rate_hz, band_hz=(low_hz, high_hz)
    )


def refine_band_from_audio(
    capture: AudioCapture, band_offsets_hz: tuple[float, float]
) -> float | None:
    """Power-weighted mean frequency of a modulated signal, offset from the frequency measured.

    Read from the audio over the band (offsets from the measured frequency) cut to
    the demodulator's passband, when at least ``MIN_BAND_IN_PASSBAND`` of the band
    lies inside it: the audio resolves what the spectrum frames' wide bins cannot.
    A band the passband clips a little is pulled towards the passband's centre by a
    fraction of what is cut (tens of Hz for a 5 kHz band off by 100 Hz). None when
    too little of the band is in the passband.

    >>> import dataclasses
    >>> from heimdall.dsp.signals import make_audio_capture
    >>> bins = np.arange(12_001)  # rfft of 24 000 samples at 12 kHz: 0.5 Hz a bin
    >>> flat = (bins >= 5_600) & (bins <= 7_200)  # 2.8-3.6 kHz of audio: +200 Hz centre
    >>> phases = np.exp(2j * np.pi * np.random.default_rng(3).random(bins.size))
    >>> audio = np.fft.irfft(flat * phases, 24_000)
    >>> capture = dataclasses.replace(make_audio_capture(tone_offset_hz=0.0),
    ...     samples=(0.2 * audio / audio.std()).astype(np.float32))
    >>> abs(refine_band_from_audio(capture, (-400.0, 800.0)) - 200.0) < 10.0
    True
    """
    to_audio_hz = capture.center_frequency_hz - capture.dial_frequency_hz
    band_low_hz = band_offsets_hz[0] + to_audio_hz
    band_high_hz = band_offsets_hz[1] + to_audio_hz
    low_hz = max(band_low_hz, capture.passband_hz[0])
    high_hz = min(band_high_hz, capture.passband_hz[1])
    inside = (high_hz - low_hz) >= MIN_BAND_IN_PASSBAND * (band_high_hz - band_low_hz)
    if not inside or len(capture.samples) < MIN_AUDIO_SAMPLES:
        return None
    centroid_hz = mean_instantaneous_frequency_hz(
        capture.samples.astype(np.complex64), capture.sample_rate_hz, band_hz=(low_hz, high_hz)
    )
    return centroid_hz - to_audio_hz


def measure_audio(capture: AudioCapture) -> Measurement:
    """Power (S-meter units), SNR, noise and frequency offset of an audio capture.

    >>> from heimdall.dsp.signals import make_audio_capture
    >>> m = measure_audio(make_audio_capture(tone_offset_hz=123.4, smeter_power=2e-6))
    >>> round(m.frequency_offset_hz, 1), m.is_spectral_line, m.power_dbm
    (123.4, True, None)
    >>> round(m.total_power_dbfs, 1), bool(m.snr_db > 20), bool(m.signal_power_dbfs < -57.0)
    (-57.0, True, True)
    """
    if len(capture.smeter_power) == 0:
        raise ValueError("the capture has no S-meter reading")
    spectrum = averaged_spectrum(capture)
    band = detect_signal_band(spectrum)
    noise_density = band.noise_floor_fs2_per_hz
    noise_in_band = noise_density * band.occupied_bandwidth_hz
    signal_power = max(band.signal_power_fs2, noise_in_band * 10 ** (MIN_REPORTED_SNR_DB / 10))

    # Signal and noise inside the demodulator's passband, in the spectrum's unit.
    low_hz = capture.dial_frequency_hz - capture.center_frequency_hz + capture.passband_hz[0]
    high_hz = capture.dial_frequency_hz - capture.center_frequency_hz + capture.passband_hz[1]
    offsets_hz = spectrum.frequency_offset_hz.astype(np.float64)
    in_passband = (offsets_hz >= low_hz) & (offsets_hz <= high_hz)
    excess = np.maximum(spectrum.psd_fs2_per_hz.astype(np.float64) - noise_density, 0.0)
    signal_in_passband = float(np.sum(excess[in_passband]) * spectrum.bin_width_hz)
    noise_in_passband = noise_density * (high_hz - low_hz)
    smeter = float(np.mean(capture.smeter_power))
    if smeter <= 0:
        raise ValueError("the S-meter read zero power throughout")
    # S-meter units per spectrum unit, from what both saw in the passband.
    scale = smeter / (signal_in_passband + noise_in_passband)

    if band.is_spectral_line:
        peak = int(np.argmax(spectrum.psd_fs2_per_hz[band.bin_start : band.bin_stop]))
        offset_hz = _peak_offset_hz(spectrum, band.bin_start + peak)
        if capture.demodulator in TONE_DEMODULATORS:
            tone_hz = refine_line_from_audio(
                capture.samples,
                capture.sample_rate_hz,
                expected_tone_hz=capture.center_frequency_hz
                + offset_hz
                - capture.dial_frequency_hz,
                search_half_width_hz=AUDIO_SEARCH_BINS * spectrum.bin_width_hz,
                passband_hz=capture.passband_hz,
            )
            if tone_hz is not None:
                offset_hz = capture.dial_frequency_hz + tone_hz - capture.center_frequency_hz
    else:
        offset_hz = _centroid_offset_hz(spectrum, band.bin_start, band.bin_stop, noise_density)
        if capture.demodulator in TONE_DEMODULATORS:
            refined_hz = refine_band_from_audio(capture, (band.low_offset_hz, band.high_offset_hz))
            offset_hz = offset_hz if refined_hz is None else refined_hz

    return Measurement(
        snr_db=_db(signal_power / noise_in_band),
        signal_power_dbfs=_db(signal_power * scale),
        total_power_dbfs=_db(smeter),
        noise_floor_dbfs=_db(noise_in_passband * scale),
        noise_floor_db_per_hz=_db(noise_density * scale),
        power_dbm=None,
        noise_floor_dbm=None,
        dbfs_to_dbm_offset_db=None,
        frequency_offset_hz=float(np.float32(offset_hz)),
        occupied_bandwidth_hz=float(np.float32(band.occupied_bandwidth_hz)),
        signal_detected=band.detected,
        is_spectral_line=band.is_spectral_line,
        spectrum=spectrum,
    )


def _db(power: float) -> float:
    return float(np.float32(10.0 * np.log10(max(power, 1e-300))))
