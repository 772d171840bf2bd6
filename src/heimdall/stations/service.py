"""The receiver registry: loaded from a YAML file, kept in ``websdr_stations``."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlalchemy.orm import Session

from heimdall.stations import repository
from heimdall.stations.schemas import StationIn, StationRegistryFile


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
