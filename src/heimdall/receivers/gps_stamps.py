"""GPS stamp hygiene: a capture's sample clock fitted from its block stamps (issue 15).

A KiwiSDR stamps each 512-sample block with the GPS time of its first sample, derived
from its last GPS solution; ``last_gps_solution`` counts the seconds since that
solution, 254 when it is stale and 255 without GPS. Real recordings show what the
simulator's ``realistic`` world reproduces: header sample rates a few ppm off the true
one, stale stretches, single stamps off by tens of microseconds. For TDOA:

1. only blocks stamped from a current solution (``last_gps_solution`` < 254) count;
2. a robust line through (sample index, stamp): the slope of stamp pairs half the
   capture apart (median), the intercept the median of what is left, so a few bad
   stamps cannot move it;
3. stamps off that line by more than ``max(6 robust sigmas, 1 us)``, and never more
   than one sample, are rejected; the line is refitted by least squares on the rest;
4. the capture's sample rate becomes the fitted one (not the announced one) and every
   block's stamp the fitted line's: the per-block jitter is averaged, not medianed;
5. fewer than ``MIN_GOOD_BLOCKS`` good blocks, or fewer than half of the fresh ones, or
   a rate more than ``MAX_RATE_DISAGREEMENT_PPM`` off the announced one: the capture is
   unusable for TDOA, and ``StampFit.reason`` says why.

The live TDOA path (``localization.service``) and imports (``imports.timing``) call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from heimdall.core.constants import NS_PER_S
from heimdall.receivers.capture import IQCapture

#: ``last_gps_solution`` at or above this: the block's stamp is not from a current fix.
GPS_STATUS_STALE = 254
MIN_GOOD_BLOCKS = 8
#: A rate from the stamps further than this from the announced one is not believed.
MAX_RATE_DISAGREEMENT_PPM = 2_000.0
#: Outlier threshold: this many robust sigmas of the residuals, at least the floor.
OUTLIER_SIGMAS = 6.0
OUTLIER_FLOOR_NS = 1_000.0
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class StampFit:
    """What the stamps say of a capture's clock, and whether TDOA can use them."""

    sample_rate_hz: float | None  # fitted; None when it could not be
    first_sample_ns: float | None  # the line's time of sample 0, ns after the first block's stamp
    good_blocks: npt.NDArray[np.bool_]
    rejected: dict[str, int] = field(default_factory=dict)
    residual_rms_ns: float = float("nan")
    reason: str | None = None  # None: usable for TDOA

    @property
    def usable(self) -> bool:
        return self.reason is None


def _median(values: npt.NDArray[np.float64]) -> float:
    """``np.median`` of finite values, bit for bit, without its generic machinery: a few
    dozen stamps cost ~25 us a call there, three calls a capture, seven captures a
    localization, before any pair is correlated."""
    middle = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, middle)[middle])
    low, high = np.partition(values, (middle - 1, middle))[middle - 1 : middle + 1].tolist()
    return (low + high) / 2  # numpy's mean of the two middle values


def _robust_line(
    index: npt.NDArray[np.float64], time_ns: npt.NDArray[np.float64]
) -> tuple[float, float]:
    half = len(index) // 2
    first, second = slice(0, len(index) - half), slice(half, len(index))
    slopes = (time_ns[second] - time_ns[first]) / (index[second] - index[first])
    slope = _median(slopes)
    return slope, _median(time_ns - slope * index)


