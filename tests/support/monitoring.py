"""Check dashboards and alert rules against a real Prometheus, through its HTTP API.

Every panel query and alert expression must parse, name only metrics the
running stack exports, and (panels) return data; chosen alerts must be true
for chosen label sets and the others quiet. Each problem is one line of text,
so a test can show what a broken query or rule produces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"

# Words of PromQL that look like metric names but are not.
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"and", "or", "unless", "bool", "offset", "inf", "nan"}
)
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{job="x"}[5m])) / on (job) b or vector(0)'))
    ['a_bucket', 'b']
    >>> metric_names('absent(up{job="worker"} == 1) and 1e3 > bool 2 offset 5m')
    {'up'}
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, before = match.group(), text[: match.start()]
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # the exponent or unit of a number or duration
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if word.lower() not in KEYWORDS:
            names.add(word)
    return names


def series_names(alert_tests: Mapping[str, Any]) -> set[str]:
    """Metric names of the input series of a promtool rule-test file."""
    return {
        series["series"].split("{", 1)[0].strip()
        for test in alert_tests["tests"]
        for series in test["input_series"]
    }


@dataclass(frozen=True, slots=True)
class Query:
    where: str  # "panel 'Title' A" or "alert ReceiverDown"
    expr: str


def panel_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append(Query(f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    return queries


def alert_rules(rules: Mapping[str, Any]) -> dict[str, str]:
    """Alert name -> expression, over every group."""
    return {
        rule["alert"]: rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


class Prometheus:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def api(self, path: str, **params: str) -> Any:
        body = httpx.get(f"{self.base_url}/api/v1/{path}", params=params, timeout=10).json()
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"a {data['resultType']}, not a vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values"))


class PrometheusError(RuntimeError):
    pass


def _value(sample: Mapping[str, Any]) -> float:
    return float(sample["value"][1])


def _evaluate(prometheus: Prometheus, query: Query, known: set[str]) -> list[dict[str, Any]] | str:
    """The query's samples, or the problem with it."""
    unknown = metric_names(query.expr) - known
    if unknown:
        return f"{query.where}: no such metric in the running stack: {', '.join(sorted(unknown))}"
    try:
        return prometheus.query(query.expr)
    except PrometheusError as exc:
        return f"{query.where}: {exc}"


def check_panels(prometheus: Prometheus, queries: Iterable[Query], known: set[str]) -> list[str]:
    """Problems of the panel queries: unknown metric, error, or no finite value."""
    problems = []
    for query in queries:
        result = _evaluate(prometheus, query, known)
        if isinstance(result, str):
            problems.append(result)
        elif not any(math.isfinite(_value(sample)) for sample in result):
            problems.append(f"{query.where}: no data ({query.expr})")
    return problems


def check_alerts(
    prometheus: Prometheus,
    rules: Mapping[str, str],
    known: set[str],
    *,
    true_for: Mapping[str, list[dict[str, str]]],
    may_be_true: Iterable[str] = (),
) -> list[str]:
    """Problems of the alert expressions.

    ``true_for``: alert -> the label sets for which its expression must be true, and
    no others. Every other alert must be false, unless named in ``may_be_true``.
    """
    problems = []
    for name in set(true_for) - set(rules):
        problems.append(f"alert {name}: not in the rules")
    for name, expr in rules.items():
        result = _evaluate(prometheus, Query(f"alert {name}", expr), known)
        if isinstance(result, str):
            problems.append(result)
            continue
        got = sorted((sample["metric"] for sample in result), key=str)
        if name in true_for:
            if got != sorted(true_for[name], key=str):
                problems.append(f"alert {name}: true for {got}, expected {true_for[name]}")
        elif got and name not in may_be_true:
            problems.append(f"alert {name}: true for {got} on a healthy stack")
    return problems
