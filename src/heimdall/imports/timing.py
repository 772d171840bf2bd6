"""The time base of an imported capture: where timestamp hygiene plugs in.

PHASE 2 SEAM (issue 16 item 2). Timestamp hygiene (the sample clock fitted from the GPS
stamps, stale or unfixed blocks and outlier stamps rejected, "unusable for TDOA, and
why") is one reusable module written for the live path (issue 15, expected as
``heimdall.receivers.gps_stamps``). When it lands, :func:`timed_capture` is the one
place that calls it for imports; nothing else in the import path changes.

Until then stamps and ``last_gps_solution`` statuses are kept exactly as read, and only
the sample rate is taken from the stamps: a kiwirecorder header holds the nominal
whole-hertz rate, tens of ppm off the true one, and at 12 kHz 80 ppm is 160 us over a
2 s TDOA window (tens of km). The estimate is the median slope of stamp pairs half the
capture apart (one bad stamp moves at most two of them).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from heimdall.core.constants import NS_PER_S
from heimdall.receivers.capture import IQCapture

#: ``last_gps_solution`` below this: the block's stamp comes from a current GPS solution.
GPS_STATUS_NO_FIX = 254
#: A rate from the stamps further than this from the announced one is not believed.
MAX_RATE_DISAGREEMENT_PPM = 2_000.0


def sample_rate_from_stamps_hz(capture: IQCapture) -> float | None:
    """The sample rate the GPS stamps of fixed blocks imply, or None with fewer than two.

    >>> import numpy as np
    >>> from heimdall.dsp.signals import make_capture
    >>> capture = make_capture(np.zeros(51_200, np.complex64), 12_001.135)
    >>> round(sample_rate_from_stamps_hz(capture), 2)
    12001.13
    """
    fixed = np.flatnonzero(capture.block_gps_status < GPS_STATUS_NO_FIX)
    if fixed.size < 2:
        return None
    half = fixed.size // 2
    first, second = fixed[: fixed.size - half], fixed[half:]  # pairs half the span apart
    elapsed_ns = (capture.block_time_ns[second] - capture.block_time_ns[first]).astype(np.float64)
    samples = (capture.block_start_index[second] - capture.block_start_index[first]).astype(
        np.float64
    )
    usable = (samples > 0) & (elapsed_ns > 0)
    if not usable.any():
        return None
    return float(NS_PER_S / np.median(elapsed_ns[usable] / samples[usable]))


def timed_capture(capture: IQCapture) -> IQCapture:
    """The capture with its sample rate fitted from its stamps; the rest as read.

    ``metadata["timing"]`` says which rate is used and why.
    """
    if not capture.has_gps_time:
        return capture
    announced_hz = capture.sample_rate_hz
    fitted_hz = sample_rate_from_stamps_hz(capture)
    timing: dict[str, object] = {"announced_sample_rate_hz": announced_hz}
    if fitted_hz is None:
        timing["sample_rate_source"] = "announced: fewer than two blocks with a GPS fix"
        rate_hz = announced_hz
    elif abs(fitted_hz / announced_hz - 1.0) * 1e6 > MAX_RATE_DISAGREEMENT_PPM:
        timing["sample_rate_source"] = (
            f"announced: the stamps imply {fitted_hz:.3f} Hz, more than "
            f"{MAX_RATE_DISAGREEMENT_PPM:g} ppm away"
        )
        rate_hz = announced_hz
    else:
        timing["sample_rate_source"] = "GPS stamps"
        rate_hz = fitted_hz
    return replace(capture, sample_rate_hz=rate_hz, metadata={**capture.metadata, "timing": timing})
