"""Faults a simulated receiver can be told to show, and the malformed frames it sends.

A fault is set per receiver at run time (control API) and read by the server on
every connection and every frame, so it also hits streams already running.
"""

from __future__ import annotations

import struct
from enum import StrEnum
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class FaultKind(StrEnum):
    refuse = "refuse"  # MSG too_busy=N on connect
    badp = "badp"  # MSG badp=1 after auth
    down = "down"  # MSG down on connect
    not_answering = "not_answering"  # TCP accepted, WebSocket handshake never completes
    silent = "silent"  # handshake completes, then nothing is ever sent
    stall = "stall"  # stop sending frames after after_s, keep the socket open
    drop = "drop"  # abort the TCP connection after after_s
    malformed = "malformed"  # after after_s, every_n-th frame is malformed
    no_gps = "no_gps"  # last_gps_solution 255, timestamps from a free-running clock (KiwiSDR)
    hostile = "hostile"  # after the gate, stream large random garbage frames


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    after_s: Annotated[float, Field(ge=0)] = 0.0
    every_n: Annotated[int, Field(ge=1)] = 1
    # Hostile mode: size of each garbage frame and the byte rate it is sent at.
    garbage_frame_bytes: Annotated[int, Field(ge=1, le=16 * 1024 * 1024)] = 256 * 1024
    garbage_bytes_per_s: Annotated[float, Field(gt=0)] = 8e6


class MalformedVariant(StrEnum):
    wrong_tag = "wrong_tag"
    short = "short"
    long = "long"
    absurd_header = "absurd_header"
    text_garbage = "text_garbage"


MALFORMED_ROTATION = tuple(MalformedVariant)


def malformed_frame(valid_frame: bytes, variant: MalformedVariant) -> bytes | str:
    """Spoil a valid 2068-byte SND frame in one of the ways a broken server might."""
    if variant is MalformedVariant.wrong_tag:
        return b"XYZ" + valid_frame[3:]
    if variant is MalformedVariant.short:
        return valid_frame[:37]
    if variant is MalformedVariant.long:
        return valid_frame + valid_frame[20:520]
    if variant is MalformedVariant.absurd_header:
        # Sequence jumps back to 0, S-meter maxed, nanoseconds beyond a second.
        header = (
            b"SND"
            + bytes([0xFF])
            + struct.pack("<I", 0)
            + struct.pack(">H", 0xFFFF)
            + bytes([254, 77])
            + struct.pack("<II", 0xFFFFFFFF, 2_999_999_999)
        )
        return header + valid_frame[20:]
    return "SND \x00 not a frame \ufffd"


def malformed_openwebrx_message(valid_audio_frame: bytes, variant: MalformedVariant) -> bytes | str:
    """Spoil a valid OpenWebRX audio frame, or replace it by a broken message.

    The variants mirror the KiwiSDR ones: an unknown frame type, a spectrum frame
    cut short or overlong for the announced FFT size, an S-meter reading that
    cannot be a power, and text that is not JSON.
    """
    payload = valid_audio_frame[1:]
    if variant is MalformedVariant.wrong_tag:
        return bytes([9]) + payload
    if variant is MalformedVariant.short:
        return bytes([1]) + payload[:37]
    if variant is MalformedVariant.long:
        return bytes([1]) + payload * 64
    if variant is MalformedVariant.absurd_header:
        return '{"type": "smeter", "value": -1e30}'
    return "smeter \x00 not json \ufffd"


def garbage_frame(rng: np.random.Generator, size_bytes: int) -> bytes:
    """Random bytes; every fourth frame pretends to be a SND frame to tempt the parser."""
    payload = rng.integers(0, 256, size_bytes, dtype=np.uint8).tobytes()
    if rng.integers(0, 4) == 0:
        return b"SND" + payload[3:]
    return payload
