"""OpenWebRX protocol parsing and the recorder's state machine (no I/O)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heimdall.receivers.errors import (
    ReceiverBusy,
    ReceiverOutOfRange,
    ReceiverProtocolError,
    ReceiverRetuned,
)
from heimdall.receivers.openwebrx import protocol
from heimdall.receivers.openwebrx.client import (
    HIGH_CUT_HZ,
    LOW_CUT_HZ,
    TONE_OFFSET_HZ,
    _AudioRecording,
)
from heimdall.simulator.adpcm_encoder import encode

STATUS = protocol.parse_status(
    {
        "receiver": {"name": "Rx", "gps": {"lat": 45.02, "lon": 7.29}, "asl": 600},
        "max_clients": 4,
        "version": "v1.2.2",
        "sdrs": [
            {
                "name": "RTL",
                "profiles": [
                    {"name": "2m", "center_freq": 145_000_000, "sample_rate": 2_400_000},
                    {"name": "70cm", "center_freq": 433_500_000, "sample_rate": 2_400_000},
                    {"name": "broken", "center_freq": "x", "sample_rate": 1},
                ],
            }
        ],
    }
)
PROFILES = {
    "type": "profiles",
    "value": [{"id": "rtl|2m", "name": "RTL 2m"}, {"id": "rtl|70cm", "name": "RTL 70cm"}],
}


def config(center_hz: float = 145e6, profile: str = "2m", **extra: object) -> str:
    value = {
        "center_freq": center_hz,
        "samp_rate": 2_400_000,
        "fft_size": 1024,
        "audio_compression": "adpcm",
        "fft_compression": "adpcm",
        "sdr_id": "rtl",
        "profile_id": profile,
    } | extra
    return json.dumps({"type": "config", "value": value})


def started(
    frequency_hz: float = 145.5e6, duration_s: float = 1.0
) -> tuple[_AudioRecording, list[str]]:
    recording = _AudioRecording("giaveno", frequency_hz, duration_s, STATUS)
    sent = recording.handle_text("CLIENT DE SERVER server=openwebrx version=v1.2.2", 0)
    sent += recording.handle_text(json.dumps(PROFILES), 1)
    sent += recording.handle_text(config(), 2)
    return recording, sent


def fft_payload(values_db: np.ndarray) -> bytes:
    scaled = np.round(values_db * 100).astype(np.int16)
    data, _ = encode(np.concatenate((np.full(10, scaled[0]), scaled)).astype(np.int16))
    return bytes([1]) + data


def test_status_json_gives_position_and_profiles() -> None:
    assert (STATUS.latitude, STATUS.longitude, STATUS.altitude_m) == (45.02, 7.29, 600.0)
    assert [p.display_name for p in STATUS.profiles] == ["RTL 2m", "RTL 70cm"]
    assert STATUS.profiles[1].covers(433e6, 434e6)
    assert protocol.parse_status({"receiver": {"gps": {"lat": 95, "lon": 0}}}).latitude is None
    with pytest.raises(protocol.FrameError):
        protocol.parse_status(["not", "an", "object"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"samp_rate": 2.4e6, "fft_size": 1024}, "center_freq"),
        ({"center_freq": 1e8, "samp_rate": 1.0, "fft_size": 1024}, "samp_rate"),
        ({"center_freq": 1e8, "samp_rate": 2.4e6, "fft_size": 1000}, "fft_size"),
        (
            {"center_freq": 1e8, "samp_rate": 2.4e6, "fft_size": 1024, "fft_compression": "zip"},
            "fft_compression",
        ),
        ({"center_freq": float("nan"), "samp_rate": 2.4e6, "fft_size": 1024}, "center_freq"),
    ],
)
def test_config_is_validated(values: dict[str, object], message: str) -> None:
    with pytest.raises(protocol.FrameError, match=message):
        protocol.parse_config(values)


def test_fft_frames_decode_and_refuse_the_wrong_size() -> None:
    values_db = np.linspace(-100.0, -20.0, 1024).astype(np.float32)
    decoded = protocol.decode_fft_frame(fft_payload(values_db)[1:], 1024, "adpcm")
    # From the zero state the codec needs a few dozen samples to reach -100 dB x 100
    # (the padding covers part of that); then it follows the ramp to hundredths of a dB.
    assert np.max(np.abs(decoded[64:] - values_db[64:])) < 0.05
    with pytest.raises(protocol.FrameError, match="bytes"):
        protocol.decode_fft_frame(fft_payload(values_db)[1:-1], 1024, "adpcm")
    with pytest.raises(protocol.FrameError, match="NaN"):
        protocol.decode_fft_frame(np.array([np.nan, 0], "<f4").tobytes(), 2, "none")


def test_handshake_tunes_in_usb_inside_the_active_profile() -> None:
    recording, sent = started()
    messages = [json.loads(m) for m in sent]
    assert messages[0] == {
        "type": "connectionproperties",
        "params": {"output_rate": 12_000, "hd_output_rate": 48_000},
    }
    params = messages[1]["params"]
    assert params["mod"] == "usb"
    assert (params["low_cut"], params["high_cut"]) == (LOW_CUT_HZ, HIGH_CUT_HZ)
    assert params["offset_freq"] == 500_000 - TONE_OFFSET_HZ
    assert messages[2] == {"type": "dspcontrol", "action": "start"}
    assert recording.tuned


def test_a_frequency_outside_the_active_profile_selects_the_covering_one() -> None:
    recording = _AudioRecording("giaveno", 433.1e6, 1.0, STATUS)
    recording.handle_text("CLIENT DE SERVER server=openwebrx version=v1.2.2", 0)
    assert recording.handle_text(config(), 1) == []  # waits for the profile list
    sent = recording.handle_text(json.dumps(PROFILES), 2)
    assert json.loads(sent[0]) == {"type": "selectprofile", "params": {"profile": "rtl|70cm"}}
    tuned = recording.handle_text(config(433.5e6, "70cm"), 3)
    assert json.loads(tuned[0])["params"]["offset_freq"] == -400_000 - TONE_OFFSET_HZ


def test_no_covering_profile_is_out_of_range() -> None:
    recording = _AudioRecording("giaveno", 1.2e9, 1.0, STATUS)
    recording.handle_text("CLIENT DE SERVER server=openwebrx version=v1.2.2", 0)
    recording.handle_text(json.dumps(PROFILES), 1)
    with pytest.raises(ReceiverOutOfRange, match="no profile covers 1200.0000 MHz"):
        recording.handle_text(config(), 2)


def test_backoff_is_busy_and_a_band_change_abandons_the_recording() -> None:
    recording, _ = started()
    with pytest.raises(ReceiverBusy, match="Too many clients"):
        recording.handle_text('{"type": "backoff", "reason": "Too many clients"}', 3)
    with pytest.raises(ReceiverRetuned):
        recording.handle_text(config(433.5e6, "70cm"), 4)


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        ("not json", "not JSON"),
        ('{"type": "smeter", "value": -3}', "negative"),
        ('{"type": "smeter", "value": "loud"}', "not a number"),
        ('["no", "type"]', "type"),
    ],
)
def test_malformed_text_is_a_protocol_error(message: str, detail: str) -> None:
    recording, _ = started()
    with pytest.raises(ReceiverProtocolError, match=detail):
        recording.handle_text(message, 3)


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        (b"", "empty"),
        (bytes([9, 1, 2]), "unknown type 9"),
        (bytes([1, 0, 0]), "FFT frame of 2 bytes"),
    ],
)
def test_malformed_binary_frames_are_protocol_errors(frame: bytes, detail: str) -> None:
    recording, _ = started()
    with pytest.raises(ReceiverProtocolError, match=detail):
        recording.handle_binary(frame, 3)


def test_memory_is_bounded_whatever_the_server_sends() -> None:
    recording, _ = started(duration_s=0.5)
    audio = bytes([2]) + bytes(4000)  # 8000 samples a message, 6000 wanted
    for arrival in range(10):
        recording.handle_binary(audio, arrival)
    assert recording.audio_received == 6000 == len(recording.audio)
    frame = fft_payload(np.full(1024, -90.0, dtype=np.float32))
    capacity = len(recording.fft_frames)
    for arrival in range(capacity + 5):
        recording.handle_binary(frame, arrival)
    assert recording.fft_kept == capacity and recording.fft_dropped == 5
    with pytest.raises(ReceiverProtocolError, match="messages besides audio"):
        for arrival in range(recording.max_other_messages + 1):
            recording.handle_text('{"type": "smeter", "value": 1e-6}', arrival)
