"""KiwiSDR driver: GPS-timestamped IQ over the receiver's websocket sound channel."""

from heimdall.receivers.kiwisdr.client import (
    DRIVER_NAME,
    DRIVER_VERSION,
    StationEndpoint,
    record_iq,
)

__all__ = ["DRIVER_NAME", "DRIVER_VERSION", "StationEndpoint", "record_iq"]
