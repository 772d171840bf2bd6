"""OpenWebRX client protocol: pure parsing and building, no I/O.

The websocket client (:mod:`heimdall.receivers.openwebrx.client`) drives these
functions. The protocol facts are in ``/work/shared/protocols/openwebrx.md``:
a text handshake, JSON messages with a ``type``, binary frames whose first byte
is their type (1 FFT, 2 audio, 3 secondary FFT, 4 HD audio), and
``/status.json`` over plain HTTP for the receiver's position and profiles.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from heimdall.receivers.openwebrx import adpcm

# --- binary frames ------------------------------------------------------------

FRAME_FFT = 1
FRAME_AUDIO = 2
FRAME_SECONDARY_FFT = 3
FRAME_HD_AUDIO = 4
#: Binary frame types a recorder reads past (another client's display needs them).
IGNORED_FRAME_TYPES = frozenset({FRAME_SECONDARY_FFT, FRAME_HD_AUDIO})
#: ADPCM FFT frames start with this many padding samples (the codec settling), dropped.
FFT_ADPCM_PADDING = 10
#: ADPCM FFT values are dB times this factor.
FFT_ADPCM_SCALE = 100.0
#: int16 full scale: audio sample / 32768 maps the int16 range onto [-1, 1).
INT16_FULL_SCALE = 32768.0
COMPRESSION_ADPCM = "adpcm"
COMPRESSION_NONE = "none"
COMPRESSIONS = frozenset({COMPRESSION_ADPCM, COMPRESSION_NONE})
#: FFT sizes accepted from a server: a power of two in this range.
FFT_SIZE_RANGE = (64, 65_536)
#: Profile sample rates accepted (Hz): from an audio card to a wideband SDR.
SAMPLE_RATE_RANGE_HZ = (8_000.0, 100e6)


class FrameError(ValueError):
    """A message or frame does not have the form the protocol prescribes."""


def frame_type(frame: bytes) -> int:
    """The first byte of a binary frame: what it carries.

    >>> frame_type(bytes([2, 0x10, 0x32]))
    2
    """
    if not frame:
        raise FrameError("empty binary frame")
    return frame[0]


def fft_frame_bytes(fft_size: int, compression: str) -> int:
    """Payload size of one FFT frame (after the type byte).

    >>> fft_frame_bytes(4096, "adpcm"), fft_frame_bytes(4096, "none")
    (2053, 16384)
    """
    if compression == COMPRESSION_ADPCM:
        return (fft_size + FFT_ADPCM_PADDING) // 2
    return 4 * fft_size


def decode_fft_frame(payload: bytes, fft_size: int, compression: str) -> npt.NDArray[np.float32]:
    """The ``fft_size`` dB values of one FFT frame (payload without the type byte).

    ADPCM frames are coded from the zero state each: decode, drop the padding,
    divide by 100. Uncompressed frames are float32 little-endian dB values.

    >>> import numpy as np
    >>> decode_fft_frame(np.array([-80.5, -20.0], "<f4").tobytes(), 2, "none").tolist()
    [-80.5, -20.0]
    """
    expected = fft_frame_bytes(fft_size, compression)
    if len(payload) != expected:
        raise FrameError(
            f"FFT frame of {len(payload)} bytes; {fft_size} {compression} bins take {expected}"
        )
    if compression == COMPRESSION_ADPCM:
        values, _ = adpcm.decode(payload)
        return (values[FFT_ADPCM_PADDING:].astype(np.float32) / np.float32(FFT_ADPCM_SCALE))[
            :fft_size
        ]
    values_db = np.frombuffer(payload, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(values_db)):
        raise FrameError("FFT frame holds NaN or infinite values")
    return values_db


def decode_audio_frame(
    payload: bytes, compression: str, state: adpcm.AdpcmState | None
) -> tuple[npt.NDArray[np.int16], adpcm.AdpcmState | None]:
    """The int16 samples of one audio frame, and the ADPCM state for the next one.

    >>> samples, _ = decode_audio_frame(bytes([0x00, 0x40, 0xff, 0xff]), "none", None)
    >>> samples.tolist()
    [16384, -1]
    """
    if compression == COMPRESSION_ADPCM:
        return adpcm.decode(payload, state)
    if len(payload) % 2:
        raise FrameError(f"uncompressed audio frame of {len(payload)} bytes (odd)")
    return np.frombuffer(payload, dtype="<i2").astype(np.int16), None


# --- text handshake and JSON messages -----------------------------------------------

_HANDSHAKE_REPLY = re.compile(r"^CLIENT DE SERVER\b(?P<params>.*)$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def handshake(client_name: str) -> str:
    """The client's first message.

    >>> handshake("heimdall")
    'SERVER DE CLIENT client=heimdall type=receiver'
    """
    if not _TOKEN.match(client_name):
        raise ValueError("client_name must be 1-64 letters, digits, '_', '.' or '-'")
    return f"SERVER DE CLIENT client={client_name} type=receiver"


def parse_handshake_reply(text: str) -> dict[str, str]:
    """``CLIENT DE SERVER server=openwebrx version=v1.2.2`` -> its name=value pairs.

    >>> parse_handshake_reply("CLIENT DE SERVER server=openwebrx version=v1.2.2")
    {'server': 'openwebrx', 'version': 'v1.2.2'}
    """
    match = _HANDSHAKE_REPLY.match(text.strip())
    if match is None:
        raise FrameError(f"expected 'CLIENT DE SERVER ...', got {text[:60]!r}")
    params = dict(item.partition("=")[::2] for item in match.group("params").split())
    if params.get("server") != "openwebrx":
        raise FrameError(f"the server is not OpenWebRX ({params.get('server')!r})")
    return params


def connection_properties(output_rate_hz: int, hd_output_rate_hz: int) -> str:
    return json.dumps(
        {
            "type": "connectionproperties",
            "params": {"output_rate": output_rate_hz, "hd_output_rate": hd_output_rate_hz},
        }
    )


def dsp_control(
    *, mod: str, low_cut_hz: int, high_cut_hz: int, offset_frequency_hz: int, squelch_level: int
) -> str:
    """Tune the demodulator; ``offset_freq`` is relative to the profile's centre."""
    return json.dumps(
        {
            "type": "dspcontrol",
            "params": {
                "low_cut": low_cut_hz,
                "high_cut": high_cut_hz,
                "offset_freq": offset_frequency_hz,
                "mod": mod,
                "squelch_level": squelch_level,
            },
        }
    )


