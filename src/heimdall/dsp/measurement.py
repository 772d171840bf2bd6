"""Signal measurements of one IQ capture: SNR, power, noise floor, frequency offset.

Definitions (all powers relative to full scale, a complex amplitude of 1.0):

* ``total_power_dbfs``: mean |x|^2 of the capture.
* ``noise_floor_db_per_hz``: noise density N0 in dBFS/Hz; ``noise_floor_dbfs`` is
  that density over the full band, N0 * sample_rate.
* ``signal_power_dbfs``: the power the signal adds above the noise in its region
  of the PSD (noise-subtracted), i.e. the signal's total power.
* ``snr_db``: signal power / (N0 * occupied bandwidth): the SNR in the occupied
  band. A spectral line's occupied bandwidth is the resolution bandwidth (the
  Hann ENBW, 1.5 bins), so a tone's SNR is A^2 / (N0 * RBW), the figure a
  spectrum analyser shows. Reported no lower than ``MIN_REPORTED_SNR_DB``.
* dBm: ``dBm = dBFS + offset``. The offset is ``calibration_offset_db`` when
  given; otherwise, when the receiver reports RSSI, ``mean RSSI (power average)
  - total_power_dbfs``, because the KiwiSDR S-meter measures the total power in
  the passband, the same quantity as ``total_power_dbfs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import scipy.fft

from heimdall.dsp.detection import SignalBand, detect_signal_band
from heimdall.dsp.spectrum import (
    DEFAULT_SEGMENT_LENGTH,
    PowerSpectrum,
    validate_iq,
    validate_sample_rate,
    welch_psd,
)
from heimdall.receivers.capture import IQCapture

MIN_REPORTED_SNR_DB = -30.0
#: Shortest capture measured: a few Welch segments are needed for a noise floor.
MIN_MEASURE_SAMPLES = 8 * DEFAULT_SEGMENT_LENGTH


@lru_cache(maxsize=8)
def _hann(length: int) -> npt.NDArray[np.float32]:
    window = np.hanning(length + 1)[:-1].astype(np.float32)
    window.flags.writeable = False  # shared by the cache
    return window


def _windowed_power_spectrum(
    iq: npt.NDArray[np.complex64],
) -> tuple[npt.NDArray[np.float32], float]:
    """|FFT|^2 of the Hann-windowed capture (unshifted) and the window's sum of squares."""
    window = _hann(len(iq))
    spectrum = scipy.fft.fft(iq * window)
    return spectrum.real**2 + spectrum.imag**2, float(np.sum(window.astype(np.float64) ** 2))


def _band_bins(
    bin_count: int, sample_rate_hz: float, band_hz: tuple[float, float] | None
) -> npt.NDArray[np.intp]:
    frequencies_hz = scipy.fft.fftfreq(bin_count, 1.0 / sample_rate_hz)
    if band_hz is None:
        return np.arange(bin_count)
    selected = np.flatnonzero((frequencies_hz >= band_hz[0]) & (frequencies_hz <= band_hz[1]))
    if selected.size == 0:
        raise ValueError(f"band {band_hz} Hz contains no frequency bin")
    return selected


def _peak_offset_hz(
    power: npt.NDArray[np.float32], sample_rate_hz: float, band_hz: tuple[float, float] | None
) -> float:
    bins = _band_bins(len(power), sample_rate_hz, band_hz)
    peak = int(bins[np.argmax(power[bins])])
    neighbours = power[[(peak - 1) % len(power), peak, (peak + 1) % len(power)]]
    # A Gaussian (parabola on log power) fits the Hann main lobe closely: the
    # vertex is within 0.01 bin of the true frequency.
    left, centre, right = np.log(np.maximum(neighbours.astype(np.float64), 1e-300))
    curvature = left - 2 * centre + right
    delta = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    frequency_hz = (peak + delta) * sample_rate_hz / len(power)
    # Map back to [-fs/2, fs/2).
    return float((frequency_hz + sample_rate_hz / 2) % sample_rate_hz - sample_rate_hz / 2)


