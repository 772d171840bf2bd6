"""The real Prometheus against the running stack: every panel query and alert expression.

The five services and a worker run as processes; Prometheus (Debian's binary) scrapes
them every 2 s with the deployment's own jobs and loads the deployment's alert
rules. Acquisitions run, three of them with a receiver down. Then every dashboard
query and every alert expression is evaluated through Prometheus' HTTP API.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from heimdall.core.db import sync_engine
from heimdall.core.storage import ObjectStore
from heimdall.simulator.network import RunningNetwork
from tests.conftest import STATE_DIR
from tests.integration.conftest import MUTABLE_TABLES
from tests.support import monitoring
from tests.support.monitoring import (
    ALERT_RULES,
    ALERT_TESTS,
    DASHBOARDS,
    PROMETHEUS_CONFIG,
    Prometheus,
    Query,
)
from tests.support.processes import ManagedProcess, http_status, uvicorn_command, wait_until
from tests.support.tcp_proxy import free_port

SERVICES = {
    "api-gateway": "gateway",
    "rf-acquisition": "rf_acquisition",
    "training": "training",
    "inference": "inference",
    "data-ingestion-web": "data_ingestion_web",
}
UPSTREAM_SETTINGS = {
    "rf-acquisition": "HEIMDALL_ACQUISITION_URL",
    "training": "HEIMDALL_TRAINING_URL",
    "inference": "HEIMDALL_INFERENCE_URL",
    "data-ingestion-web": "HEIMDALL_INGESTION_URL",
}
DOWN = "genova"
FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}
# Its value depends on the machine's load, not on the stack's health.
LOAD_DEPENDENT_ALERTS = {"LocalizationLatencyHigh"}


def prometheus_config(addresses: dict[str, str]) -> dict[str, Any]:
    """The deployment's config, each job pointed at this test's process, scraped often."""
    config: dict[str, Any] = monitoring.load_yaml(PROMETHEUS_CONFIG)
    # Short enough for a test of seconds; 2 s leaves a loaded machine time to answer a
    # scrape (a timed-out scrape would read as a service down).
    config["global"] = {
        "scrape_interval": "2s",
        "scrape_timeout": "2s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(ALERT_RULES)]
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert sorted(jobs) == sorted(addresses), "the deployment's jobs changed: update this test"
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [addresses[job["job_name"]]]}]
    return config


@pytest.fixture(scope="module")
def stack(
    database: str,
    object_store: ObjectStore,
    simulator: RunningNetwork,
    acquisition_worker: ManagedProcess,
    worker_metrics_port: int,
) -> Iterator[dict[str, str]]:
    """The five services on free ports; job name -> address (the worker's too)."""
    with sync_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(MUTABLE_TABLES)} CASCADE"))
    ports = {name: free_port() for name in SERVICES}
    upstreams = {
        setting: f"http://127.0.0.1:{ports[name]}" for name, setting in UPSTREAM_SETTINGS.items()
    }
    processes = [
        ManagedProcess(
            f"live-{name}",
            uvicorn_command(f"heimdall.services.{module}:app", ports[name]),
            env=upstreams,
            log_dir=Path(STATE_DIR),
        )
        for name, module in SERVICES.items()
    ]
    try:
        for name, port in ports.items():
            url = f"http://127.0.0.1:{port}/health"
            wait_until(lambda url=url: http_status(url) == 200, 60, f"{name} up")
        addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        yield {**addresses, "worker": f"127.0.0.1:{worker_metrics_port}"}
    finally:
        for process in processes:
            process.stop()


