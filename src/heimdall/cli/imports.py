"""`heimdall import FILE...`: recordings made elsewhere, checked here, uploaded, followed.

Every file is read and checked on this machine first (the same readers the API runs),
so a bad file is named before anything is uploaded; then the files go to
``POST /api/v1/acquisition/import`` with an upload progress bar, and the import is
followed like an acquisition to its measurements and localization.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from heimdall.cli.acquire import (
    api_base,
    follow,
    show_localization,
    show_measurements,
    wait_for_localization,
)
from heimdall.cli.http import auth_headers, call
from heimdall.imports.recordings import NamedFile, read_recordings
from heimdall.imports.service import read_positions

POSITIONS_SUFFIXES = (".txt", ".yaml", ".yml", ".csv")
UPLOAD_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def positions_files(paths: list[Path]) -> list[Path]:
    """Positions files as given; a directory (kiwirecorder's ``gnss_pos``) gives its files."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in POSITIONS_SUFFIXES)
        else:
            found.append(path)
    return found


def check_locally(console: Console, files: list[Path], positions: list[Path]) -> bool:
    """Read and check every file here; print what each holds, or why it cannot be imported."""
    with Progress(TextColumn("{task.description}"), BarColumn(), console=console) as progress:
        bar = progress.add_task("checking", total=len(files) + len(positions))

        def read(path: Path) -> NamedFile:
            progress.update(bar, description=f"checking {path.name}", advance=1)
            return NamedFile(path.name, path.read_bytes())

        named = [read(p) for p in files]
        _, errors = read_positions([read(p) for p in positions])
        recordings, reading_errors = read_recordings(named)
        errors += reading_errors
        progress.update(bar, description="checked")
    for error in errors:
        console.print(f"[red]{error.file}:[/] {error.error}")
    if errors:
        console.print(f"[red]nothing imported:[/] {len(errors)} file(s) cannot be")
        return False
    table = Table(title="Recordings to import")
    for column in ("file", "station", "MHz", "seconds", "sample rate Hz", "GPS time"):
        table.add_column(column)
    for r in recordings:
        c = r.capture
        table.add_row(
            r.source,
            r.station,
            f"{c.center_frequency_hz / 1e6:.6f}",
            f"{c.duration_s:.1f}",
            f"{c.sample_rate_hz:.3f}",
            "yes" if c.has_gps_time else "no (power only)",
        )
    console.print(table)
    return True


class _Counted:
    """A file httpx reads for the multipart body, advancing a progress bar as it does."""

    def __init__(self, path: Path, advance: Callable[[int], None]) -> None:
        self._file = path.open("rb")
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._advance(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()

    def __enter__(self) -> _Counted:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()


def upload(
    console: Console,
    client: httpx.Client,
    files: list[Path],
    positions: list[Path],
    form: dict[str, str],
) -> dict[str, Any] | None:
    total = sum(p.stat().st_size for p in [*files, *positions])
    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("upload", total=total)

        def advance(count: int) -> None:
            progress.update(bar, advance=count)

        with contextlib.ExitStack() as stack:
            parts = []
            for field, group in (("files", files), ("positions", positions)):
                for path in group:
                    handle = stack.enter_context(_Counted(path, advance))
                    parts.append((field, (path.name, handle, "application/octet-stream")))
            accepted: dict[str, Any] | None = call(
                console,
                client,
                "POST",
                f"{api_base()}/import",
                files=parts,
                data=form,
                headers=auth_headers(),
            )
    return accepted


def run_import(
    console: Console,
    files: list[Path],
    positions: list[Path],
    known_source_id: str | None,
    description: str | None,
) -> str | None:
    """Check, upload and follow one import; its task id when it succeeded."""
    positions = positions_files(positions)
    if not check_locally(console, files, positions):
        return None
    form = {
        k: v for k, v in (("known_source_id", known_source_id), ("description", description)) if v
    }
    with httpx.Client(timeout=UPLOAD_TIMEOUT) as client:
        accepted = upload(console, client, files, positions, form)
        if accepted is None:
            return None
        task_id = str(accepted["task_id"])
        new = [r["station_id"] for r in accepted["recordings"] if r["new_station"]]
        console.print(f"import [bold]{task_id}[/] queued")
        if new:
            console.print(f"new stations (imported, inactive): {', '.join(new)}")
        state = follow(console, client, task_id)
        show_measurements(console, client, task_id)
        if state["state"] != "SUCCESS":
            return None
        result = wait_for_localization(client, task_id)
        if result is not None:
            show_localization(console, result, None)
        return task_id
