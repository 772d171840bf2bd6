"""Where the signal sits in a PSD: detection, occupied band, in-band power."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heimdall.dsp.noise import chi2_detection_factor, noise_floor_fs2_per_hz
from heimdall.dsp.spectrum import PowerSpectrum

#: Half width of the Hann main lobe in bins: a pure tone spreads over peak +- 2 bins.
LINE_HALF_WIDTH_BINS = 2
#: Probability that pure noise produces a detection anywhere in the spectrum.
FALSE_ALARM_PROBABILITY = 1e-3
#: Fraction of the signal power inside the occupied band (ITU-R SM.328 99 %).
OCCUPIED_POWER_FRACTION = 0.99
_NOISE_ITERATIONS = 3


@dataclass(frozen=True, slots=True)
class SignalBand:
    """The strongest signal in a spectrum and the band it occupies.

    Attributes:
        detected: some bin exceeds the noise floor beyond the false-alarm threshold.
        is_spectral_line: narrower than the resolution (a carrier, CW); its occupied
            bandwidth is then the resolution bandwidth (the window's ENBW).
        low_offset_hz, high_offset_hz: edges of the occupied band.
        occupied_bandwidth_hz: high - low (never below the resolution bandwidth).
        peak_offset_hz: centre of the strongest bin.
        signal_power_fs2: power the signal adds over the noise in its region (FS^2).
        noise_floor_fs2_per_hz: the noise density N0 used.
        bin_start, bin_stop: slice of PSD bins holding the signal.
    """

    detected: bool
    is_spectral_line: bool
    low_offset_hz: float
    high_offset_hz: float
    occupied_bandwidth_hz: float
    peak_offset_hz: float
    signal_power_fs2: float
    noise_floor_fs2_per_hz: float
    bin_start: int
    bin_stop: int


def _dilate(mask: npt.NDArray[np.bool_], half_width: int) -> npt.NDArray[np.bool_]:
    kernel = np.ones(2 * half_width + 1)
    return np.convolve(mask.astype(np.float64), kernel, mode="same") > 0.5


def detect_signal_band(
    spectrum: PowerSpectrum,
    *,
    false_alarm_probability: float = FALSE_ALARM_PROBABILITY,
    occupied_fraction: float = OCCUPIED_POWER_FRACTION,
) -> SignalBand:
    """Find the signal, its occupied band (``occupied_fraction`` of its power) and power.

    Bins above N0 times the chi-square threshold are signal; they and their main
    lobe neighbours are excluded from the noise median, which is repeated so a
    wide signal does not raise the floor. The occupied band is cut from the
    cumulative noise-subtracted power of those bins, interpolated inside bins. A
    signal whose power fits one main lobe is a spectral line. When nothing is
    detected the strongest bin is reported as a line (``detected`` False), so an
    SNR can still be given.

    >>> import numpy as np
    >>> from heimdall.dsp.spectrum import welch_psd
    >>> rng = np.random.default_rng(0)
    >>> n = np.arange(60_000)
    >>> noise = 0.01 * (rng.normal(size=n.size) + 1j * rng.normal(size=n.size))
    >>> band = detect_signal_band(welch_psd(np.exp(2j * np.pi * 0.1 * n) + noise, 12_000.0))
    >>> band.detected, band.is_spectral_line, round(band.peak_offset_hz)
    (True, True, 1219)
    """
    psd = spectrum.psd_fs2_per_hz.astype(np.float64)
    bin_count = len(psd)
    threshold_factor = chi2_detection_factor(
        round(spectrum.degrees_of_freedom, 1), false_alarm_probability / bin_count
    )
    region: npt.NDArray[np.bool_] | None = None
    for _ in range(_NOISE_ITERATIONS):
        noise_density = noise_floor_fs2_per_hz(spectrum, region)
        flagged = psd > noise_density * threshold_factor
        region = _dilate(flagged, LINE_HALF_WIDTH_BINS)
    assert region is not None
    detected = bool(flagged.any())
    excess = psd - noise_density
    peak_bin = int(np.argmax(np.where(flagged, psd, -np.inf))) if detected else int(np.argmax(psd))

    is_line = True
    if detected:
        clipped = np.where(region, np.maximum(excess, 0.0), 0.0)
        cumulative = np.concatenate(([0.0], np.cumsum(clipped)))
        cumulative /= cumulative[-1]
        bin_edges = np.arange(bin_count + 1, dtype=np.float64) - 0.5
        tail = (1.0 - occupied_fraction) / 2
        low_bin = float(np.interp(tail, cumulative, bin_edges))
        high_bin = float(np.interp(1.0 - tail, cumulative, bin_edges))
        flagged_bins = np.flatnonzero(flagged)
        within_main_lobe = bool(np.all(np.abs(flagged_bins - peak_bin) <= LINE_HALF_WIDTH_BINS))
        is_line = within_main_lobe or high_bin - low_bin <= 2 * LINE_HALF_WIDTH_BINS

    bin_width_hz = spectrum.bin_width_hz
    offsets_hz = spectrum.frequency_offset_hz.astype(np.float64)
    if is_line:
        bin_start = max(peak_bin - LINE_HALF_WIDTH_BINS, 0)
        bin_stop = min(peak_bin + LINE_HALF_WIDTH_BINS + 1, bin_count)
        signal_power_fs2 = float(np.sum(excess[bin_start:bin_stop]) * bin_width_hz)
        bandwidth_hz = spectrum.resolution_bandwidth_hz
        low_hz = offsets_hz[peak_bin] - bandwidth_hz / 2
        high_hz = offsets_hz[peak_bin] + bandwidth_hz / 2
    else:
        in_region = np.flatnonzero(region)
        bin_start, bin_stop = int(in_region[0]), int(in_region[-1]) + 1
        signal_power_fs2 = float(np.sum(excess[region]) * bin_width_hz)
        low_hz = offsets_hz[0] + (low_bin * bin_width_hz)
        high_hz = offsets_hz[0] + (high_bin * bin_width_hz)
        bandwidth_hz = max(high_hz - low_hz, spectrum.resolution_bandwidth_hz)
    return SignalBand(
        detected=detected,
        is_spectral_line=is_line,
        low_offset_hz=float(low_hz),
        high_offset_hz=float(high_hz),
        occupied_bandwidth_hz=float(bandwidth_hz),
        peak_offset_hz=float(offsets_hz[peak_bin]),
        signal_power_fs2=signal_power_fs2,
        noise_floor_fs2_per_hz=noise_density,
        bin_start=bin_start,
        bin_stop=bin_stop,
    )
