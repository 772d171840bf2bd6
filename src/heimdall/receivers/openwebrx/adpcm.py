"""IMA-ADPCM decoding as OpenWebRX streams it: pure functions, bytes in, int16 out.

Each byte carries two 4-bit codes, the LOW nibble first (OpenWebRX and the IMA
reference; Python's ``audioop`` packs the first sample in the HIGH nibble). A
code moves the predictor by a fraction of the current step and the step index
by the 16-entry index table; the step is read from the standard 89-entry table.
The decoder state (predictor, step index) carries from one frame to the next in
an audio stream; OpenWebRX FFT frames are coded independently, each from the
zero state.

The inner loop reads two precomputed tables (the predictor change and the next
step index for every (index, code) pair), which makes it a few table look-ups
per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: The standard IMA step sizes (89 entries).
STEP_TABLE: tuple[int, ...] = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45,
    50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230,
    253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963,
    1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327,
    3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442,
    11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
    32767,
)  # fmt: skip
#: Step-index change for each 4-bit code (the sign bit does not matter).
INDEX_TABLE: tuple[int, ...] = (-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8)
MAX_STEP_INDEX = len(STEP_TABLE) - 1
INT16_MIN, INT16_MAX = -32768, 32767


def _difference(step: int, code: int) -> int:
    """The predictor change a code means: step/8 + the step fractions its bits select."""
    difference = step >> 3
    if code & 4:
        difference += step
    if code & 2:
        difference += step >> 1
    if code & 1:
        difference += step >> 2
    return -difference if code & 8 else difference


# [index * 16 + code]: flat tuples index fastest in CPython's loop.
_DIFFERENCES = tuple(_difference(step, code) for step in STEP_TABLE for code in range(16))
_NEXT_INDEX = tuple(
    min(max(index + INDEX_TABLE[code], 0), MAX_STEP_INDEX)
    for index in range(len(STEP_TABLE))
    for code in range(16)
)


@dataclass(frozen=True, slots=True)
class AdpcmState:
    """The decoder's memory: last sample value and step index (0..88)."""

    predictor: int = 0
    step_index: int = 0

    def __post_init__(self) -> None:
        if not INT16_MIN <= self.predictor <= INT16_MAX:
            raise ValueError(f"predictor {self.predictor} is outside int16")
        if not 0 <= self.step_index <= MAX_STEP_INDEX:
            raise ValueError(f"step_index {self.step_index} is outside 0..{MAX_STEP_INDEX}")


def decode(
    data: bytes, state: AdpcmState | None = None
) -> tuple[npt.NDArray[np.int16], AdpcmState]:
    """Decode IMA-ADPCM bytes (low nibble first) into ``2 * len(data)`` int16 samples.

    Returns the samples and the state to continue the stream with.

    >>> samples, state = decode(bytes([0x07, 0x7F]))
    >>> samples.tolist(), state
    ([11, 13, -12, 44], AdpcmState(predictor=44, step_index=23))
    >>> decode(bytes([0x88]), state)[0].tolist()  # the stream continues from the state
    [36, 29]
    """
    state = state or AdpcmState()
    predictor, index = state.predictor, state.step_index
    output = [0] * (2 * len(data))
    differences, next_index = _DIFFERENCES, _NEXT_INDEX
    position = 0
    for byte in data:
        for code in (byte & 0x0F, byte >> 4):
            row = index * 16 + code
            predictor += differences[row]
            if predictor > INT16_MAX:
                predictor = INT16_MAX
            elif predictor < INT16_MIN:
                predictor = INT16_MIN
            index = next_index[row]
            output[position] = predictor
            position += 1
    return np.array(output, dtype=np.int16), AdpcmState(predictor, index)
