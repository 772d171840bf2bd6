"""Apply Alembic migrations and seed the station registry, programmatically."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy.engine import make_url

from heimdall.core.db import libpq_url, session_scope
from heimdall.core.settings import Settings, get_settings

ALEMBIC_INI = Path(__file__).resolve().parents[3] / "alembic.ini"


def alembic_config(database_url: str | None = None) -> Config:
    # alembic.ini sits at the repository root in a checkout; an installed package
    # only has the migrations folder, which is all Alembic needs.
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    config.set_main_option("script_location", "heimdall:migrations")
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL if it does not exist; True if created.

    A fresh machine has a PostgreSQL server but not our database; creating it is
    what an operator would do by hand before the first migration.
    """
    url = make_url(database_url)
    admin_url = libpq_url(url.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)
        ).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database or "")))
        return True


def upgrade(database_url: str | None = None) -> None:
    command.upgrade(alembic_config(database_url), "head")


def migrate_and_seed(settings: Settings | None = None) -> int:
    """Upgrade to head and upsert the stations of the configured registry; returns their count."""
    from heimdall.stations.service import seed_stations

    settings = settings or get_settings()
    ensure_database(settings.sync_database_url)
    upgrade(settings.sync_database_url)
    with session_scope() as session:
        return len(seed_stations(session, settings.stations_file))
