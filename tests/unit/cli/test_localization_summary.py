"""The demo's summary of a fix reads whole in an 80-column terminal."""

from __future__ import annotations

import io

from rich.console import Console

from heimdall.cli.acquire import show_localization

RECEIVERS = ["coazze", "genova", "giaveno", "giovi", "milano", "montanaro", "torino"]


def summary(width: int) -> list[str]:
    result = {
        "status": "ok",
        "latitude": 44.9001,
        "longitude": 8.2,
        "method": "fused",
        "receivers_used": 7,
        "gdop": 1.0,
        "ellipse": {"semi_major_m": 70.0, "semi_minor_m": 30.0, "orientation_deg": 23.0},
        "inputs": {
            "power": RECEIVERS[:-1],
            "tdoa": RECEIVERS,
            "power_excluded": {"torino": "power reading rejected as an outlier"},
        },
    }
    out = io.StringIO()
    show_localization(Console(file=out, width=width, color_system=None), result, truth=None)
    return out.getvalue().splitlines()


def test_each_method_lists_its_receivers_on_a_line_of_its_own() -> None:
    lines = summary(80)
    assert f"power from: {', '.join(RECEIVERS[:-1])}" in lines
    assert f"TDOA from: {', '.join(RECEIVERS)}" in lines
    assert "power of torino left out: power reading rejected as an outlier" in lines
    assert max(len(line) for line in lines) <= 80
