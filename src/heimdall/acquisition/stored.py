"""The objects of a stored recording: a SigMF pair, written data first, metadata last."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from heimdall.core.storage import ObjectStore

#: A recording's SigMF metadata up to this size (JSON bytes) is also kept in its
#: measurement row (``Measurement.sigmf_meta``): a 5 s KiwiSDR capture's is about 5 kB,
#: and this holds about 35 s of block stamps. The localization then reads the samples
#: only, one GET per recording (issue 13); longer recordings' rows stay small, and their
#: metadata is read from the object as before.
META_IN_ROW_MAX_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class StoredRecording:
    """Where a recording was written, and its metadata when small enough for its row."""

    data_url: str
    meta_url: str
    meta_in_row: dict[str, Any] | None


def write_sigmf_pair(
    store: ObjectStore, bucket: str, stem: str, data: bytes, meta: dict[str, Any]
) -> StoredRecording:
    """Write ``data`` then ``meta`` (last, so a reader never finds meta without data)."""
    document = json.dumps(meta).encode()
    data_ref = store.put_bytes(bucket, f"{stem}.sigmf-data", data)
    meta_ref = store.put_bytes(
        bucket, f"{stem}.sigmf-meta", document, content_type="application/json"
    )
    small = len(document) <= META_IN_ROW_MAX_BYTES
    return StoredRecording(data_ref.url, meta_ref.url, meta if small else None)
