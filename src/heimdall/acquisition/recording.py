"""Record, measure and store one acquisition's receivers concurrently (worker side).

Every receiver runs as its own asyncio task: record IQ, measure it, write its
SigMF pair. A receiver that fails becomes an outcome with an error; the object
store failing, or the operator cancelling, stops them all.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heimdall.acquisition.audio_recording import (
    measure_capture,
    record_openwebrx,
    store_audio_recording,
)
from heimdall.core import metrics
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore, parse_s3_url
from heimdall.dsp.measurement import Measurement
from heimdall.receivers.capture import AudioCapture, Capture, IQCapture
from heimdall.receivers.errors import ReceiverError
from heimdall.receivers.kiwisdr import StationEndpoint, record_iq
from heimdall.receivers.sigmf_io import capture_from_sigmf, encode_ci16_le, sigmf_metadata

CANCEL_POLL_S = 0.25


class AcquisitionCancelled(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StationTarget:
    id: str
    url: str
    protocol: str
    latitude: float
    longitude: float
    altitude_m: float


@dataclass(frozen=True, slots=True)
class ReceiverOutcome:
    station_id: str
    error: str | None = None
    measurement: Measurement | None = None
    start_time: datetime | None = None
    sample_rate_hz: float | None = None
    sample_count: int | None = None
    gps_locked: bool = False
    data_url: str | None = None
    meta_url: str | None = None


def session_prefix(task_id: uuid.UUID) -> str:
    return f"sessions/{task_id}/"


async def record_station(
    target: StationTarget, *, frequency_hz: float, duration_s: float, settings: Settings
) -> Capture:
    if target.protocol == "openwebrx":
        # No IQ, no GPS time: audio, spectra and S-meter, for power and frequency.
        return await record_openwebrx(
            target, frequency_hz=frequency_hz, duration_s=duration_s, settings=settings
        )
    if target.protocol != "kiwisdr":
        raise ReceiverError(target.id, f"protocol {target.protocol!r} has no driver")
    return await record_iq(
        StationEndpoint(target.id, target.url, settings.receiver_password.get_secret_value()),
        frequency_hz=frequency_hz,
        duration_s=duration_s,
        connect_timeout_s=settings.receiver_connect_timeout_s,
        first_frame_timeout_s=settings.receiver_first_frame_timeout_s,
        stall_timeout_s=settings.receiver_stall_timeout_s,
    )


def store_recording(
    store: ObjectStore,
    bucket: str,
    task_id: uuid.UUID,
    target: StationTarget,
    capture: Capture,
    measurement: Measurement,
    description: str | None,
) -> tuple[str, str]:
    """Write the SigMF pair; the metadata last, so a reader never finds meta without data."""
    stem = f"{session_prefix(task_id)}{target.id}"
    if isinstance(capture, AudioCapture):
        return store_audio_recording(store, bucket, stem, target, capture, measurement, description)
    meta = sigmf_metadata(
        capture,
        latitude=target.latitude,
        longitude=target.longitude,
        altitude_m=target.altitude_m,
        measurement=measurement,
        description=description,
    )
    data_ref = store.put_bytes(bucket, f"{stem}.sigmf-data", encode_ci16_le(capture.samples))
    meta_ref = store.put_bytes(
        bucket, f"{stem}.sigmf-meta", json.dumps(meta).encode(), content_type="application/json"
    )
    return data_ref.url, meta_ref.url


def load_recording(store: ObjectStore, data_url: str, meta_url: str | None) -> IQCapture:
    """Read back a SigMF pair written by :func:`store_recording`."""
    data_ref = parse_s3_url(data_url)
    meta_ref = parse_s3_url(meta_url or data_url.replace("-data", "-meta"))
    metadata = json.loads(store.get_bytes(meta_ref.bucket, meta_ref.key))
    return capture_from_sigmf(metadata, store.get_bytes(data_ref.bucket, data_ref.key))


async def record_all(
    task_id: uuid.UUID,
    targets: list[StationTarget],
    *,
    frequency_hz: float,
    duration_s: float,
    description: str | None,
    settings: Settings,
    store: ObjectStore,
    on_finished: Callable[[ReceiverOutcome, int], None],
    is_cancelled: Callable[[], bool],
) -> list[ReceiverOutcome]:
    """Run every receiver; ``on_finished(outcome, finished_count)`` runs (in a thread) as each ends."""
    finished = 0
    for target in targets:  # at zero before a first failure, so rate() sees that failure
        metrics.websdr_failures_total.labels(websdr_id=target.id)

    async def one(target: StationTarget) -> ReceiverOutcome:
        nonlocal finished
        started = time.monotonic()
        try:
            capture = await record_station(
                target, frequency_hz=frequency_hz, duration_s=duration_s, settings=settings
            )
            metrics.iq_download_seconds.observe(max(0.0, time.monotonic() - started - duration_s))
            measurement = measure_capture(capture)
            data_url, meta_url = await asyncio.to_thread(
                store_recording,
                store,
                settings.s3_bucket_raw,
                task_id,
                target,
                capture,
                measurement,
                description,
            )
            outcome = ReceiverOutcome(
                station_id=target.id,
                measurement=measurement,
                start_time=capture.start_time,
                sample_rate_hz=capture.sample_rate_hz,
                sample_count=len(capture.samples),
                gps_locked=capture.has_gps_time,
                data_url=data_url,
                meta_url=meta_url,
            )
        except ReceiverError as exc:
            metrics.websdr_failures_total.labels(websdr_id=target.id).inc()
            outcome = ReceiverOutcome(station_id=target.id, error=str(exc))
        except ValueError as exc:  # the capture could not be measured
            metrics.websdr_failures_total.labels(websdr_id=target.id).inc()
            outcome = ReceiverOutcome(station_id=target.id, error=f"{target.id}: {exc}")
        finished += 1
        await asyncio.to_thread(on_finished, outcome, finished)
        return outcome

    async def watch_for_cancel() -> None:
        # The flag lives in PostgreSQL (the record of state), so it is polled.
        while not await asyncio.to_thread(is_cancelled):  # noqa: ASYNC110
            await asyncio.sleep(CANCEL_POLL_S)
        raise AcquisitionCancelled(str(task_id))

    receivers = [asyncio.create_task(one(t), name=f"receiver-{t.id}") for t in targets]
    watcher = asyncio.create_task(watch_for_cancel(), name="cancel-watcher")
    gathered: asyncio.Future[list[ReceiverOutcome]] = asyncio.gather(*receivers)
    try:
        pending: set[asyncio.Future[Any]] = {watcher, gathered}
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if watcher in done:
            watcher.result()  # raises AcquisitionCancelled
        return gathered.result()  # raises what a receiver could not handle (storage down)
    finally:
        watcher.cancel()
        for receiver in receivers:
            receiver.cancel()
        await asyncio.gather(watcher, gathered, return_exceptions=True)