@pytest.fixture(scope="module")
def prometheus(
    stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: `make install` installs Debian's prometheus"
    port = free_port()
    here = tmp_path_factory.mktemp("prometheus")
    config = here / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(prometheus_config({**stack, "prometheus": f"127.0.0.1:{port}"}))
    )
    process = ManagedProcess(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={here / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        env={},
        log_dir=Path(STATE_DIR),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{base}/-/ready") == 200, 30, "Prometheus ready")
        yield Prometheus(base)
    finally:
        process.stop()


def all_targets_up(prometheus: Prometheus, expected: int) -> bool:
    targets = prometheus.api("targets")["activeTargets"]
    return len(targets) == expected and all(t["health"] == "up" for t in targets)


def _count(prometheus: Prometheus, expr: str) -> float:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def after_acquisitions(
    prometheus: Prometheus, stack: dict[str, str], simulator: RunningNetwork
) -> Prometheus:
    """Four acquisitions through the gateway, three of them with one receiver down.

    Returns once Prometheus has scraped their localizations and evaluated the rules.
    """
    # Every job of the stack, and Prometheus itself.
    wait_until(lambda: all_targets_up(prometheus, len(stack) + 1), 30, "every target scraped")
    localized = 'sum(localizations_total{job="worker", outcome="ok"})'
    before = _count(prometheus, localized)
    gateway = f"http://{stack['api-gateway']}"
    control = f"{simulator.control_url}/receivers/{DOWN}/fault"
    assert httpx.put(control, json={"kind": "down"}).status_code == 200
    others = sorted(set(simulator.ports) - {DOWN})
    bodies = [{"frequency_mhz": 145.5, "duration_seconds": 1, "stations": others}]
    bodies += [{"frequency_mhz": 145.5, "duration_seconds": 1}] * 3
    try:
        task_ids = []
        for body in bodies:
            response = httpx.post(f"{gateway}/api/v1/acquisition/acquire", json=body, timeout=30)
            assert response.status_code == 202, response.text
            task_ids.append(response.json()["task_id"])
        for task_id in task_ids:
            status_url = f"{gateway}/api/v1/acquisition/status/{task_id}"
            wait_until(
                lambda url=status_url: httpx.get(url).json()["state"] in FINISHED,
                90,
                f"acquisition {task_id} finished",
            )
            status = httpx.get(status_url).json()
            assert status["state"] == "SUCCESS", status
    finally:
        httpx.delete(control)
    wait_until(
        lambda: _count(prometheus, localized) >= before + len(task_ids),
        90,
        "the localizations scraped",
    )
    wait_until(
        lambda: any(
            a["labels"].get("alertname") == "ReceiverDown"
            for a in prometheus.api("alerts")["alerts"]
        ),
        30,
        "the rules evaluated",
    )
    return prometheus


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]


def dashboard_queries() -> list[Query]:
    return [query for d in dashboards() for query in monitoring.panel_queries(d)]


def deployed_rules() -> dict[str, str]:
    return monitoring.alert_rules(monitoring.load_yaml(ALERT_RULES))


def test_every_panel_query_returns_data(after_acquisitions: Prometheus) -> None:
    known = after_acquisitions.metric_names()
    queries = dashboard_queries()
    assert len(queries) >= 20
    assert monitoring.check_panels(after_acquisitions, queries, known) == []


def test_every_alert_expression_holds_and_receiver_down_names_the_failing_receiver(
    after_acquisitions: Prometheus,
) -> None:
    prometheus = after_acquisitions
    known = prometheus.metric_names()
    problems = monitoring.check_alerts(
        prometheus,
        deployed_rules(),
        known,
        true_for={"ReceiverDown": [{"websdr_id": DOWN}]},
        may_be_true=LOAD_DEPENDENT_ALERTS,
    )
    assert problems == []
    # The rule files as Prometheus itself loaded and evaluated them.
    groups = prometheus.api("rules")["groups"]
    evaluated = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(evaluated) == set(deployed_rules())
    assert {name: rule["health"] for name, rule in evaluated.items()} == dict.fromkeys(
        evaluated, "ok"
    )
    active = [
        a for a in prometheus.api("alerts")["alerts"] if a["labels"]["alertname"] == "ReceiverDown"
    ]
    assert [(a["labels"]["websdr_id"], a["state"]) for a in active] == [(DOWN, "pending")]
    # The series the promtool unit tests feed the rules exist in the running stack.
    assert monitoring.series_names(monitoring.load_yaml(ALERT_TESTS)) <= known


def test_a_broken_panel_query_or_rule_fails_the_check(after_acquisitions: Prometheus) -> None:
    prometheus = after_acquisitions
    known = prometheus.metric_names()
    broken_panels = [
        Query("panel 'unbalanced'", "sum(rate(acquisitions_succeeded_total[15m])"),
        Query("panel 'typo'", "sum(rate(acquisitions_suceeded_total[15m]))"),
        Query("panel 'empty'", 'max(active_acquisitions{job="no-such-job"})'),
    ]
    problems = monitoring.check_panels(prometheus, [*dashboard_queries(), *broken_panels], known)
    assert [p.split(":")[0] for p in problems] == [q.where for q in broken_panels], problems
    assert "bad_data" in problems[0]
    assert "acquisitions_suceeded_total" in problems[1]
    assert "no data" in problems[2]

    rules = deployed_rules()
    broken_rules = {
        **rules,
        "ReceiverDown": rules["ReceiverDown"].replace(">= 3", ">= 30"),
        "ServiceDown": "up = 0",
        "AcquisitionStuck": "max(acquisitions_stuck) > 0",
    }
    problems = monitoring.check_alerts(
        prometheus,
        broken_rules,
        known,
        true_for={"ReceiverDown": [{"websdr_id": DOWN}]},
        may_be_true=LOAD_DEPENDENT_ALERTS,
    )
    assert sorted(p.split(":")[0] for p in problems) == [
        "alert AcquisitionStuck",
        "alert ReceiverDown",
        "alert ServiceDown",
    ], problems
    assert "expected [{'websdr_id': 'genova'}]" in " ".join(problems)