def fit_stamps(capture: IQCapture) -> StampFit:
    """Fit the capture's sample clock from its fresh stamps; see the module docstring.

    >>> import numpy as np
    >>> from dataclasses import replace
    >>> from heimdall.dsp.signals import make_capture
    >>> capture = make_capture(np.zeros(512 * 100, np.complex64), 12_001.135)
    >>> times = capture.block_time_ns.copy(); times[40] += 50_000  # one stamp 50 us off
    >>> fit = fit_stamps(replace(capture, sample_rate_hz=12_000.0, block_time_ns=times))
    >>> round(fit.sample_rate_hz, 3), fit.rejected, fit.usable
    (12001.135, {'off the fitted clock': 1}, True)
    """
    blocks = len(capture.block_start_index)
    status = capture.block_gps_status
    fresh = status < GPS_STATUS_STALE
    rejected = {}
    if (stale := int(np.sum(status == GPS_STATUS_STALE))) > 0:
        rejected["stale GPS solution (254)"] = stale
    if (no_gps := int(np.sum(status > GPS_STATUS_STALE))) > 0:
        rejected["no GPS (255)"] = no_gps
    none = np.zeros(blocks, dtype=bool)
    if int(fresh.sum()) < MIN_GOOD_BLOCKS:
        return StampFit(
            None,
            None,
            none,
            rejected,
            reason=f"unusable for TDOA: {int(fresh.sum())} of {blocks} blocks stamped from a "
            f"current GPS fix (fewer than {MIN_GOOD_BLOCKS})",
        )
    first_ns = int(capture.block_time_ns[0])
    index = capture.block_start_index.astype(np.float64)
    time_ns = (capture.block_time_ns - first_ns).astype(np.float64)
    candidates = np.flatnonzero(fresh)
    slope, intercept = _robust_line(index[candidates], time_ns[candidates])
    residuals = time_ns - (intercept + slope * index)
    sigma = MAD_TO_SIGMA * _median(np.abs(residuals[candidates]))
    threshold = min(max(OUTLIER_SIGMAS * sigma, OUTLIER_FLOOR_NS), abs(slope))  # <= 1 sample
    good = fresh & (np.abs(residuals) <= threshold)
    if (off := int(np.sum(fresh & ~good))) > 0:
        rejected["off the fitted clock"] = off
    if int(good.sum()) < max(MIN_GOOD_BLOCKS, int(fresh.sum()) // 2):
        return StampFit(
            None,
            None,
            good,
            rejected,
            reason=f"unusable for TDOA: only {int(good.sum())} of {int(fresh.sum())} fresh "
            "stamps agree with one sample clock",
        )
    slope, intercept = np.polyfit(index[good], time_ns[good], 1)
    rms_ns = float(np.sqrt(np.mean((time_ns[good] - intercept - slope * index[good]) ** 2)))
    rate_hz = NS_PER_S / float(slope)
    disagreement_ppm = abs(rate_hz / capture.sample_rate_hz - 1.0) * 1e6
    reason = None
    if disagreement_ppm > MAX_RATE_DISAGREEMENT_PPM:
        reason = (
            f"unusable for TDOA: the stamps imply {rate_hz:.3f} Hz, {disagreement_ppm:.0f} ppm "
            f"away from the announced {capture.sample_rate_hz:.3f} Hz"
        )
    return StampFit(rate_hz, float(intercept), good, rejected, rms_ns, reason)


def clean_capture(capture: IQCapture) -> tuple[IQCapture, StampFit]:
    """The capture on its fitted clock (rate and every block's stamp from the fit).

    Unusable captures come back unchanged with the fit that says why; a capture without
    GPS time is never usable.
    """
    if not capture.has_gps_time:
        empty = np.zeros(len(capture.block_start_index), dtype=bool)
        return capture, StampFit(None, None, empty, reason="unusable for TDOA: no GPS time")
    fit = fit_stamps(capture)
    if not fit.usable or fit.sample_rate_hz is None or fit.first_sample_ns is None:
        return capture, fit
    offsets_ns = fit.first_sample_ns + capture.block_start_index * (NS_PER_S / fit.sample_rate_hz)
    times = int(capture.block_time_ns[0]) + np.round(offsets_ns).astype(np.int64)
    timing = {
        "announced_sample_rate_hz": capture.sample_rate_hz,
        "sample_rate_source": "GPS stamps",
        "stamps_rejected": dict(fit.rejected),
        "stamp_residual_rms_ns": round(fit.residual_rms_ns, 1),
    }
    cleaned = replace(
        capture,
        sample_rate_hz=fit.sample_rate_hz,
        block_time_ns=times,
        metadata={**capture.metadata, "timing": timing},
    )
    return cleaned, fit
