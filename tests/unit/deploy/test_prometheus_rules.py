"""The Prometheus configuration and alert rules, checked by promtool (Debian's `prometheus`)."""

from __future__ import annotations

import doctest
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support import monitoring
from tests.support.monitoring import ALERT_RULES, ALERT_TESTS, PROMETHEUS_CONFIG


def promtool(*args: str, cwd: Path = PROMETHEUS_CONFIG.parent) -> subprocess.CompletedProcess[str]:
    assert shutil.which("promtool"), "promtool missing: `make install` installs Debian's prometheus"
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_config_and_its_rule_files_are_valid() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    result = promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_unit_tests_and_a_runbook() -> None:
    rules = monitoring.alert_rules(monitoring.load_yaml(ALERT_RULES))
    tested = {
        case["alertname"]
        for test in monitoring.load_yaml(ALERT_TESTS)["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert set(rules) == tested
    for group in monitoring.load_yaml(ALERT_RULES)["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["runbook"] == f"docs/OPERATIONS.md#{rule['alert'].lower()}"


def test_a_rule_that_no_longer_matches_its_tests_fails_them(tmp_path: Path) -> None:
    # The unit tests bite: ReceiverDown at 30 failures instead of 3 misses the page.
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for rule in rules["groups"][0]["rules"]:
        if rule.get("alert") == "ReceiverDown":
            rule["expr"] = rule["expr"].replace(">= 3", ">= 30")
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    result = promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "alertname: ReceiverDown" in result.stdout + result.stderr


def test_the_promql_name_reader() -> None:
    outcome = doctest.testmod(monitoring)
    assert outcome.attempted > 0
    assert outcome.failed == 0
    expr = 'histogram_quantile(0.95, sum by (job, route, le) (rate(http_request_seconds_bucket{status=~"5.."}[5m])))'
    assert monitoring.metric_names(expr) == {"http_request_seconds_bucket"}
    assert monitoring.metric_names("max(acquisitions_overdue) > 0") == {"acquisitions_overdue"}
