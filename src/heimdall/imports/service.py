"""Imports on the API side: check the files, find their stations, stage them, insert the row.

``prepare_import`` is pure CPU work (run it in a thread): every file read and checked,
every station found, or :class:`ImportRejected` with one error per bad file.
``stage_import`` writes the staged recordings (blocking S3), ``insert_import`` the
PENDING acquisition of kind ``import`` (flushes; the endpoint commits).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition import repository as acquisition_repository
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore
from heimdall.imports.positions import PositionsError, StationPosition, parse_positions
from heimdall.imports.recordings import (
    FileError,
    ImportedRecording,
    KnownStation,
    NamedFile,
    ResolvedStation,
    read_recordings,
    resolve_stations,
)
from heimdall.imports.staging import (
    Manifest,
    StagedRecording,
    stage_recording,
    staging_prefix,
    write_manifest,
)
from heimdall.models import Acquisition, AcquisitionSource, AcquisitionState, KnownSource
from heimdall.stations import repository as stations_repository

#: What a KiwiSDR tunes; an imported KiwiSDR station also covers its recording's band.
KIWISDR_RANGE_MHZ = (0.01, 30.0)
#: Longest recording an import takes (the acquisitions table's limit for imports).
MAX_IMPORT_DURATION_S = 86_400.0


class ImportRejected(ValueError):
    """Files that cannot be imported, each with its reason."""

    def __init__(self, errors: Sequence[FileError]) -> None:
        self.errors = list(errors)
        count = len(self.errors)
        super().__init__(
            f"{count} file{'s' if count > 1 else ''} cannot be imported (nothing was): "
            + "; ".join(str(e) for e in self.errors)
        )


@dataclass(frozen=True, slots=True)
class PreparedImport:
    """Checked recordings (``capture.station_id`` = their station's id) and their stations."""

    recordings: list[ImportedRecording]
    stations: dict[str, ResolvedStation]

    @property
    def frequency_hz(self) -> float:
        return self.recordings[0].capture.center_frequency_hz

    @property
    def duration_s(self) -> float:
        return max(r.capture.duration_s for r in self.recordings)

    @property
    def station_ids(self) -> list[str]:
        return sorted(s.id for s in self.stations.values())


def read_positions(
    files: Sequence[NamedFile],
) -> tuple[dict[str, StationPosition], list[FileError]]:
    positions: dict[str, StationPosition] = {}
    errors = []
    for file in files:
        try:
            found = parse_positions(file.data.decode("utf-8"), file.name)
        except UnicodeDecodeError:
            errors.append(FileError(file.name, "not UTF-8 text: not a positions file"))
            continue
        except PositionsError as exc:
            errors.append(FileError(file.name, str(exc).removeprefix(f"{file.name}: ")))
            continue
        for key, position in found.items():
            if key in positions and positions[key] != position:
                errors.append(FileError(file.name, f"station {position.name!r} given again"))
            positions[key] = position
    return positions, errors


def prepare_import(
    files: Sequence[NamedFile],
    positions_files: Sequence[NamedFile],
    registry: Sequence[KnownStation],
) -> PreparedImport:
    """Every file read and checked and every station found, or ImportRejected naming each
    bad file (all of them at once)."""
    positions, errors = read_positions(positions_files)
    recordings, reading_errors = read_recordings(files)
    errors += reading_errors
    errors += [
        FileError(r.source, f"too long: {r.capture.duration_s:.0f} s (at most a day)")
        for r in recordings
        if r.capture.duration_s > MAX_IMPORT_DURATION_S
    ]
    stations, station_errors = resolve_stations(recordings, positions, registry)
    errors += station_errors
    owners: dict[str, str] = {}
    for source, station in stations.items():
        if station.id in owners:
            errors.append(
                FileError(source, f"station {station.id!r} is also in {owners[station.id]}")
            )
        owners.setdefault(station.id, source)
    if not files:
        errors.append(FileError("(request)", "no recording given"))
    if errors:
        raise ImportRejected(errors)
    recordings = [
        replace(r, capture=replace(r.capture, station_id=stations[r.source].id)) for r in recordings
    ]
    return PreparedImport(recordings, stations)


def new_station_row(station: ResolvedStation, recording: ImportedRecording) -> dict[str, Any]:
    """The registry row of a receiver first met in an import: inactive, marked imported."""
    capture = recording.capture
    half_band_mhz = capture.sample_rate_hz / 2e6
    band = (
        capture.center_frequency_hz / 1e6 - half_band_mhz,
        capture.center_frequency_hz / 1e6 + half_band_mhz,
    )
    ranges = [list(band)]
    if recording.kind == "kiwi-wav":
        ranges = [list(KIWISDR_RANGE_MHZ)]
        if not (KIWISDR_RANGE_MHZ[0] <= band[0] and band[1] <= KIWISDR_RANGE_MHZ[1]):
            ranges.append(list(band))  # behind a converter
    return {
        "id": station.id,
        "name": station.name,
        "url": station.url,
        "protocol": "kiwisdr" if recording.kind == "kiwi-wav" else "sigmf",
        "latitude": station.latitude,
        "longitude": station.longitude,
        "altitude_m": station.altitude_m,
        "frequency_ranges_mhz": ranges,
        "active": False,
        "source": "imported",
    }


def manifest_of(task_id: uuid.UUID, prepared: PreparedImport) -> Manifest:
    prefix = staging_prefix(task_id)
    staged = []
    new_stations = []
    for recording in prepared.recordings:
        station = prepared.stations[recording.source]
        staged.append(
            StagedRecording(
                source=recording.source,
                station_id=station.id,
                latitude=station.latitude,
                longitude=station.longitude,
                altitude_m=station.altitude_m,
                url=station.url,
                protocol="kiwisdr" if recording.kind == "kiwi-wav" else "sigmf",
                gps_timed=recording.capture.has_gps_time,
                data_key=f"{prefix}{station.id}.sigmf-data",
                meta_key=f"{prefix}{station.id}.sigmf-meta",
            )
        )
        if station.new:
            new_stations.append(new_station_row(station, recording))
    return Manifest(staged, new_stations)


def stage_import(
    store: ObjectStore, bucket: str, task_id: uuid.UUID, prepared: PreparedImport
) -> Manifest:
    """Write the staged recordings and their manifest (blocking); on failure, nothing stays."""
    manifest = manifest_of(task_id, prepared)
    try:
        for staged, recording in zip(manifest.recordings, prepared.recordings, strict=True):
            stage_recording(store, bucket, task_id, staged, recording.capture)
        write_manifest(store, bucket, task_id, manifest)
    except Exception:
        remove_staged(store, bucket, task_id)
        raise
    return manifest


def remove_staged(store: ObjectStore, bucket: str, task_id: uuid.UUID) -> None:
    """Best effort: what is left is removed when the sweeper cleans the acquisition up."""
    try:
        store.delete_prefix(bucket, staging_prefix(task_id))
    except Exception:  # the store is what failed; nothing more to do from here
        return


async def known_stations(session: AsyncSession) -> list[KnownStation]:
    return [
        KnownStation(s.id, s.name, s.latitude, s.longitude, s.altitude_m)
        for s in await stations_repository.all_stations(session)
    ]


async def check_known_source(session: AsyncSession, known_source_id: uuid.UUID | None) -> None:
    if known_source_id is not None and await session.get(KnownSource, known_source_id) is None:
        raise ImportRejected([FileError("known_source_id", f"no known source {known_source_id}")])


async def insert_import(
    session: AsyncSession,
    task_id: uuid.UUID,
    prepared: PreparedImport,
    *,
    description: str | None,
    known_source_id: uuid.UUID | None,
    settings: Settings,
) -> Acquisition:
    """The PENDING acquisition of the staged import (flushes; the caller commits)."""
    sources = ", ".join(r.source for r in prepared.recordings)
    acquisition = Acquisition(
        task_id=task_id,
        frequency_mhz=prepared.frequency_hz / 1e6,
        duration_seconds=prepared.duration_s,
        description=description or f"import of {sources}"[:1000],
        station_ids=prepared.station_ids,
        status=AcquisitionState.PENDING.value,
        progress=0.0,
        errors=[],
        # The worker takes it at once; this bounds a worker that never does.
        deadline_at=datetime.now(UTC)
        + timedelta(
            seconds=settings.acquisition_max_wait_s + settings.acquisition_finish_allowance_s
        ),
        known_source_id=known_source_id,
        source=AcquisitionSource.imported.value,
    )
    await acquisition_repository.insert_new(session, acquisition)
    return acquisition
