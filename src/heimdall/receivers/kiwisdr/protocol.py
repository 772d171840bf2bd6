"""KiwiSDR sound-channel protocol in IQ mode: pure parsing and building, no I/O.

Everything here takes bytes or strings and returns values; the websocket client
(:mod:`heimdall.receivers.kiwisdr.client`) drives it. The protocol facts are in
``/work/shared/protocols/kiwisdr.md`` (frame layout, commands, refusals).
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from urllib.parse import unquote

import numpy as np
import numpy.typing as npt

from heimdall.receivers.capture import SAMPLES_PER_BLOCK
from heimdall.receivers.errors import (
    ReceiverAuthFailed,
    ReceiverBusy,
    ReceiverDown,
    ReceiverError,
    ReceiverRedirect,
)

# --- frames --------------------------------------------------------------

TAG_BYTES = 3
TAG_MSG = "MSG"
TAG_SND = "SND"
#: Tags a real server may send on the sound channel that an IQ recorder ignores.
IGNORED_TAGS = frozenset({"W/F", "EXT", "DAT"})
KNOWN_TAGS = IGNORED_TAGS | {TAG_MSG, TAG_SND}

IQ_HEADER_BYTES = 20
IQ_PAYLOAD_BYTES = SAMPLES_PER_BLOCK * 2 * 2  # 512 complex samples, I and Q int16 each
IQ_FRAME_BYTES = IQ_HEADER_BYTES + IQ_PAYLOAD_BYTES  # 2068

FLAG_LPF_CHANGED = 0x01
FLAG_ADC_OVERFLOW = 0x02
FLAG_NEW_FREQ_MODE = 0x04
FLAG_IQ = 0x08
FLAG_COMPRESSED = 0x10
FLAG_RESTART = 0x20
FLAG_SQUELCHED = 0x40
FLAG_LITTLE_ENDIAN = 0x80

# tag(3s) flags(B) sequence(<I) | smeter(>H) | gps: last_solution(B) reserved(B) sec(<I) nsec(<I)
_SEQUENCE = struct.Struct("<I")
_SMETER = struct.Struct(">H")
_GPS = struct.Struct("<BBII")

#: int16 full scale: sample / 32768 maps the int16 range onto [-1, 1).
INT16_FULL_SCALE = 32768.0
_BIG_ENDIAN_INT16 = np.dtype(">i2")
_LITTLE_ENDIAN_INT16 = np.dtype("<i2")


class FrameError(ValueError):
    """A frame does not have the layout the protocol prescribes."""


def frame_tag(frame: bytes) -> str:
    """The 3-character tag that starts every server frame.

    >>> frame_tag(b"MSG audio_rate=12000")
    'MSG'
    """
    if len(frame) < TAG_BYTES:
        raise FrameError(f"frame of {len(frame)} bytes is too short to carry a tag")
    return frame[:TAG_BYTES].decode("latin-1")


@dataclass(frozen=True, slots=True)
class IQBlockHeader:
    """The 20-byte header of an IQ-mode ``SND`` frame.

    Attributes:
        flags: bit mask (``FLAG_*``).
        sequence: block counter, +1 per frame (uint32, wraps).
        smeter: raw S-meter; see :func:`rssi_dbm_from_smeter`.
        last_gps_solution: seconds since the last GPS fix (0..252), 255 = no GPS.
        gps_time_of_week_s: GPS seconds of week of the block's first sample.
        gps_time_of_week_ns: nanoseconds within that second.
    """

    flags: int
    sequence: int
    smeter: int
    last_gps_solution: int
    gps_time_of_week_s: int
    gps_time_of_week_ns: int

    @property
    def little_endian(self) -> bool:
        return bool(self.flags & FLAG_LITTLE_ENDIAN)

    @property
    def adc_overflow(self) -> bool:
        return bool(self.flags & FLAG_ADC_OVERFLOW)


def parse_iq_header(frame: bytes) -> IQBlockHeader:
    """Decode the header of a 2068-byte IQ ``SND`` frame.

    Raises:
        FrameError: wrong tag or length, compressed payload, or an impossible
            GPS nanosecond field.
    """
    if frame[:TAG_BYTES] != b"SND":
        raise FrameError(f"not a SND frame (tag {frame[:TAG_BYTES]!r})")
    if len(frame) != IQ_FRAME_BYTES:
        raise FrameError(
            f"SND frame of {len(frame)} bytes; an IQ frame has {IQ_FRAME_BYTES} "
            "(is the receiver in IQ mode?)"
        )
    flags = frame[3]
    if flags & FLAG_COMPRESSED:
        raise FrameError("SND frame flagged compressed; IQ frames are never compressed")
    (sequence,) = _SEQUENCE.unpack_from(frame, 4)
    (smeter,) = _SMETER.unpack_from(frame, 8)
    last_gps_solution, _reserved, gps_s, gps_ns = _GPS.unpack_from(frame, 10)
    if gps_ns >= 1_000_000_000:
        raise FrameError(f"GPS nanoseconds field {gps_ns} is not below one second")
    return IQBlockHeader(flags, sequence, smeter, last_gps_solution, gps_s, gps_ns)


def decode_iq_samples(frame: bytes, little_endian: bool) -> npt.NDArray[np.complex64]:
    """The 512 complex samples of an IQ frame, full scale 1.0.

    Samples are interleaved I, Q as int16, big-endian unless the frame's flag
    0x80 says little-endian.

    >>> payload = np.array([16384, -32768] * 512, dtype=">i2").tobytes()
    >>> decode_iq_samples(b"SND" + bytes(17) + payload, little_endian=False)[:2]
    array([0.5-1.j, 0.5-1.j], dtype=complex64)
    """
    dtype = _LITTLE_ENDIAN_INT16 if little_endian else _BIG_ENDIAN_INT16
    interleaved = np.frombuffer(frame, dtype=dtype, count=2 * SAMPLES_PER_BLOCK, offset=20)
    iq = interleaved.astype(np.float32).reshape(SAMPLES_PER_BLOCK, 2) / np.float32(INT16_FULL_SCALE)
    return iq.view(np.complex64).ravel()


def rssi_dbm_from_smeter(smeter: int) -> float:
    """The receiver's RSSI in dBm from the raw S-meter field (0.1 dB steps from -127 dBm).

    >>> rssi_dbm_from_smeter(470)
    -80.0
    """
    return 0.1 * smeter - 127.0


def blocks_for_duration(duration_s: float, sample_rate_hz: float) -> int:
    """Whole 512-sample blocks needed to cover ``duration_s``: rounded up, at least one.

    >>> blocks_for_duration(1.0, 12001.135)  # 12001.135 / 512 = 23.44
    24
    """
    if duration_s <= 0 or sample_rate_hz <= 0:
        raise ValueError("duration_s and sample_rate_hz must be positive")
    # A tiny tolerance keeps 1.0 s at exactly 512*k samples/s from rounding up on float noise.
    return max(1, math.ceil(duration_s * sample_rate_hz / SAMPLES_PER_BLOCK - 1e-9))


# --- MSG ----------------------------------------------------------------------


def parse_msg(frame: bytes) -> dict[str, str]:
    """``MSG a=1 b=x y`` -> ``{"a": "1", "b": "x", "y": ""}``; split on the first ``=``.

    Values are returned as sent (URL-encoded where the server encodes them);
    decode them with the dedicated helpers.

    >>> parse_msg(b"MSG audio_init=0 audio_rate=12000")
    {'audio_init': '0', 'audio_rate': '12000'}
    """
    if frame[:TAG_BYTES] != b"MSG":
        raise FrameError(f"not a MSG frame (tag {frame[:TAG_BYTES]!r})")
    text = frame[TAG_BYTES:].decode("utf-8", errors="replace")
    params: dict[str, str] = {}
    for item in text.split():
        name, _, value = item.partition("=")
        params[name] = value
    return params


def parse_load_cfg(value: str) -> dict[str, object]:
    """Decode the URL-encoded JSON configuration sent as ``MSG load_cfg=...``.

    >>> parse_load_cfg("%7B%22rx_name%22%3A%22Test%22%7D")
    {'rx_name': 'Test'}
    """
    try:
        config = json.loads(unquote(value))
    except json.JSONDecodeError as exc:
        raise FrameError(f"load_cfg is not URL-encoded JSON: {exc}") from exc
    except RecursionError as exc:  # JSON nested deeper than the parser goes
        raise FrameError("load_cfg JSON is nested too deeply") from exc
    if not isinstance(config, dict):
        raise FrameError("load_cfg JSON is not an object")
    return config


_LAT_LON = re.compile(r"^\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)\s*$")


def parse_rx_gps(text: str) -> tuple[float, float] | None:
    """``"(45.02, 7.29)"`` -> ``(45.02, 7.29)``; ``None`` when absent or not a valid position.

    >>> parse_rx_gps("(45.02, 7.29)")
    (45.02, 7.29)
    """
    match = _LAT_LON.match(text)
    if match is None:
        return None
    try:
        latitude, longitude = float(match.group(1)), float(match.group(2))
    except ValueError:
        return None
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        return None
    return latitude, longitude


def refusal_error(station_id: str, params: dict[str, str]) -> ReceiverError | None:
    """The typed error for a server refusal in a parsed ``MSG``, or ``None`` if it is not one.

    ``too_busy=N`` (all channels taken), ``badp=N`` with N != 0 (bad password,
    or another admission refusal), ``down``, ``redirect=<url>`` and
    ``password_timeout``.
    """
    if "too_busy" in params and params["too_busy"] != "0":
        return ReceiverBusy(
            station_id, f"all {params['too_busy'] or 'its'} channels are in use; try later"
        )
    if "badp" in params and params["badp"] != "0":
        return ReceiverAuthFailed(
            station_id, f"password refused (badp={params['badp']}); check the station password"
        )
    if "down" in params:
        return ReceiverDown(station_id, "the receiver reports it is down")
    if "redirect" in params:
        return ReceiverRedirect(station_id, unquote(params["redirect"]))
    if "password_timeout" in params:
        return ReceiverAuthFailed(station_id, "the receiver gave up waiting for the password")
    return None


# --- client commands ----------------------------------------------------------

IQ_LOW_CUT_HZ = -5000
IQ_HIGH_CUT_HZ = 5000
#: The ``out`` rate every KiwiSDR client announces in ``SET AR OK``; it must be non-zero
#: for the server to start streaming, its value does not affect IQ samples.
AR_OUT_RATE_HZ = 44100
_TOKEN = re.compile(r"^[^\s\x00-\x1f\x7f]*$")


def _require_token(name: str, value: str) -> str:
    # Commands are space-separated name=value pairs: a space would split the value.
    if not _TOKEN.match(value):
        raise ValueError(f"{name} must not contain spaces or control characters")
    return value


def auth_command(password: str) -> str:
    """``SET auth t=kiwi p=<password>`` (empty password allowed).

    >>> auth_command("")
    'SET auth t=kiwi p='
    """
    return f"SET auth t=kiwi p={_require_token('password', password)}"


def audio_rate_reply(audio_rate: int) -> str:
    """The mandatory answer to ``MSG audio_rate=N``.

    >>> audio_rate_reply(12000)
    'SET AR OK in=12000 out=44100'
    """
    return f"SET AR OK in={audio_rate} out={AR_OUT_RATE_HZ}"


def tune_command(frequency_hz: float) -> str:
    """IQ mode, +-5 kHz passband, frequency in kHz with 3 decimals (1 Hz resolution).

    >>> tune_command(7_074_000.0)
    'SET mod=iq low_cut=-5000 high_cut=5000 freq=7074.000'
    """
    if not frequency_hz > 0:
        raise ValueError("frequency_hz must be positive")
    return (
        f"SET mod=iq low_cut={IQ_LOW_CUT_HZ} high_cut={IQ_HIGH_CUT_HZ} "
        f"freq={frequency_hz / 1000.0:.3f}"
    )


def manual_gain_command(manual_gain_db: int) -> str:
    """AGC off, fixed gain: IQ amplitude then tracks the antenna power.

    >>> manual_gain_command(50)
    'SET agc=0 hang=0 thresh=-100 slope=6 decay=1000 manGain=50'
    """
    if not 0 <= manual_gain_db <= 120:
        raise ValueError("manual_gain_db must be within 0..120 dB")
    return f"SET agc=0 hang=0 thresh=-100 slope=6 decay=1000 manGain={manual_gain_db}"


KEEPALIVE_COMMAND = "SET keepalive"


def configuration_commands(frequency_hz: float, manual_gain_db: int, ident_user: str) -> list[str]:
    """What a client sends once the sample rate is known, in order.

    Squelch and the test generator off, identification, IQ tuning, AGC off with
    a manual gain, and a first keepalive.
    """
    return [
        "SET squelch=0 max=0",
        "SET genattn=0",
        "SET gen=0 mix=-1",
        f"SET ident_user={_require_token('ident_user', ident_user)}",
        tune_command(frequency_hz),
        manual_gain_command(manual_gain_db),
        KEEPALIVE_COMMAND,
    ]
