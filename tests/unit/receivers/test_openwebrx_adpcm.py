"""IMA-ADPCM: the client's decoder and the simulator's encoder against an independent reference.

The vectors in ``data/ima_adpcm_vectors.json`` were produced by Python's
``audioop`` (see ``data/make_ima_adpcm_vectors.py``), nibbles swapped to the
low-nibble-first order OpenWebRX uses. Where ``audioop`` is importable (stdlib
to 3.12, ``audioop-lts`` after) the same comparison also runs on fresh input.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heimdall.receivers.openwebrx import adpcm
from heimdall.simulator.adpcm_encoder import encode

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "ima_adpcm_vectors.json").read_text()
)["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['name']}-{v['initial_state']}")
def test_decoder_matches_the_reference_across_frames(vector: dict[str, Any]) -> None:
    state = adpcm.AdpcmState(*vector["initial_state"])
    for frame_hex, expected in zip(vector["frames_hex"], vector["decoded"], strict=True):
        samples, state = adpcm.decode(bytes.fromhex(frame_hex), state)
        assert samples.dtype == np.int16
        assert samples.tolist() == expected
    assert [state.predictor, state.step_index] == vector["final_state"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['name']}-{v['initial_state']}")
def test_simulator_encoder_matches_the_reference(vector: dict[str, Any]) -> None:
    samples = np.array(vector["input"], dtype=np.int16)
    half = len(samples) // 2
    state = tuple(vector["initial_state"])
    for part, frame_hex in zip((samples[:half], samples[half:]), vector["frames_hex"], strict=True):
        data, state = encode(part, state)  # type: ignore[arg-type]
        assert data.hex() == frame_hex


def test_decoding_is_not_the_high_nibble_order() -> None:
    """A decoder reading the high nibble first would fail the vectors; this one does not."""
    vector = next(v for v in VECTORS if v["name"] == "tone_1khz_12k")
    frame = bytes.fromhex(vector["frames_hex"][0])
    swapped = bytes(((b & 0x0F) << 4) | (b >> 4) for b in frame)
    state = adpcm.AdpcmState(*vector["initial_state"])
    assert adpcm.decode(swapped, state)[0].tolist() != vector["decoded"][0]


def test_state_is_validated() -> None:
    with pytest.raises(ValueError, match="step_index"):
        adpcm.AdpcmState(0, 89)
    with pytest.raises(ValueError, match="predictor"):
        adpcm.AdpcmState(40_000, 0)


def test_against_the_live_reference_when_available() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    rng = np.random.default_rng(5)
    samples = np.clip(rng.normal(0, 12_000, 3000), -32768, 32767).astype(np.int16)
    reference, _ = audioop.lin2adpcm(samples.astype("<i2").tobytes(), 2, None)
    low_nibble_first = bytes(((b & 0x0F) << 4) | (b >> 4) for b in reference)
    decoded_reference = np.frombuffer(audioop.adpcm2lin(reference, 2, None)[0], "<i2")
    assert encode(samples)[0] == low_nibble_first
    assert np.array_equal(adpcm.decode(low_nibble_first)[0], decoded_reference)
