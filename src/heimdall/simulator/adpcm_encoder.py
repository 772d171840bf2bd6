"""IMA-ADPCM encoding for the simulated OpenWebRX receivers.

Written apart from the client's decoder on purpose: the simulator must not
share the code it tests (only the standard's step table, a constant). Both are
checked against an independent reference (Python's ``audioop``) in the unit
tests. Low nibble first, as OpenWebRX sends it.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
import numpy.typing as npt

from heimdall.receivers.openwebrx.adpcm import STEP_TABLE

_INDEX_STEP = (-1, -1, -1, -1, 2, 4, 6, 8)


def _magnitude_code(difference: int, step: int) -> int:
    """The reference quantiser: compare with step, step/2, step/4 in turn, subtracting."""
    code = 0
    if difference >= step:
        code |= 4
        difference -= step
    if difference >= step >> 1:
        code |= 2
        difference -= step >> 1
    if difference >= step >> 2:
        code |= 1
    return code


def _thresholds(step: int) -> tuple[int, ...]:
    """The smallest |difference| giving each magnitude code 1..7 (the quantiser is monotone)."""
    thresholds = []
    for code in range(1, 8):
        low, high = 0, 4 * step + 8
        while low < high:
            middle = (low + high) // 2
            if _magnitude_code(middle, step) >= code:
                high = middle
            else:
                low = middle + 1
        thresholds.append(low)
    return tuple(thresholds)


def _change(step: int, code: int) -> int:
    return (
        (step >> 3)
        + (step if code & 4 else 0)
        + (step >> 1 if code & 2 else 0)
        + (step >> 2 if code & 1 else 0)
    )


# Per step index: the quantiser's thresholds (bisected in C) and the predictor change of
# each magnitude code. Same codes as the compare-and-subtract loop, a third faster.
_THRESHOLDS = tuple(_thresholds(step) for step in STEP_TABLE)
_CHANGES = tuple(tuple(_change(step, code) for code in range(8)) for step in STEP_TABLE)


def encode(
    samples: npt.NDArray[np.int16], state: tuple[int, int] = (0, 0)
) -> tuple[bytes, tuple[int, int]]:
    """int16 samples -> IMA-ADPCM bytes (an odd count is padded with one zero sample).

    ``state`` is (predictor, step index), carried from one call to the next.

    >>> data, state = encode(np.array([0, 100, 400, 1000], dtype=np.int16))
    >>> data.hex(), state
    ('7077', (104, 24))
    """
    values = samples.astype(np.int64).tolist()
    if len(values) % 2:
        values.append(0)
    predictor, index = state
    thresholds, changes, index_step = _THRESHOLDS, _CHANGES, _INDEX_STEP
    codes = bytearray(len(values))
    for position, value in enumerate(values):
        difference = value - predictor
        if difference < 0:
            code = bisect_right(thresholds[index], -difference)
            predictor -= changes[index][code]
            if predictor < -32768:
                predictor = -32768
            codes[position] = code | 8
        else:
            code = bisect_right(thresholds[index], difference)
            predictor += changes[index][code]
            if predictor > 32767:
                predictor = 32767
            codes[position] = code
        index += index_step[code]
        if index < 0:
            index = 0
        elif index > 88:
            index = 88
    packed = bytes(low | (high << 4) for low, high in zip(codes[0::2], codes[1::2], strict=True))
    return packed, (predictor, index)
