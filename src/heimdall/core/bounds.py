"""Bounds every API shares: identifiers, pagination, frequencies, durations.

A value outside them is a 422 naming the field, before any query runs: nothing
unbounded reaches PostgreSQL (an offset past 2**63 would be a 500 there), a receiver
(a 5e-324 s recording) or the log (a megabyte-long station id).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

#: Station ids as the registry files write them (heimdall.stations.schemas.StationIn).
STATION_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
STATION_ID_MAX_LENGTH = 64
#: The lowest and highest frequencies any supported receiver tunes (KiwiSDR from 10 kHz;
#: converters and OpenWebRX SDRs up to 6 GHz). A request is also checked against the
#: coverage of the receivers it names.
MIN_FREQUENCY_MHZ = 0.01
MAX_FREQUENCY_MHZ = 6000.0
#: Shorter recordings carry too few blocks for a power estimate or a TDOA lag.
MIN_DURATION_S = 0.5
MAX_OFFSET = 1_000_000

StationId = Annotated[
    str, Field(min_length=1, max_length=STATION_ID_MAX_LENGTH, pattern=STATION_ID_PATTERN)
]
StationIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=STATION_ID_MAX_LENGTH,
        pattern=STATION_ID_PATTERN,
        description="A station id of the registry",
    ),
]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows skipped")]
FrequencyQuery = Annotated[float | None, Query(ge=0, le=MAX_FREQUENCY_MHZ, description="MHz")]
#: Free text is stored in PostgreSQL, which refuses the NUL character in text.
NO_NUL = r"^[^\x00]*$"
