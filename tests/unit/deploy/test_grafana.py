"""Grafana provisioning: one datasource, the dashboards' panels wired to it."""

from __future__ import annotations

import json
from collections import Counter

import yaml

from tests.support.monitoring import DASHBOARDS, ROOT

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    (datasource,) = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    wired = {"type": "prometheus", "uid": datasource["uid"]}
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert paths
    uids = []
    for path in paths:
        dashboard = json.loads(path.read_text())
        uids.append(dashboard["uid"])
        panels = dashboard["panels"]
        assert len({p["id"] for p in panels}) == len(panels), path.name
        for panel in panels:
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == wired, panel["title"]
            assert panel["description"], panel["title"]
            refs = Counter(t["refId"] for t in panel["targets"])
            assert refs and max(refs.values()) == 1, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == wired and target["expr"].strip(), panel["title"]
    assert len(set(uids)) == len(uids)


def test_the_issue_s_panels_are_there() -> None:
    titles = {
        panel["title"]
        for path in DASHBOARDS.glob("*.json")
        for panel in json.loads(path.read_text())["panels"]
    }
    assert {
        "Acquisition success rate",
        "Acquisition duration percentiles",
        "Receiver failure rate by receiver",
        "Celery queue depth",
        "Active acquisitions",
        "Localization latency percentiles",
        "Localization method mix",
        "HTTP errors by service",
        "Training jobs",
    } <= titles
