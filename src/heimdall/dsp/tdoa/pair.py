"""What a pair of GPS-timed captures is: its lag (``TdoaLag``), the captures' start times, a
reference prepared for several partners, and the spans a pair correlates (``cut_pair``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heimdall.dsp.tdoa.correlation import MIN_TDOA_QUALITY_DB
from heimdall.dsp.tdoa.drift import MAX_SERIES_DRIFT_SAMPLES, _SegmentSpectra, resample_to_rate
from heimdall.receivers.capture import IQCapture


@dataclass(frozen=True, slots=True)
class TdoaLag:
    """Arrival-time difference of ``b`` behind ``a`` on the common GPS time base."""

    lag_s: float
    lag_samples: float
    quality_db: float
    peak_correlation: float
    overlap_s: float
    sample_rate_hz: float
    #: Carrier frequency of b minus that of a (Hz), removed before the lag was refined.
    frequency_offset_hz: float = 0.0
    #: RMS bandwidth of the signal correlated (carrier excluded), measured from the pair.
    rms_bandwidth_hz: float = 0.0
    #: Sliding windows (``windows.window_lags``): the standard deviation of the lag from
    #: the windows' own spread (None: too few windows carried a peak), how many windows
    #: agreed and out of how many, and whether the lag is the windows' (the whole span's
    #: peak fell outside their cluster).
    empirical_sigma_s: float | None = None
    windows_agreeing: int = 0
    windows: int = 0
    lag_from_windows: bool = False
    #: Rival peaks of the whole span's correlation (echoes, or the direct path), as lags (s).
    rival_lags_s: tuple[float, ...] = ()
    #: Bound on the shift an unresolved echo can have given the whole span's peak, from
    #: the channel's curvature across the band (``multipath.echo_bias_bound_samples``):
    #: a systematic error for the whole recording, which no noise sigma shows. 0 unless
    #: ``tdoa_lag(..., echo_bound=True)``.
    echo_bias_bound_s: float = 0.0

    @property
    def is_reliable(self) -> bool:
        return self.quality_db >= MIN_TDOA_QUALITY_DB


def capture_start_time_ns(capture: IQCapture, reference_ns: int = 0) -> float:
    """GPS time of sample 0, in ns after ``reference_ns``: the median over blocks.

    The median keeps one bad stamp from moving it. Absolute UTC instants
    (~1.7e18 ns) are beyond float64's resolution (256 ns), so the blocks are
    compared in int64 against the first block, and the result is returned
    relative to ``reference_ns``: pass a nearby instant to keep nanoseconds.

    >>> import numpy as np
    >>> from heimdall.dsp.signals import make_capture
    >>> start_ns = 1_700_000_000_123_456_789
    >>> capture = make_capture(np.zeros(4_096, np.complex64), 12_000.0, start_time_ns=start_ns)
    >>> round(capture_start_time_ns(capture, reference_ns=start_ns - 1_000))
    1000
    """
    if not capture.has_gps_time:
        raise ValueError(f"capture {capture.station_id!r} has no GPS timestamps")
    first_block_ns = int(capture.block_time_ns[0])
    since_first_ns = (capture.block_time_ns - first_block_ns).astype(np.float64)
    starts_ns = since_first_ns - capture.block_start_index * (1e9 / capture.sample_rate_hz)
    return float(np.median(starts_ns)) + (first_block_ns - reference_ns)


class PreparedCapture:
    """A capture to be correlated against several others by ``tdoa_lag``.

    Its GPS start time, and for each cut of it its FFTs and carrier fits, are computed
    once and reused by every pair (thread-safe: at worst a race computes one twice).
    The localization service prepares its reference receiver this way; the gain needs
    the partners' windows to cover the same span of it (the same cut every time).
    """

    def __init__(self, capture: IQCapture) -> None:
        self.capture = capture
        #: Times are relative to the first block: small numbers, exact to the nanosecond.
        self.reference_ns = int(capture.block_time_ns[0]) if len(capture.block_time_ns) else 0
        self.start_ns = capture_start_time_ns(capture, self.reference_ns)
        self._cuts: dict[tuple[int, int], _SegmentSpectra] = {}

    def cut(self, skip: int, count: int) -> _SegmentSpectra:
        """Samples ``skip`` .. ``skip + count`` with their memoised spectra."""
        cut = self._cuts.get((skip, count))
        if cut is None:
            cut = _SegmentSpectra(self.capture.samples[skip : skip + count])
            self._cuts[(skip, count)] = cut
        return cut


@dataclass(frozen=True, slots=True)
class PairCut:
    """The spans of a pair's captures that cover the same GPS time, and their clocks."""

    #: a's cut, with its memoised spectra, and b's samples over the same span.
    cut_a: _SegmentSpectra
    cut_b: npt.NDArray[np.complex64]
    #: b's rate after any resampling onto a's grid, and b's rate over a's minus one.
    b_rate_hz: float
    clock_drift: float
    #: b's first sample's time minus a's (s).
    start_difference_s: float
    #: How far b drifts either side of a's centre (samples).
    end_drift_samples: float
    #: The lags searched: the physical ones widened by the cuts' start difference.
    max_lag_samples: float


