"""Reading recordings back: every GET at once, in order, failures raised as they are."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from heimdall.acquisition.recording import load_recording, load_recordings
from heimdall.core.storage import ObjectStoreError
from heimdall.dsp.signals import make_capture
from heimdall.receivers.sigmf_io import encode_ci16_le, sigmf_metadata

START_NS = 1_700_000_000_000_000_000


class FakeStore:
    """Objects in a dict; every GET waits at ``barrier`` when one is given."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.barrier = barrier

    def get_bytes(self, bucket: str, key: str) -> bytes:
        if self.barrier is not None:
            self.barrier.wait()
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise ObjectStoreError(f"no such object s3://{bucket}/{key}") from None


def _store_recording(store: FakeStore, station_id: str) -> tuple[str, str | None]:
    samples = (np.arange(1_024) % 7 - 3).astype(np.complex64) * np.complex64(0.01 + 0.02j)
    capture = make_capture(samples, 12_000.0, start_time_ns=START_NS, station_id=station_id)
    meta = sigmf_metadata(capture, latitude=45.0, longitude=7.0, altitude_m=0.0)
    store.objects[("raw", f"s/{station_id}.sigmf-data")] = encode_ci16_le(capture.samples)
    store.objects[("raw", f"s/{station_id}.sigmf-meta")] = json.dumps(meta).encode()
    return f"s3://raw/s/{station_id}.sigmf-data", f"s3://raw/s/{station_id}.sigmf-meta"


def test_every_get_is_in_flight_at_once_and_the_order_is_kept() -> None:
    # Three recordings, six GETs: any GET waiting for another to finish breaks the barrier.
    store = FakeStore(threading.Barrier(6, timeout=5))
    urls = [_store_recording(store, s) for s in ("a", "b", "c")]
    with ThreadPoolExecutor(6) as pool:
        captures = load_recordings(store, urls, pool)  # type: ignore[arg-type]
    assert [c.station_id for c in captures] == ["a", "b", "c"]
    store.barrier = None
    serial = load_recording(store, *urls[1])  # type: ignore[arg-type]
    np.testing.assert_array_equal(captures[1].samples, serial.samples)
    np.testing.assert_array_equal(captures[1].block_time_ns, serial.block_time_ns)


def test_a_missing_or_corrupt_object_fails_the_read() -> None:
    store = FakeStore()
    urls = [_store_recording(store, s) for s in ("a", "b")]
    del store.objects[("raw", "s/b.sigmf-data")]
    with ThreadPoolExecutor(4) as pool, pytest.raises(ObjectStoreError, match="b.sigmf-data"):
        load_recordings(store, urls, pool)  # type: ignore[arg-type]
    store.objects[("raw", "s/b.sigmf-data")] = b""
    store.objects[("raw", "s/a.sigmf-meta")] = b"{not json"
    with ThreadPoolExecutor(4) as pool, pytest.raises(ValueError):
        load_recordings(store, urls, pool)  # type: ignore[arg-type]
