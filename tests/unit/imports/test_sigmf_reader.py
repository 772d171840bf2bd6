"""SigMF recordings made elsewhere (and Heimdall's own) read as captures."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from heimdall.dsp.signals import make_capture
from heimdall.imports.sigmf_reader import SigMFImportError, datetime_ns, read_sigmf_pair
from heimdall.receivers.sigmf_io import encode_ci16_le, sigmf_metadata

START_NS = 1_717_243_200_000_000_000  # 2024-06-01T12:00:00Z


def foreign(datatype: str = "cf32_le", **global_extra: Any) -> dict[str, Any]:
    """The metadata an SDR program would write: no heimdall: fields."""
    return {
        "global": {
            "core:datatype": datatype,
            "core:sample_rate": 48_000.0,
            "core:version": "1.2.0",
            "core:geolocation": {"type": "Point", "coordinates": [7.0982, 50.7331, 60.0]},
            **global_extra,
        },
        "captures": [
            {
                "core:sample_start": 0,
                "core:frequency": 433_920_000.0,
                "core:datetime": "2024-06-01T12:00:00.000000250Z",
            }
        ],
        "annotations": [],
    }


def cf32(count: int) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(2)
    samples = (rng.normal(size=count) + 1j * rng.normal(size=count)).astype(np.complex64)
    return samples, samples.astype("<c8").tobytes()


def pair(metadata: dict[str, Any], data: bytes) -> tuple[bytes, bytes]:
    return json.dumps(metadata).encode(), data


def test_a_foreign_recording_gives_samples_time_and_position_but_no_gps_time() -> None:
    samples, data = cf32(3000)
    found = read_sigmf_pair(*pair(foreign(), data), stem="bonn-rtl")
    capture = found.capture
    np.testing.assert_array_equal(capture.samples, samples)
    assert found.station == "bonn-rtl"
    assert found.position == (50.7331, 7.0982, 60.0)
    assert capture.center_frequency_hz == 433_920_000.0
    assert capture.sample_rate_hz == 48_000.0
    assert capture.block_time_ns[0] == START_NS + 250  # nanoseconds of core:datetime kept
    assert capture.block_start_index.tolist() == [0, 512, 1024, 1536, 2048, 2560]
    assert not capture.has_gps_time  # nothing says its clock is GPS-disciplined


def test_gps_locked_extension_makes_the_datetime_a_gps_time() -> None:
    _, data = cf32(2048)
    metadata = foreign(**{"heimdall:gps_locked": True})
    capture = read_sigmf_pair(*pair(metadata, data), stem="x").capture
    assert capture.has_gps_time
    assert capture.block_time_ns[1] - capture.block_time_ns[0] == round(512 * 1e9 / 48_000)


def test_other_datatypes_read_through_the_sigmf_package() -> None:
    raw = np.array([[255, 0], [128, 128]], dtype=np.uint8)  # cu8: offset binary
    capture = read_sigmf_pair(*pair(foreign("cu8"), raw.tobytes()), stem="x").capture
    np.testing.assert_allclose(capture.samples, [127 / 128 - 1j, 0j])


def test_heimdalls_own_recording_keeps_its_block_stamps() -> None:
    samples = (np.exp(2j * np.pi * 0.01 * np.arange(4096)) * 0.1).astype(np.complex64)
    original = make_capture(samples, 12_001.135, station_id="torino", start_time_ns=START_NS)
    rssi = original.rssi_dbm.copy()
    rssi[1] = -87.5
    original = replace(original, rssi_dbm=rssi)
    meta = sigmf_metadata(original, latitude=45.044, longitude=7.672, altitude_m=250.0)
    assert meta["captures"][0]["heimdall:rssi_dbm"][0] is None  # no reading: null, not NaN
    found = read_sigmf_pair(
        json.dumps(meta).encode(), encode_ci16_le(original.samples), stem="anything"
    )
    assert found.station == "torino"
    np.testing.assert_array_equal(found.capture.block_time_ns, original.block_time_ns)
    np.testing.assert_array_equal(found.capture.block_gps_status, original.block_gps_status)
    assert found.capture.rssi_dbm[1] == np.float32(-87.5) and np.isnan(found.capture.rssi_dbm[0])
    assert found.capture.sample_rate_hz == 12_001.135
    assert found.capture.has_gps_time


def test_datetime_fractions() -> None:
    assert datetime_ns("2024-06-01T12:00:00Z") == START_NS
    assert datetime_ns("2024-06-01T14:00:00.5+02:00") == START_NS + 500_000_000
    with pytest.raises(SigMFImportError, match="ISO 8601"):
        datetime_ns("yesterday")


def _without(key: str) -> dict[str, Any]:
    metadata = foreign()
    metadata["captures"][0].pop(key)
    return metadata


def _checksummed(data: bytes) -> dict[str, Any]:
    return foreign(**{"core:sha512": hashlib.sha512(data + b"x").hexdigest()})


def _retuned() -> dict[str, Any]:
    metadata = foreign()
    metadata["captures"].append({"core:sample_start": 512, "core:frequency": 1e6})
    return metadata


_, GOOD = cf32(2048)


@pytest.mark.parametrize(
    ("meta", "data", "reason"),
    [
        (b"{not json", GOOD, "not JSON"),
        (b"[]", GOOD, "no 'global' object"),
        (json.dumps({"global": {}, "captures": []}).encode(), GOOD, "no capture segment"),
        (foreign("rf32_le"), GOOD, "real-valued"),
        (foreign("cq7_le"), GOOD, "not a SigMF datatype"),
        (foreign(**{"core:num_channels": 2}), GOOD, "multi-channel"),
        (foreign(), b"", "empty"),
        (foreign(), GOOD[:-3], "not whole cf32_le samples"),
        (_checksummed(GOOD), GOOD, "cannot read it: .*hash"),
        (_without("core:datetime"), GOOD, "no core:datetime"),
        (_without("core:frequency"), GOOD, "core:frequency"),
        (_retuned(), GOOD, "different frequencies"),
        (foreign(**{"core:geolocation": {"type": "Point"}}), GOOD, "not a GeoJSON point"),
    ],
)
def test_unreadable_pairs_say_why(meta: Any, data: bytes, reason: str) -> None:
    meta_bytes = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    with pytest.raises(SigMFImportError, match=reason):
        read_sigmf_pair(meta_bytes, data, stem="x")
