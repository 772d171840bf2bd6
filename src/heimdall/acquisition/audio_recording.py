"""Acquisition of OpenWebRX receivers: record, measure and store an audio capture.

The acquisition's recording loop (:mod:`heimdall.acquisition.recording`)
dispatches here by protocol and by capture type; everything specific to
audio captures lives in this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heimdall.acquisition.stored import StoredRecording, write_sigmf_pair
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore
from heimdall.dsp.audio_measurement import measure_audio
from heimdall.dsp.measurement import Measurement, measure
from heimdall.receivers.audio_sigmf_io import (
    SIDECAR_SUFFIX,
    audio_sigmf_metadata,
    encode_ri16_le,
    sidecar_bytes,
)
from heimdall.receivers.capture import AudioCapture, Capture
from heimdall.receivers.openwebrx import StationEndpoint, record_audio

if TYPE_CHECKING:
    from heimdall.acquisition.recording import StationTarget


async def record_openwebrx(
    target: StationTarget, *, frequency_hz: float, duration_s: float, settings: Settings
) -> AudioCapture:
    return await record_audio(
        StationEndpoint(target.id, target.url),
        frequency_hz=frequency_hz,
        duration_s=duration_s,
        connect_timeout_s=settings.receiver_connect_timeout_s,
        first_frame_timeout_s=settings.receiver_first_frame_timeout_s,
        stall_timeout_s=settings.receiver_stall_timeout_s,
    )


def measure_capture(capture: Capture) -> Measurement:
    """The measurement of any capture: IQ through ``dsp.measure``, audio through ``measure_audio``."""
    if isinstance(capture, AudioCapture):
        return measure_audio(capture)
    return measure(capture)


def store_audio_recording(
    store: ObjectStore,
    bucket: str,
    stem: str,
    target: StationTarget,
    capture: AudioCapture,
    measurement: Measurement,
    description: str | None,
) -> StoredRecording:
    """Audio SigMF pair plus the spectra/S-meter sidecar; the metadata last, naming the sidecar."""
    sidecar_key = f"{stem}{SIDECAR_SUFFIX}"
    meta = audio_sigmf_metadata(
        capture,
        latitude=target.latitude,
        longitude=target.longitude,
        altitude_m=target.altitude_m,
        sidecar_name=sidecar_key.rsplit("/", 1)[-1],
        measurement=measurement,
        description=description,
    )
    # The sidecar before the metadata that names it.
    store.put_bytes(bucket, sidecar_key, sidecar_bytes(capture))
    return write_sigmf_pair(store, bucket, stem, encode_ri16_le(capture.samples), meta)
