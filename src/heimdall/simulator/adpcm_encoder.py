"""IMA-ADPCM encoding for the simulated OpenWebRX receivers.

Written apart from the client's decoder on purpose: the simulator must not
share the code it tests. Both are checked against an independent reference
(Python's ``audioop``) in the unit tests. Low nibble first, as OpenWebRX sends it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_STEPS = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45,
    50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230,
    253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963,
    1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327,
    3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442,
    11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
    32767,
)  # fmt: skip
_INDEX_STEP = (-1, -1, -1, -1, 2, 4, 6, 8)


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
    steps, index_step = _STEPS, _INDEX_STEP
    codes = bytearray(len(values))
    for position, value in enumerate(values):
        step = steps[index]
        difference = value - predictor
        code = 0
        if difference < 0:
            code = 8
            difference = -difference
        change = step >> 3
        if difference >= step:
            code |= 4
            difference -= step
            change += step
        half = step >> 1
        if difference >= half:
            code |= 2
            difference -= half
            change += half
        quarter = step >> 2
        if difference >= quarter:
            code |= 1
            change += quarter
        predictor = predictor - change if code & 8 else predictor + change
        if predictor > 32767:
            predictor = 32767
        elif predictor < -32768:
            predictor = -32768
        index += index_step[code & 7]
        if index < 0:
            index = 0
        elif index > 88:
            index = 88
        codes[position] = code
    packed = bytes(low | (high << 4) for low, high in zip(codes[0::2], codes[1::2], strict=True))
    return packed, (predictor, index)
