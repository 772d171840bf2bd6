"""``POST /api/v1/acquisition/import``: recordings made elsewhere become an acquisition.

The request is checked whole before anything is kept: every file read, every station
found; one bad file is a 422 naming each bad file, and nothing is stored. A good import
is staged in object storage, inserted as a PENDING acquisition of kind ``import`` and
handed to the acquisition workers (202); from there it is followed like any other
acquisition (status, measurements, localization, review).

Limits: the whole body at most ``HEIMDALL_IMPORT_MAX_BYTES`` (413 beyond, counted as it
arrives), at most ``HEIMDALL_IMPORT_MAX_FILES`` files (400), recordings of one tuning,
each long enough to measure and at most a day long.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message

from heimdall.acquisition import ACQUIRE_TASK
from heimdall.acquisition import repository as acquisition_repository
from heimdall.acquisition.endpoints import accepted_response
from heimdall.acquisition.sweeper import publish
from heimdall.core import metrics
from heimdall.core.db import get_db_session
from heimdall.core.errors import DependencyUnavailable, problems
from heimdall.core.security import rate_limited, require_token
from heimdall.core.settings import Settings, get_settings
from heimdall.core.storage import ObjectStore, ObjectStoreError
from heimdall.imports import service
from heimdall.imports.recordings import NamedFile
from heimdall.imports.schemas import IMPORT_REQUEST_BODY, ImportAccepted, ImportedRecordingOut

router = APIRouter(prefix="/api/v1/acquisition", tags=["acquisition"])
Session = Annotated[AsyncSession, Depends(get_db_session)]

ENQUEUE_TIMEOUT_S = 10.0
FILE_FIELDS = ("files", "positions")
TEXT_FIELDS = ("known_source_id", "description")
MAX_DESCRIPTION_LENGTH = 1000


class _BodyTooLarge(Exception):
    pass


def _too_large(settings: Settings) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"an import is at most {settings.import_max_bytes} bytes (HEIMDALL_IMPORT_MAX_BYTES)",
    )


async def _form(request: Request, settings: Settings) -> FormData:
    """The multipart form, refused as soon as the body grows past the import limit."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send multipart/form-data: files (repeated), positions (repeated), "
            "known_source_id, description",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.import_max_bytes:
        raise _too_large(settings)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > settings.import_max_bytes:
            raise _BodyTooLarge
        return message

    try:
        return await Request(request.scope, receive).form(
            max_files=settings.import_max_files,
            max_fields=len(TEXT_FIELDS),
            max_part_size=64 * 1024,
        )
    except _BodyTooLarge:
        raise _too_large(settings) from None


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


async def _fields(
    form: FormData,
) -> tuple[list[NamedFile], list[NamedFile], uuid.UUID | None, str | None]:
    files: dict[str, list[NamedFile]] = {name: [] for name in FILE_FIELDS}
    texts: dict[str, str] = {}
    for key, value in form.multi_items():
        if key in FILE_FIELDS:
            if not isinstance(value, UploadFile):
                raise _unprocessable(f"{key} must be a file, not a text field")
            files[key].append(NamedFile(value.filename or key, await value.read()))
        elif key in TEXT_FIELDS and isinstance(value, str) and key not in texts:
            texts[key] = value
        else:
            raise _unprocessable(f"unexpected form field {key!r} (or given twice)")
    known_source_id = None
    if texts.get("known_source_id"):
        try:
            known_source_id = uuid.UUID(texts["known_source_id"])
        except ValueError:
            raise _unprocessable("known_source_id is not a UUID") from None
    description = texts.get("description") or None
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise _unprocessable(f"description longer than {MAX_DESCRIPTION_LENGTH} characters")
    if description is not None and "\x00" in description:
        raise _unprocessable("description contains a NUL character")
    return files["files"], files["positions"], known_source_id, description


@router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportAccepted,
    dependencies=[Depends(require_token), Depends(rate_limited("import"))],
    openapi_extra={"requestBody": IMPORT_REQUEST_BODY},
    responses=problems(
        s400="More files or fields than allowed (HEIMDALL_IMPORT_MAX_FILES)",
        s413="Larger than HEIMDALL_IMPORT_MAX_BYTES",
        s415="Not multipart/form-data",
        s422="Files that cannot be imported, each with its reason",
        s503="Object storage, the database or the broker is down",
    ),
)
async def import_recordings(request: Request, session: Session) -> ImportAccepted:
    """Import kiwirecorder IQ WAV files and/or SigMF pairs as one acquisition."""
    settings = get_settings()
    form = await _form(request, settings)
    try:
        files, positions, known_source_id, description = await _fields(form)
    finally:
        await form.close()
    try:
        async with session.begin():
            registry = await service.known_stations(session)
            await service.check_known_source(session, known_source_id)
        prepared = await asyncio.to_thread(service.prepare_import, files, positions, registry)
    except service.ImportRejected as exc:
        raise _unprocessable(str(exc)) from exc
    del files, positions  # the captures hold what is needed from here on
    task_id = uuid.uuid4()
    store = ObjectStore(settings)
    bucket = settings.s3_bucket_raw
    try:
        await asyncio.to_thread(service.stage_import, store, bucket, task_id, prepared)
    except ObjectStoreError as exc:
        raise DependencyUnavailable(f"import not staged: {exc}") from exc
    try:
        async with session.begin():
            acquisition = await service.insert_import(
                session,
                task_id,
                prepared,
                description=description,
                known_source_id=known_source_id,
                settings=settings,
            )
    except BaseException:
        await asyncio.to_thread(service.remove_staged, store, bucket, task_id)
        raise
    # Published only after the commit, so the worker always finds the row it is given.
    try:
        async with asyncio.timeout(ENQUEUE_TIMEOUT_S):
            await asyncio.to_thread(publish, ACQUIRE_TASK, [str(task_id)])
    except Exception as exc:
        async with session.begin():
            await acquisition_repository.remove(session, task_id)  # no orphan row
        await asyncio.to_thread(service.remove_staged, store, bucket, task_id)
        raise DependencyUnavailable(
            f"RabbitMQ message broker unavailable, import not queued: {type(exc).__name__}"
        ) from exc
    metrics.acquisitions_total.inc()
    return ImportAccepted(
        **accepted_response(acquisition).model_dump(),
        recordings=[
            ImportedRecordingOut(
                file=r.source,
                station_id=r.capture.station_id,
                new_station=prepared.stations[r.source].new,
                gps_timed=r.capture.has_gps_time,
                duration_seconds=round(r.capture.duration_s, 3),
                sample_rate_hz=r.capture.sample_rate_hz,
            )
            for r in prepared.recordings
        ],
    )