def cut_pair(prepared: PreparedCapture, b: IQCapture, max_lag_s: float) -> PairCut:
    """Both captures cut to their common time span (``ValueError`` when they share none).

    When the receivers' sample rates differ (each KiwiSDR has its own GPS-corrected
    one), b's drift against a is left to the correlation (``PairCut.clock_drift``), or,
    beyond ``MAX_SERIES_DRIFT_SAMPLES``, b is resampled onto a's rate first.
    """
    if not np.isfinite(max_lag_s) or max_lag_s < 0:
        raise ValueError(f"max_lag_s must be non-negative, got {max_lag_s}")
    a = prepared.capture
    if a.sample_rate_hz <= 0 or b.sample_rate_hz <= 0:
        raise ValueError("sample rates must be positive")
    sample_rate_hz = a.sample_rate_hz
    # All times relative to a's first block: small numbers, exact to the nanosecond.
    start_a_ns = prepared.start_ns
    start_b_ns = capture_start_time_ns(b, prepared.reference_ns)
    b_samples, b_rate_hz = b.samples, b.sample_rate_hz
    # Every KiwiSDR has its own GPS-corrected rate, tens of ppm apart: over seconds b
    # drifts by a fraction of a sample against a. The correlation takes that drift
    # (see _SegmentSpectra.stretched_spectrum); only a drift beyond a sample or so
    # (rates hundreds of ppm apart) puts b on a's sample grid first.
    clock_drift = b_rate_hz / sample_rate_hz - 1.0
    if abs(clock_drift) * len(a.samples) / 2 > MAX_SERIES_DRIFT_SAMPLES:
        b_samples = resample_to_rate(b.samples, b_rate_hz, sample_rate_hz)
        b_rate_hz = sample_rate_hz
        clock_drift = 0.0
    period_a_ns, period_b_ns = 1e9 / sample_rate_hz, 1e9 / b_rate_hz
    common_start_ns = max(start_a_ns, start_b_ns)
    common_end_ns = min(
        start_a_ns + len(a.samples) * period_a_ns, start_b_ns + len(b_samples) * period_b_ns
    )
    if common_end_ns <= common_start_ns:
        raise ValueError("the captures do not overlap in time")
    # First sample of each capture at or after the common start, and the samples of
    # each up to the common end.
    skip_a = int(np.ceil((common_start_ns - start_a_ns) / period_a_ns - 1e-6))
    skip_b = int(np.ceil((common_start_ns - start_b_ns) / period_b_ns - 1e-6))
    first_a_ns = start_a_ns + skip_a * period_a_ns
    first_b_ns = start_b_ns + skip_b * period_b_ns
    count_a = min(len(a.samples) - skip_a, int((common_end_ns - first_a_ns) / period_a_ns))
    count_b = min(len(b_samples) - skip_b, int((common_end_ns - first_b_ns) / period_b_ns))
    start_difference_s = (first_b_ns - first_a_ns) / 1e9
    return PairCut(
        cut_a=prepared.cut(skip_a, count_a),
        cut_b=b_samples[skip_b : skip_b + count_b],
        b_rate_hz=b_rate_hz,
        clock_drift=clock_drift,
        start_difference_s=start_difference_s,
        # b's sample at a's sample i is i (1 + e) + lag: it drifts by e (count_a - 1) / 2
        # samples either side of a's centre.
        end_drift_samples=clock_drift * (count_a - 1) / 2,
        # The cut starts differ by under a sample, so the sample window is the
        # physical one widened by that residual.
        max_lag_samples=(max_lag_s + abs(start_difference_s)) * sample_rate_hz,
    )
