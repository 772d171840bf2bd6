"""The CLI's tables keep the ids a user copies back into the next command."""

from __future__ import annotations

import io
import uuid

from rich.console import Console

from heimdall.cli.operator import _table


def rendered(width: int, rows: list[tuple[str, ...]]) -> str:
    columns = ("task id", "when", "MHz", "state", "rx", "known source", "fix", "approval")
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(_table("Sessions", columns, rows))
    return out.getvalue()


def test_ids_stay_whole_in_a_narrow_terminal() -> None:
    # 80 columns: what a pipe or a small terminal gives; eight columns do not fit.
    ids = [str(uuid.UUID(int=k)) for k in (1, 2**127)]
    rows = [
        (
            i,
            "2026-12-01 06:06:49",
            "145.5000",
            "SUCCESS",
            "7/7",
            "monferrato beacon",
            "ok",
            "pending",
        )
        for i in ids
    ]
    text = rendered(80, rows)
    assert all(i in text for i in ids)
    assert max(len(line) for line in text.splitlines()) <= 80


def test_an_empty_table_still_renders() -> None:
    assert "task id" in rendered(80, [])
