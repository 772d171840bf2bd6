"""Staged imports: checked recordings in object storage, waiting for the acquisition task.

The API writes every recording of an import as a SigMF pair under
``imports/{task_id}/`` and a ``manifest.json`` naming them with their stations, and
only then inserts the PENDING acquisition. The acquisition task reads them back
(``imports.ingest``), measures them and stores them under ``sessions/{task_id}/`` like
any recording. The staging prefix goes when the import ends, whatever the end.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from heimdall.core.storage import ObjectStore
from heimdall.receivers.capture import IQCapture
from heimdall.receivers.sigmf_io import encode_ci16_le, sigmf_metadata

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def staging_prefix(task_id: uuid.UUID) -> str:
    return f"imports/{task_id}/"


@dataclass(frozen=True, slots=True)
class StagedRecording:
    """One staged recording and the station it belongs to."""

    source: str
    station_id: str
    latitude: float
    longitude: float
    altitude_m: float
    url: str
    protocol: str
    gps_timed: bool
    data_key: str
    meta_key: str


@dataclass(frozen=True, slots=True)
class Manifest:
    recordings: list[StagedRecording]
    #: ``websdr_stations`` rows to create with the measurements (receivers not yet known).
    new_stations: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> bytes:
        document = {
            "version": MANIFEST_VERSION,
            "recordings": [asdict(r) for r in self.recordings],
            "new_stations": self.new_stations,
        }
        return json.dumps(document).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        document = json.loads(data)
        if document.get("version") != MANIFEST_VERSION:
            raise ValueError(f"import manifest version {document.get('version')!r} unknown")
        return cls(
            [StagedRecording(**r) for r in document["recordings"]],
            list(document["new_stations"]),
        )


def stage_recording(
    store: ObjectStore, bucket: str, task_id: uuid.UUID, staged: StagedRecording, capture: IQCapture
) -> None:
    """One recording's SigMF pair (blocking: encoding and S3)."""
    meta = sigmf_metadata(
        capture,
        latitude=staged.latitude,
        longitude=staged.longitude,
        altitude_m=staged.altitude_m,
        description=f"imported from {staged.source}",
    )
    store.put_bytes(bucket, staged.data_key, encode_ci16_le(capture.samples))
    store.put_bytes(
        bucket, staged.meta_key, json.dumps(meta).encode(), content_type="application/json"
    )


def write_manifest(store: ObjectStore, bucket: str, task_id: uuid.UUID, manifest: Manifest) -> None:
    store.put_bytes(
        bucket,
        staging_prefix(task_id) + MANIFEST_NAME,
        manifest.to_json(),
        content_type="application/json",
    )


def read_manifest(store: ObjectStore, bucket: str, task_id: uuid.UUID) -> Manifest:
    return Manifest.from_json(store.get_bytes(bucket, staging_prefix(task_id) + MANIFEST_NAME))
