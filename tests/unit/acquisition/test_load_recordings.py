"""Reading recordings back: every GET at once, in order, failures raised as they are."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from heimdall.acquisition.recording import load_recording, start_loading
from heimdall.acquisition.stored import META_IN_ROW_MAX_BYTES, write_sigmf_pair
from heimdall.core.storage import ObjectRef, ObjectStoreError
from heimdall.dsp.signals import make_capture
from heimdall.receivers.sigmf_io import encode_ci16_le, sigmf_metadata

START_NS = 1_700_000_000_000_000_000


class FakeStore:
    """Objects in a dict; every GET waits at ``barrier`` when one is given."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.barrier = barrier
        self.gets: list[str] = []

    def put_bytes(self, bucket: str, key: str, data: bytes, **_: object) -> ObjectRef:
        self.objects[(bucket, key)] = data
        return ObjectRef(bucket, key)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        self.gets.append(key)
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
        captures = start_loading(store, urls, pool)()  # type: ignore[arg-type]
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
        start_loading(store, urls, pool)()  # type: ignore[arg-type]
    store.objects[("raw", "s/b.sigmf-data")] = b""
    store.objects[("raw", "s/a.sigmf-meta")] = b"{not json"
    with ThreadPoolExecutor(4) as pool, pytest.raises(ValueError):
        start_loading(store, urls, pool)()  # type: ignore[arg-type]


def test_a_row_carrying_its_metadata_costs_one_get_and_reads_the_same() -> None:
    store = FakeStore()
    urls = [_store_recording(store, s) for s in ("a", "b", "c")]
    metas = [json.loads(store.objects[("raw", f"s/{s}.sigmf-meta")]) for s in ("a", "b", "c")]
    with ThreadPoolExecutor(4) as pool:
        both = start_loading(store, urls, pool)()  # type: ignore[arg-type]
        store.gets.clear()
        # b's row predates the column (or its metadata was too long for the row).
        rows = start_loading(store, urls, pool, [metas[0], None, metas[2]])()  # type: ignore[arg-type]
    assert sorted(store.gets) == [
        "s/a.sigmf-data",
        "s/b.sigmf-data",
        "s/b.sigmf-meta",
        "s/c.sigmf-data",
    ]
    for read, fetched in zip(rows, both, strict=True):
        assert read.station_id == fetched.station_id
        np.testing.assert_array_equal(read.samples, fetched.samples)
        np.testing.assert_array_equal(read.block_time_ns, fetched.block_time_ns)
        np.testing.assert_array_equal(read.block_gps_status, fetched.block_gps_status)
        assert read.sample_rate_hz == fetched.sample_rate_hz
        assert read.start_time == fetched.start_time


def test_the_row_keeps_the_metadata_only_when_it_is_small() -> None:
    store = FakeStore()
    short = {"global": {}, "captures": [{"stamps": list(range(10))}]}
    written = write_sigmf_pair(store, "raw", "s/a", b"\x00" * 8, short)  # type: ignore[arg-type]
    assert written.meta_in_row == short
    assert json.loads(store.objects[("raw", "s/a.sigmf-meta")]) == short
    long = {"global": {}, "captures": [{"stamps": list(range(META_IN_ROW_MAX_BYTES // 4))}]}
    written = write_sigmf_pair(store, "raw", "s/b", b"\x00" * 8, long)  # type: ignore[arg-type]
    assert written.meta_in_row is None  # read from its object, as before
    assert written.meta_url == "s3://raw/s/b.sigmf-meta"
    assert json.loads(store.objects[("raw", "s/b.sigmf-meta")]) == long