DSP_START = json.dumps({"type": "dspcontrol", "action": "start"})


def select_profile(profile_id: str) -> str:
    return json.dumps({"type": "selectprofile", "params": {"profile": profile_id}})


def parse_message(text: str) -> dict[str, Any]:
    """A JSON text message: an object with a string ``type``.

    >>> parse_message('{"type": "smeter", "value": 0.001}')["type"]
    'smeter'
    """
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FrameError(f"text message is not JSON: {exc}") from exc
    except RecursionError as exc:  # JSON nested deeper than the parser goes
        raise FrameError("text message JSON is nested too deeply") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise FrameError("JSON message is not an object with a 'type'")
    return message


def _finite_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FrameError(f"{name} is not a number ({value!r})")
    number = float(value)
    if not math.isfinite(number):
        raise FrameError(f"{name} is not finite ({value!r})")
    return number


def parse_smeter(message: dict[str, Any]) -> float:
    """The S-meter's linear power (uncalibrated, >= 0).

    >>> parse_smeter({"type": "smeter", "value": 2.5e-6})
    2.5e-06
    """
    value = _finite_number(message.get("value"), "S-meter value")
    if value < 0:
        raise FrameError(f"S-meter value {value} is negative (it is a power)")
    return value


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """The active profile and stream formats, from the ``config`` messages."""

    center_frequency_hz: float
    sample_rate_hz: float
    fft_size: int
    audio_compression: str
    fft_compression: str
    sdr_id: str | None = None
    profile_id: str | None = None

    def channel_fits(self, low_hz: float, high_hz: float) -> bool:
        """True when the band low..high (absolute Hz) lies inside the profile's span."""
        half_span_hz = self.sample_rate_hz / 2
        return (
            self.center_frequency_hz - half_span_hz <= low_hz
            and high_hz <= self.center_frequency_hz + half_span_hz
        )


def parse_config(values: dict[str, Any]) -> ReceiverConfig:
    """Validate the merged ``config`` values (servers send updates of a few keys at a time)."""
    center_hz = _finite_number(values.get("center_freq"), "center_freq")
    rate_hz = _finite_number(values.get("samp_rate"), "samp_rate")
    if center_hz <= 0:
        raise FrameError(f"center_freq {center_hz} is not positive")
    if not SAMPLE_RATE_RANGE_HZ[0] <= rate_hz <= SAMPLE_RATE_RANGE_HZ[1]:
        raise FrameError(f"samp_rate {rate_hz} is outside {SAMPLE_RATE_RANGE_HZ}")
    fft_size = values.get("fft_size")
    if (
        not isinstance(fft_size, int)
        or isinstance(fft_size, bool)
        or not FFT_SIZE_RANGE[0] <= fft_size <= FFT_SIZE_RANGE[1]
        or fft_size & (fft_size - 1)
    ):
        raise FrameError(f"fft_size {fft_size!r} is not a power of two in {FFT_SIZE_RANGE}")
    compressions = {}
    for key in ("audio_compression", "fft_compression"):
        value = values.get(key, COMPRESSION_NONE)
        if value not in COMPRESSIONS:
            raise FrameError(f"{key} {value!r} is not one of {sorted(COMPRESSIONS)}")
        compressions[key] = str(value)
    sdr_id, profile_id = values.get("sdr_id"), values.get("profile_id")
    return ReceiverConfig(
        center_frequency_hz=center_hz,
        sample_rate_hz=rate_hz,
        fft_size=fft_size,
        audio_compression=compressions["audio_compression"],
        fft_compression=compressions["fft_compression"],
        sdr_id=str(sdr_id) if sdr_id is not None else None,
        profile_id=str(profile_id) if profile_id is not None else None,
    )


