"""Regenerate ima_adpcm_vectors.json with Python's own IMA-ADPCM codec (``audioop``).

``audioop`` (stdlib to Python 3.12, the ``audioop-lts`` wheel after) is the
independent reference: Heimdall's decoder and the simulator's encoder are
checked against what it produced. It packs the first sample of a byte in the
HIGH nibble; OpenWebRX and IMA put it in the LOW nibble, so the bytes stored
here are audioop's with the nibbles of every byte swapped.

Run: ``python tests/unit/receivers/data/make_ima_adpcm_vectors.py``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

OUT = Path(__file__).with_name("ima_adpcm_vectors.json")


def swap_nibbles(data: bytes) -> bytes:
    return bytes(((b & 0x0F) << 4) | (b >> 4) for b in data)


def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    n = np.arange(600)
    return {
        "silence": np.zeros(64, dtype=np.int16),
        "tone_1khz_12k": (9000 * np.sin(2 * np.pi * 1000 * n / 12000)).astype(np.int16),
        "noise": np.clip(rng.normal(0, 6000, 600), -32768, 32767).astype(np.int16),
        # Full-scale square wave: the predictor clamps at both int16 limits.
        "square_full_scale": np.where((n // 25) % 2 == 0, 32767, -32768)[:400].astype(np.int16),
        "spectrum_db_x100": np.round(
            -9000 + 800 * np.exp(-(((n - 300) / 6.0) ** 2)) + rng.normal(0, 150, 600)
        ).astype(np.int16),
    }


def main() -> None:
    vectors = []
    for name, samples in inputs().items():
        for initial in [(0, 0), (-1200, 40)]:
            # Two frames, the state carried from the first to the second.
            half = len(samples) // 2
            frames, decoded = [], []
            state: tuple[int, int] | None = initial
            decode_state: tuple[int, int] | None = initial
            for part in (samples[:half], samples[half:]):
                encoded, state = audioop.lin2adpcm(part.astype("<i2").tobytes(), 2, state)
                pcm, decode_state = audioop.adpcm2lin(encoded, 2, decode_state)
                frames.append(swap_nibbles(encoded).hex())
                decoded.append(np.frombuffer(pcm, "<i2").tolist())
            vectors.append(
                {
                    "name": name,
                    "initial_state": list(initial),
                    "input": samples.tolist(),
                    "frames_hex": frames,
                    "decoded": decoded,
                    "final_state": list(decode_state),
                }
            )
    OUT.write_text(json.dumps({"reference": "audioop (nibbles swapped)", "vectors": vectors}))
    print(f"wrote {len(vectors)} vectors to {OUT}")


if __name__ == "__main__":
    main()