def _line_power_fs2(
    iq: npt.NDArray[np.complex64], sample_rate_hz: float, frequency_hz: float, noise_density: float
) -> float:
    """Power of a spectral line from the windowed DTFT at its frequency, noise removed."""
    window = _hann(len(iq))
    # Phase in cycles reduced modulo 1 in float64, so float32 trigonometry stays exact.
    cycles = np.mod(np.arange(len(iq), dtype=np.float64) * (frequency_hz / sample_rate_hz), 1.0)
    phase_rad = (-2 * np.pi * cycles).astype(np.float32)
    oscillator = np.cos(phase_rad) + 1j * np.sin(phase_rad)
    amplitude = complex(np.dot(iq * window, oscillator.astype(np.complex64)))
    window_sum = float(np.sum(window, dtype=np.float64))
    window_energy = float(np.sum(window.astype(np.float64) ** 2))
    noise = noise_density * sample_rate_hz * window_energy
    return (abs(amplitude) ** 2 - noise) / window_sum**2


def _centroid_offset_hz(
    power: npt.NDArray[np.float32],
    sample_rate_hz: float,
    band_hz: tuple[float, float] | None,
    noise_per_bin: float,
) -> float:
    bins = _band_bins(len(power), sample_rate_hz, band_hz)
    weights = power[bins].astype(np.float64) - noise_per_bin
    phasors = np.exp(2j * np.pi * bins / len(power))
    # arg(sum P_k e^{j w_k}) is the lag-1 autocorrelation phase of the band-limited
    # signal, i.e. the power-weighted mean of the phase-difference discriminator.
    return float(np.angle(np.sum(weights * phasors)) * sample_rate_hz / (2 * np.pi))


def tone_frequency_offset_hz(
    samples: npt.ArrayLike,
    sample_rate_hz: float,
    *,
    band_hz: tuple[float, float] | None = None,
) -> float:
    """Frequency of the strongest spectral line, sub-bin (log-parabolic interpolation).

    Resolution is sample_rate / len(samples) per bin before interpolation.
    ``band_hz`` (low, high offsets) limits the search.

    >>> from heimdall.dsp.signals import tone
    >>> abs(tone_frequency_offset_hz(tone(-1234.56, 12_000.0, 12_000), 12_000.0) + 1234.56) < 0.02
    True
    """
    iq = validate_iq(samples, min_samples=3)
    power, _ = _windowed_power_spectrum(iq)
    return _peak_offset_hz(power, validate_sample_rate(sample_rate_hz), band_hz)


def mean_instantaneous_frequency_hz(
    samples: npt.ArrayLike,
    sample_rate_hz: float,
    *,
    band_hz: tuple[float, float] | None = None,
    noise_floor_fs2_per_hz: float = 0.0,
) -> float:
    """Power-weighted mean instantaneous frequency (the centre of an FM signal).

    Computed from the spectrum restricted to ``band_hz``, with the noise density
    subtracted, which equals a phase-difference discriminator on the band-limited
    signal weighted by power, without the noise pulling it towards the band centre.

    >>> from heimdall.dsp.signals import fm_signal
    >>> message = np.sin(2 * np.pi * 400.0 * np.arange(12_000) / 12_000.0)
    >>> fm = fm_signal(message, 12_000.0, deviation_hz=2_000.0, carrier_offset_hz=300.0)
    >>> round(mean_instantaneous_frequency_hz(fm, 12_000.0))
    300
    """
    iq = validate_iq(samples, min_samples=3)
    sample_rate_hz = validate_sample_rate(sample_rate_hz)
    power, window_energy = _windowed_power_spectrum(iq)
    noise_per_bin = noise_floor_fs2_per_hz * sample_rate_hz * window_energy
    return _centroid_offset_hz(power, sample_rate_hz, band_hz, noise_per_bin)


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one receiver saw (see the module docstring for the definitions)."""

    snr_db: float
    signal_power_dbfs: float
    total_power_dbfs: float
    noise_floor_dbfs: float
    noise_floor_db_per_hz: float
    power_dbm: float | None
    noise_floor_dbm: float | None
    dbfs_to_dbm_offset_db: float | None
    frequency_offset_hz: float
    occupied_bandwidth_hz: float
    signal_detected: bool
    is_spectral_line: bool
    spectrum: PowerSpectrum


def _db(power: float) -> float:
    return float(np.float32(10.0 * np.log10(power)))


def dbfs_to_dbm_offset_db(capture: IQCapture, total_power_dbfs: float) -> float | None:
    """dBm - dBFS from the receiver's RSSI (total passband power), None without readings."""
    readings = capture.rssi_dbm[np.isfinite(capture.rssi_dbm)].astype(np.float64)
    if readings.size == 0:
        return None
    mean_rssi_dbm = 10.0 * np.log10(np.mean(10.0 ** (readings / 10.0)))
    return float(mean_rssi_dbm - total_power_dbfs)


