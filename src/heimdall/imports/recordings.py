"""A set of uploaded files -> the recordings of one import, each with its station.

Pure: named bytes in, captures and per-file errors out. A ``.wav`` is a kiwirecorder IQ
WAV, a ``.sigmf-meta`` goes with the ``.sigmf-data`` of the same stem. Every problem
is an error naming its file; the import goes ahead only when there is none, so a bad
file never leaves half an import behind.

Stations: a recording names its receiver (the kiwirecorder file name, SigMF's
``heimdall:station_id`` or the file stem). It is the registry's station of that id or
name when there is one (and a position given for it must agree), else a new imported
station at the position the positions files or the recording itself give.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Literal

from pyproj import Geod

from heimdall.dsp.measurement import MIN_MEASURE_SAMPLES
from heimdall.imports.kiwi_wav import (
    KiwiWavError,
    capture_from_kiwi_wav,
    parse_kiwi_wav_name,
    read_kiwi_wav,
)
from heimdall.imports.positions import StationPosition, station_key
from heimdall.imports.sigmf_reader import SigMFImportError, read_sigmf_pair
from heimdall.imports.timing import timed_capture
from heimdall.receivers.capture import IQCapture

Kind = Literal["kiwi-wav", "sigmf"]
META_SUFFIX = ".sigmf-meta"
DATA_SUFFIX = ".sigmf-data"
#: Recordings of one import are of one tuning: their centre frequencies agree this well.
FREQUENCY_TOLERANCE_HZ = 1.0
#: A registry station and a position given for it farther apart than this are two places.
POSITION_TOLERANCE_M = 1_000.0
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True, slots=True)
class NamedFile:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class FileError:
    file: str
    error: str

    def __str__(self) -> str:
        return f"{self.file}: {self.error}"


@dataclass(frozen=True, slots=True)
class ImportedRecording:
    source: str
    kind: Kind
    #: The receiver as the file names it.
    station: str
    #: ``station_id`` is the registry id the station gets (see :func:`station_id_for`).
    capture: IQCapture
    #: (latitude, longitude, altitude_m) the recording itself carries (SigMF), if any.
    position: tuple[float, float, float] | None = None


def base_name(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name


def station_id_for(station: str) -> str:
    """A registry id for a station name: lower case, ``[a-z0-9_-]``, at most 64 characters.

    >>> station_id_for("DF0KL/2 Bonn")
    'df0kl-2-bonn'
    """
    slug = re.sub(r"[^a-z0-9_-]+", "-", station.strip().lower()).strip("-_")[:64]
    if not slug:
        raise ValueError(f"station name {station!r} has no letter or digit")
    return slug


def _kiwi(file: NamedFile) -> ImportedRecording:
    name = parse_kiwi_wav_name(file.name)
    wav = read_kiwi_wav(file.data)
    capture = capture_from_kiwi_wav(
        wav, name, station_id=station_id_for(name.station), source_file=base_name(file.name)
    )
    return ImportedRecording(base_name(file.name), "kiwi-wav", name.station, capture)


def _sigmf(meta: NamedFile, data: NamedFile) -> ImportedRecording:
    stem = base_name(meta.name)[: -len(META_SUFFIX)]
    found = read_sigmf_pair(meta.data, data.data, stem=stem)
    capture = replace(found.capture, station_id=station_id_for(found.station))
    return ImportedRecording(
        f"{stem}{META_SUFFIX}", "sigmf", found.station, capture, found.position
    )


def _read_one(files: list[NamedFile]) -> ImportedRecording:
    if len(files) == 2:
        return _sigmf(*files)
    return _kiwi(files[0])


def _groups(files: Sequence[NamedFile]) -> tuple[list[list[NamedFile]], list[FileError]]:
    """Each recording's files (a .wav, or a SigMF meta + data), and files that fit none."""
    groups: list[list[NamedFile]] = []
    errors: list[FileError] = []
    metas: dict[str, NamedFile] = {}
    datas: dict[str, NamedFile] = {}
    seen: set[str] = set()
    for file in files:
        name = base_name(file.name)
        lower = name.lower()
        if name in seen:
            errors.append(FileError(name, "given twice"))
            continue
        seen.add(name)
        if lower.endswith(".wav"):
            groups.append([file])
        elif lower.endswith(META_SUFFIX):
            metas[name[: -len(META_SUFFIX)]] = file
        elif lower.endswith(DATA_SUFFIX):
            datas[name[: -len(DATA_SUFFIX)]] = file
        else:
            errors.append(
                FileError(name, "not a kiwirecorder .wav nor a .sigmf-meta/.sigmf-data file")
            )
    for stem, meta in metas.items():
        if stem in datas:
            groups.append([meta, datas.pop(stem)])
        else:
            errors.append(FileError(base_name(meta.name), f"no {stem}{DATA_SUFFIX} with it"))
    errors += [
        FileError(base_name(d.name), f"no {s}{META_SUFFIX} with it") for s, d in datas.items()
    ]
    return groups, errors


