"""OpenWebRX driver: demodulated audio, spectrum frames and S-meter over the receiver's websocket."""

from heimdall.receivers.openwebrx.client import (
    DRIVER_NAME,
    DRIVER_VERSION,
    StationEndpoint,
    record_audio,
)

__all__ = ["DRIVER_NAME", "DRIVER_VERSION", "StationEndpoint", "record_audio"]