def measure(
    capture: IQCapture,
    *,
    calibration_offset_db: float | None = None,
    segment_length: int = DEFAULT_SEGMENT_LENGTH,
) -> Measurement:
    """Measure SNR, powers, noise floor, occupied band and frequency offset of a capture.

    >>> import numpy as np
    >>> from heimdall.dsp.signals import complex_white_noise, make_capture, tone
    >>> rng = np.random.default_rng(7)
    >>> iq = tone(250.0, 12_000.0, 60_000, amplitude=0.1) + complex_white_noise(
    ...     1e-3, 60_000, rng)
    >>> m = measure(make_capture(iq, 12_000.0), calibration_offset_db=-20.0)
    >>> round(m.frequency_offset_hz, 1), round(m.signal_power_dbfs), round(m.power_dbm)
    (250.0, -20, -40)
    >>> round(m.noise_floor_dbfs), round(m.snr_db)  # 1e-3 over 12 kHz; RBW 140.6 Hz
    (-30, 29)
    """
    iq = validate_iq(capture.samples, min_samples=max(MIN_MEASURE_SAMPLES, 8 * segment_length))
    sample_rate_hz = validate_sample_rate(capture.sample_rate_hz)
    spectrum = welch_psd(
        iq,
        sample_rate_hz,
        center_frequency_hz=capture.center_frequency_hz,
        segment_length=segment_length,
    )
    band: SignalBand = detect_signal_band(spectrum)
    noise_density = band.noise_floor_fs2_per_hz
    noise_in_band = noise_density * band.occupied_bandwidth_hz
    signal_power = max(band.signal_power_fs2, noise_in_band * 10 ** (MIN_REPORTED_SNR_DB / 10))

    total_power = float(np.mean(iq.real**2 + iq.imag**2, dtype=np.float64))
    total_power_dbfs = _db(total_power)
    signal_power_dbfs = _db(signal_power)
    noise_floor_dbfs = _db(noise_density * sample_rate_hz)

    # Search one bin beyond the band edges: the band is quantised to Welch bins.
    margin_hz = spectrum.bin_width_hz
    band_hz = (band.low_offset_hz - margin_hz, band.high_offset_hz + margin_hz)
    if band.is_spectral_line:
        full_power, _ = _windowed_power_spectrum(iq)
        offset_hz = _peak_offset_hz(full_power, sample_rate_hz, band_hz)
        # A line's power is measured coherently at its frequency: the noise that
        # competes is then only that in 1/duration Hz, not in the Welch bins.
        signal_power = max(
            _line_power_fs2(iq, sample_rate_hz, offset_hz, noise_density),
            noise_in_band * 10 ** (MIN_REPORTED_SNR_DB / 10),
        )
        signal_power_dbfs = _db(signal_power)
    else:
        # Smoothing by the Welch window scales the lag-1 autocorrelation by a
        # positive factor, so the Welch PSD gives the same power-weighted mean
        # frequency as the full-resolution spectrum, at a fraction of the cost.
        offset_hz = _centroid_offset_hz(
            np.fft.ifftshift(spectrum.psd_fs2_per_hz), sample_rate_hz, band_hz, noise_density
        )

    offset_db = calibration_offset_db
    if offset_db is None:
        offset_db = dbfs_to_dbm_offset_db(capture, total_power_dbfs)
    return Measurement(
        snr_db=_db(signal_power / noise_in_band),
        signal_power_dbfs=signal_power_dbfs,
        total_power_dbfs=total_power_dbfs,
        noise_floor_dbfs=noise_floor_dbfs,
        noise_floor_db_per_hz=_db(noise_density),
        power_dbm=None if offset_db is None else float(np.float32(signal_power_dbfs + offset_db)),
        noise_floor_dbm=None
        if offset_db is None
        else float(np.float32(noise_floor_dbfs + offset_db)),
        dbfs_to_dbm_offset_db=offset_db,
        frequency_offset_hz=float(np.float32(offset_hz)),
        occupied_bandwidth_hz=float(np.float32(band.occupied_bandwidth_hz)),
        signal_detected=band.detected,
        is_spectral_line=band.is_spectral_line,
        spectrum=spectrum,
    )