def read_recordings(files: Sequence[NamedFile]) -> tuple[list[ImportedRecording], list[FileError]]:
    """Every file read and checked; the recordings only count when ``errors`` is empty."""
    groups, errors = _groups(files)
    recordings: list[ImportedRecording] = []
    for group in groups:
        source = base_name(group[0].name)
        try:
            recording = _read_one(group)
        except (KiwiWavError, SigMFImportError, ValueError) as exc:
            errors.append(FileError(source, str(exc)))
            continue
        if len(recording.capture.samples) < MIN_MEASURE_SAMPLES:
            errors.append(
                FileError(
                    source,
                    f"too short to measure: {len(recording.capture.samples)} samples "
                    f"(at least {MIN_MEASURE_SAMPLES})",
                )
            )
            continue
        # PHASE 2 SEAM: timestamp hygiene (imports.timing) fits the sample clock here.
        recordings.append(replace(recording, capture=timed_capture(recording.capture)))
    errors += _set_errors(recordings)
    return recordings, errors


def _set_errors(recordings: list[ImportedRecording]) -> list[FileError]:
    """What makes recordings unable to be one acquisition: one tuning, one file per station."""
    errors = []
    owners: dict[str, str] = {}
    for r in recordings:
        station_id = r.capture.station_id
        if station_id in owners:
            errors.append(
                FileError(r.source, f"station {r.station!r} is also in {owners[station_id]}")
            )
        owners.setdefault(station_id, r.source)
    if recordings:
        common_hz, _ = Counter(r.capture.center_frequency_hz for r in recordings).most_common(1)[0]
        errors += [
            FileError(
                r.source,
                f"tuned to {r.capture.center_frequency_hz:.0f} Hz, the others to {common_hz:.0f} Hz",
            )
            for r in recordings
            if abs(r.capture.center_frequency_hz - common_hz) > FREQUENCY_TOLERANCE_HZ
        ]
    return errors


@dataclass(frozen=True, slots=True)
class KnownStation:
    """What station resolution needs of a registry row."""

    id: str
    name: str
    latitude: float
    longitude: float
    altitude_m: float


@dataclass(frozen=True, slots=True)
class ResolvedStation:
    id: str
    name: str
    latitude: float
    longitude: float
    altitude_m: float
    url: str = ""
    #: Not in the registry: created (imported, inactive) with the import's measurements.
    new: bool = False


def _registry_match(station: str, registry: Sequence[KnownStation]) -> KnownStation | None:
    key = station_key(station)
    slug = station_id_for(station)
    for known in registry:
        if known.id == slug or key in (station_key(known.id), station_key(known.name)):
            return known
    return None


def _given_position(
    recording: ImportedRecording, positions: Mapping[str, StationPosition]
) -> StationPosition | None:
    given = positions.get(station_key(recording.station))
    if given is None and recording.position is not None:
        latitude, longitude, altitude_m = recording.position
        given = StationPosition(recording.station, latitude, longitude, altitude_m)
    return given


def resolve_stations(
    recordings: Sequence[ImportedRecording],
    positions: Mapping[str, StationPosition],
    registry: Sequence[KnownStation],
) -> tuple[dict[str, ResolvedStation], list[FileError]]:
    """Each recording's station (by its ``source``), and the recordings that have none.

    Positions files win over a position the recording carries; a registry station keeps
    its own position, and a different one given for it (beyond 1 km) is an error.
    """
    resolved: dict[str, ResolvedStation] = {}
    errors: list[FileError] = []
    for recording in recordings:
        known = _registry_match(recording.station, registry)
        given = _given_position(recording, positions)
        if known is not None:
            if given is not None:
                _, _, apart_m = _GEOD.inv(
                    known.longitude, known.latitude, given.longitude, given.latitude
                )
                if apart_m > POSITION_TOLERANCE_M:
                    errors.append(
                        FileError(
                            recording.source,
                            f"station {known.id!r} is in the registry at {known.latitude:.5f}, "
                            f"{known.longitude:.5f}; the position given for it is "
                            f"{apart_m / 1000:.1f} km away",
                        )
                    )
                    continue
            resolved[recording.source] = ResolvedStation(
                known.id, known.name, known.latitude, known.longitude, known.altitude_m
            )
        elif given is not None:
            resolved[recording.source] = ResolvedStation(
                recording.capture.station_id,
                recording.station,
                given.latitude,
                given.longitude,
                given.altitude_m,
                given.url,
                new=True,
            )
        else:
            errors.append(
                FileError(
                    recording.source,
                    f"no position for station {recording.station!r}: give it in a positions "
                    "file (YAML, CSV or kiwirecorder's gnss_pos/<station>.txt) or the registry",
                )
            )
    return resolved, errors
