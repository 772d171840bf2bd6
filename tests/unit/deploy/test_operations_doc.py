"""docs/OPERATIONS.md keeps up with the alert rules and the dashboards."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import monitoring
from tests.support.monitoring import ALERT_RULES, DASHBOARDS, ROOT

DOC = (ROOT / "docs" / "OPERATIONS.md").read_text()
RULES = monitoring.alert_rules(monitoring.load_yaml(ALERT_RULES))
PANELS = [
    panel
    for path in sorted(DASHBOARDS.glob("*.json"))
    for panel in json.loads(path.read_text())["panels"]
    if panel["type"] != "row"
]


def section(heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = DOC.index(f"\n{heading}\n")
    following = re.compile(rf"\n#{{1,{len(level)}}} ")
    end = following.search(DOC, start + len(heading) + 1)
    return DOC[start : end.start() if end else len(DOC)]


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("alert", sorted(RULES))
def test_each_alert_says_what_it_checks_and_what_to_do(alert: str) -> None:
    text = section(f"### {alert}")
    assert "What to do:" in text
    assert squeezed(RULES[alert]) in squeezed(text)


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_each_panel_is_described_with_its_queries(panel: dict[str, object]) -> None:
    text = section(f"#### {panel['title']}")
    assert str(panel["description"]) in " ".join(text.split())
    for target in panel["targets"]:  # type: ignore[attr-defined]
        assert squeezed(target["expr"]) in squeezed(text), target["expr"]
