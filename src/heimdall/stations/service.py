"""The receiver registry: loaded from a YAML file, kept in ``websdr_stations``."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from heimdall.stations import repository
from heimdall.stations.schemas import StationIn, StationRegistryFile, StationStateOut


class RegistryFileError(ValueError):
    pass


def load_registry_file(path: Path) -> list[StationIn]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryFileError(f"cannot read station registry {path}: {exc}") from exc
    try:
        return StationRegistryFile.model_validate(raw).stations
    except ValidationError as exc:
        raise RegistryFileError(f"invalid station registry {path}:\n{exc}") from exc


def seed_stations(session: Session, path: Path) -> list[StationIn]:
    """Insert or update every station of the file (the caller commits)."""
    stations = load_registry_file(path)
    repository.upsert_many(session, stations)
    return stations


async def station_states(session: AsyncSession) -> list[StationStateOut]:
    """Live state of every active receiver, from the acquisitions that include it."""
    recording = await repository.recording_now(session)
    held = await repository.channels_held(session)
    channels = {s.id: s.channels for s in await repository.list_active(session)}
    states = []
    for station_id, task_id, errors, finished_at in await repository.last_finished(session):
        in_use = {"busy_channels": held.get(station_id, 0), "channels": channels.get(station_id)}
        error = next((e["error"] for e in errors or [] if e.get("station_id") == station_id), None)
        if station_id in recording:
            states.append(
                StationStateOut(
                    station_id=station_id,
                    state="recording",
                    task_id=recording[station_id],
                    last_finished_at=finished_at,
                    **in_use,
                )
            )
        else:
            states.append(
                StationStateOut(
                    station_id=station_id,
                    state="failed" if error else "idle",
                    task_id=task_id,
                    error=error,
                    last_finished_at=finished_at,
                    **in_use,
                )
            )
    return states
