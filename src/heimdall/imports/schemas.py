from __future__ import annotations

from pydantic import BaseModel, Field

from heimdall.acquisition.schemas import AcquireAccepted

#: The multipart body of ``POST /import``, for the OpenAPI document (the endpoint parses
#: it itself, to bound its size before reading it).
IMPORT_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "kiwirecorder IQ WAV files "
                        "(YYYYMMDDTHHMMSSZ_<Hz>_<station>_iq.wav) and/or SigMF pairs "
                        "(<name>.sigmf-meta with <name>.sigmf-data)",
                    },
                    "positions": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "receiver positions: YAML, CSV or kiwirecorder "
                        "gnss_pos/<station>.txt files",
                    },
                    "known_source_id": {
                        "type": "string",
                        "format": "uuid",
                        "description": "the known transmitter recorded (ground truth)",
                    },
                    "description": {"type": "string", "maxLength": 1000},
                },
            }
        }
    },
}


class ImportedRecordingOut(BaseModel):
    file: str
    station_id: str
    new_station: bool = Field(description="not in the registry before: created, inactive")
    gps_timed: bool = Field(description="its blocks carry GPS time (TDOA possible)")
    duration_seconds: float
    sample_rate_hz: float = Field(description="fitted from the GPS stamps when it has them")


class ImportAccepted(AcquireAccepted):
    recordings: list[ImportedRecordingOut]
