"""The time base of an imported capture: timestamp hygiene for imports.

:func:`timed_capture` runs the live path's stamp hygiene (``heimdall.receivers.gps_stamps``,
issue 15): the sample clock fitted from the GPS stamps of blocks with a current fix,
outlier stamps rejected, every block's stamp put on the fitted line, and "unusable for
TDOA, and why" in ``metadata["timing"]``. A kiwirecorder header holds the nominal
whole-hertz rate, tens of ppm off the true one, and at 12 kHz 80 ppm is 160 us over
2 s of a TDOA window (tens of km). Statuses (``last_gps_solution``) are kept as read.
:func:`sample_rate_from_stamps_hz` (the median slope of stamp pairs half the capture
apart) remains for callers that want the rate alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from heimdall.core.constants import NS_PER_S
from heimdall.receivers.capture import IQCapture
from heimdall.receivers.gps_stamps import clean_capture

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
    """The capture on the sample clock its stamps imply; the announced one when unusable.

    ``metadata["timing"]`` says which rate is used and why, which stamps were rejected,
    and ``unusable_for_tdoa`` when the stamps cannot time it.
    """
    if not capture.has_gps_time:
        return capture
    cleaned, fit = clean_capture(capture)
    if fit.usable:
        return cleaned
    timing: dict[str, object] = {
        "announced_sample_rate_hz": capture.sample_rate_hz,
        "sample_rate_source": f"announced: {fit.reason}",
        "stamps_rejected": dict(fit.rejected),
        "unusable_for_tdoa": fit.reason,
    }
    return replace(capture, metadata={**capture.metadata, "timing": timing})