def parse_profiles(message: dict[str, Any]) -> dict[str, str]:
    """``profiles`` message -> {display name: "sdr_id|profile_id"}; malformed entries skipped."""
    profiles = {}
    for entry in message.get("value") or []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            profiles[str(entry.get("name", entry["id"]))] = entry["id"]
    return profiles


# --- /status.json -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """One SDR profile as ``/status.json`` lists it: a band the receiver can switch to."""

    display_name: str  # "<sdr name> <profile name>", as the websocket ``profiles`` names it
    center_frequency_hz: float
    sample_rate_hz: float

    def covers(self, low_hz: float, high_hz: float) -> bool:
        half_span_hz = self.sample_rate_hz / 2
        return (
            self.center_frequency_hz - half_span_hz <= low_hz
            and high_hz <= self.center_frequency_hz + half_span_hz
        )


@dataclass(frozen=True, slots=True)
class ReceiverStatus:
    """What ``/status.json`` says of the receiver."""

    name: str | None
    version: str | None
    latitude: float | None
    longitude: float | None
    altitude_m: float | None
    max_clients: int | None
    profiles: tuple[Profile, ...]


def _position(gps: object) -> tuple[float | None, float | None]:
    if isinstance(gps, dict):
        latitude, longitude = gps.get("lat"), gps.get("lon")
    elif isinstance(gps, list | tuple) and len(gps) == 2:
        latitude, longitude = gps
    else:
        return None, None
    try:
        lat, lon = _finite_number(latitude, "lat"), _finite_number(longitude, "lon")
    except FrameError:
        return None, None
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return lat, lon
    return None, None


def parse_status(document: object) -> ReceiverStatus:
    """Read ``/status.json``: name, GPS position, altitude and the SDR profiles.

    Fields that are missing or malformed are ``None`` (a profile without a valid
    centre and rate is left out): the document only adds metadata and the profile
    choice.

    >>> status = parse_status({"receiver": {"name": "Rx", "gps": {"lat": 45.0, "lon": 7.3}},
    ...     "sdrs": [{"name": "RTL", "profiles": [
    ...         {"name": "2m", "center_freq": 145000000, "sample_rate": 2400000}]}]})
    >>> status.latitude, status.profiles[0].display_name, status.profiles[0].covers(145.5e6, 145.51e6)
    (45.0, 'RTL 2m', True)
    """
    if not isinstance(document, dict):
        raise FrameError("status.json is not a JSON object")
    receiver = document.get("receiver")
    receiver = receiver if isinstance(receiver, dict) else {}
    latitude, longitude = _position(receiver.get("gps"))
    altitude = receiver.get("asl")
    profiles = []
    for sdr in document.get("sdrs") or []:
        if not isinstance(sdr, dict):
            continue
        for entry in sdr.get("profiles") or []:
            if not isinstance(entry, dict):
                continue
            try:
                center_hz = _finite_number(entry.get("center_freq"), "center_freq")
                rate_hz = _finite_number(entry.get("sample_rate"), "sample_rate")
            except FrameError:
                continue
            if center_hz > 0 and rate_hz > 0:
                display_name = f"{sdr.get('name', '')} {entry.get('name', '')}".strip()
                profiles.append(Profile(display_name, center_hz, rate_hz))
    max_clients = document.get("max_clients")
    name = receiver.get("name")
    version = document.get("version")
    return ReceiverStatus(
        name=name if isinstance(name, str) else None,
        version=version if isinstance(version, str) else None,
        latitude=latitude,
        longitude=longitude,
        altitude_m=float(altitude)
        if isinstance(altitude, int | float) and math.isfinite(altitude)
        else None,
        max_clients=max_clients if isinstance(max_clients, int) else None,
        profiles=tuple(profiles),
    )
