"""The operator's loop from a terminal: review sessions, known sources, training, models."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from heimdall.cli.http import FINISHED, follow_progress, gateway, request


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _yes_no(value: object) -> str:
    return "–" if value is None else ("yes" if value else "no")


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A table whose first column, the id a user passes back (``--approve``,
    ``--known-source``, ``models activate``), is never cut: the others wrap instead."""
    table = Table(title=title)
    key_width = max((len(row[0]) for row in rows), default=0)
    table.add_column(columns[0], no_wrap=True, min_width=max(key_width, len(columns[0])))
    for column in columns[1:]:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


# --- review ---------------------------------------------------------------------------
def show_review_queue(console: Console, *, show_all: bool, limit: int) -> int:
    """Finished sessions awaiting a decision (or every session, newest first)."""
    params: dict[str, Any] = {"limit": limit}
    if not show_all:
        params["approval"] = "pending"
    page = request(console, "GET", f"{gateway('sessions')}/recent", params=params)
    if page is None:
        return 1
    items = [i for i in page["items"] if show_all or i["status"] in FINISHED]
    rows = []
    for i in items:
        fix = i["localization"]
        rows.append(
            (
                i["task_id"],
                i["timestamp"][:19].replace("T", " "),
                f"{i['frequency_mhz']:.4f}",
                i["status"],
                f"{i['websdr_count']}/{len(i['stations'])}",
                i["known_source_name"] or "–",
                "–" if fix is None else f"{fix['status']} ({fix['method'] or '–'})",
                i["approval"],
            )
        )
    columns = ("task id", "when", "MHz", "state", "rx", "known source", "fix", "approval")
    console.print(_table("Sessions" if show_all else "Sessions awaiting review", columns, rows))
    console.print(f"{len(items)} shown of {page['total']}")
    return 0


#: A session id may be given by its first characters, as with git: at least these many,
#: matched against the newest sessions (the most the listing returns at once).
MIN_ID_PREFIX = 4
PREFIX_SEARCH_SESSIONS = 500


def resolve_session_id(console: Console, given: str) -> str | None:
    """``given`` if it is a whole task id, else the one recent session whose id starts
    with it; None (and why, printed) when none or several do."""
    with contextlib.suppress(ValueError):
        return str(uuid.UUID(given))
    prefix = given.strip().lower()
    if len(prefix) < MIN_ID_PREFIX:
        console.print(f"[red]give a task id or at least {MIN_ID_PREFIX} of its first characters[/]")
        return None
    url = f"{gateway('sessions')}/recent"
    page = request(console, "GET", url, params={"limit": PREFIX_SEARCH_SESSIONS})
    if page is None:
        return None
    matches = [i["task_id"] for i in page["items"] if i["task_id"].startswith(prefix)]
    if len(matches) == 1:
        return str(matches[0])
    if matches:
        console.print(f"[red]{given} is ambiguous:[/] " + ", ".join(matches))
    else:
        console.print(
            f"[red]no session among the newest {PREFIX_SEARCH_SESSIONS} has an id starting "
            f"with {given}[/]: give the whole task id"
        )
    return None


def decide(
    console: Console, given_id: str, decision: str, comment: str | None, reviewer: str | None
) -> int:
    task_id = resolve_session_id(console, given_id)
    if task_id is None:
        return 1
    body = {k: v for k, v in {"comment": comment, "reviewer": reviewer}.items() if v}
    result = request(console, "POST", f"{gateway('sessions')}/{decision}/{task_id}", json=body)
    if result is None:
        return 1
    console.print(f"{task_id}: [bold]{result['approval']}[/] by {result['reviewed_by'] or '–'}")
    return 0


# --- known sources ----------------------------------------------------------------------
def show_sources(console: Console) -> int:
    url = f"{gateway('training')}/known-sources"
    page = request(console, "GET", url, params={"limit": 500})
    if page is None:
        return 1
    rows = [
        (
            s["id"],
            s["name"],
            f"{s['latitude']:.5f}",
            f"{s['longitude']:.5f}",
            _fmt(s["altitude_m"], 0),
            _fmt(s["frequency_mhz"], 4),
            _fmt(s["eirp_dbm"]),
            s["modulation"] or "–",
        )
        for s in page["items"]
    ]
    columns = ("id", "name", "lat", "lon", "alt m", "MHz", "EIRP dBm", "modulation")
    console.print(_table("Known sources", columns, rows))
    return 0


def add_source(console: Console, fields: dict[str, Any]) -> int:
    body = {k: v for k, v in fields.items() if v is not None}
    created = request(console, "POST", f"{gateway('training')}/known-sources", json=body)
    if created is None:
        return 1
    console.print(f"known source [bold]{created['name']}[/] created: {created['id']}")
    return 0


# --- training and models ---------------------------------------------------------------
def train(console: Console, body: dict[str, Any], *, wait: bool) -> int:
    base = gateway("training")
    job = request(console, "POST", f"{base}/jobs", json=body)
    if job is None:
        return 1
    console.print(f"training job [bold]{job['job_id']}[/] queued")
    if not wait:
        return 0
    with httpx.Client(timeout=30) as client:
        url = f"{base}/jobs/{job['job_id']}"
        job = follow_progress(console, lambda: client.get(url).json(), 0.5)
    if job["state"] != "SUCCESS":
        console.print(f"[red]{job['state']}:[/] {job['error_message'] or ''}")
        return 1
    result = job["result"]
    console.print(
        f"model [bold]{result['calibration_version']}[/] ({result['model_id']}) from "
        f"{result['sessions_used']} sessions: {result['decision']}"
    )
    return 0


def show_models(console: Console) -> int:
    page = request(console, "GET", f"{gateway('training')}/models")
    if page is None:
        return 1
    rows = [
        (
            m["id"],
            str(m["parameters"].get("version", m["version"])),
            m["created_at"][:19].replace("T", " "),
            str((m["training_data"] or {}).get("sessions", "–")),
            _yes_no((m["metrics"] or {}).get("beats_baseline")),
            "[green]active[/]" if m["is_active"] else "",
        )
        for m in page["items"]
    ]
    columns = ("id", "version", "created", "sessions", "beats baseline", "active")
    console.print(_table("Calibration models (newest first)", columns, rows))
    if not any(m["is_active"] for m in page["items"]):
        console.print("no model active: localization uses the default calibration")
    return 0


def activate_model(console: Console, model_id: str) -> int:
    model = request(console, "POST", f"{gateway('training')}/models/{model_id}/activate")
    if model is None:
        return 1
    console.print(f"[green]{model['parameters']['version']}[/] is now active")
    return 0


def rollback_model(console: Console) -> int:
    result = request(console, "POST", f"{gateway('training')}/models/rollback")
    if result is None:
        return 1
    console.print(f"rolled back: localization now uses [bold]{result['calibration_version']}[/]")
    return 0
