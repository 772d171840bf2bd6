"""SQL injection strings and path tricks in every string parameter and path segment.

Every documented operation of every service is sent each hostile value in each of its
path parameters and string query parameters, directly and through the gateway, with a
valid token. Then:

- no answer is a 5xx, every refusal is a problem+json body;
- the database is unchanged: the row count of every table, and the sentinel rows
  (a known source, a model) read back byte for byte;
- no route other than the requested one was reached: the services' own request
  counters (``http_requests_total`` by route template) grew only on that route or on
  "unrouted".

Free text that is stored (a known source's name, its description) holds injection
strings verbatim: parameters are bound, never spliced into SQL.
"""

from __future__ import annotations

import http.client
import re
import uuid
from collections import Counter
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text

from heimdall.core.db import sync_engine
from tests.integration.security.conftest import AUTH
from tests.integration.security.test_auth_and_limits import TABLES, row_counts
from tests.support.stack import ServiceStack

SERVICES = ["rf-acquisition", "inference", "training", "data-ingestion-web"]
INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE known_sources; --",
    "'); DELETE FROM acquisitions; --",
    '" OR 1=1 --',
    "1' UNION SELECT rolpassword FROM pg_authid --",
    "x' AND pg_sleep(5) IS NULL --",
    "$(touch /tmp/heimdall-pwned)",
    "${jndi:ldap://127.0.0.1/x}",
    "%27%20OR%201%3D1",
    "\\' OR 1=1 #",
]
TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2ftraining%2fmodels",
    "..\\..\\..\\windows\\win.ini",
    "%252e%252e%252f",
    "....//....//etc/passwd",
    "/api/v1/training/models/rollback",
    "stations%00.json",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/",
]
ROUTE_SAMPLE = re.compile(
    r'^http_requests_total\{method="(\w+)",route="([^"]*)",status="\d+"\} (\S+)'
)


def route_counts(base: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        match = ROUTE_SAMPLE.match(line)
        if match:
            counts[(match.group(1), match.group(2))] += int(float(match.group(3)))
    return counts


def all_route_counts(stack: ServiceStack) -> dict[str, Counter[tuple[str, str]]]:
    return {name: route_counts(stack.urls[name]) for name in SERVICES}


def grown(
    before: dict[str, Counter[tuple[str, str]]], after: dict[str, Counter[tuple[str, str]]]
) -> set[tuple[str, str, str]]:
    return {
        (service, method, route)
        for service in SERVICES
        for (method, route), n in after[service].items()
        if n > before[service][(method, route)] and route != "/metrics"
    }


def raw_request(base: str, method: str, raw_path: str) -> tuple[int, bytes, str]:
    """Exactly this path on the wire (no client normalises it)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest(method, raw_path, skip_accept_encoding=True)
        for key, value in AUTH.items():
            connection.putheader(key, value)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"{}")
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("content-type", "")
    finally:
        connection.close()


def sentinels() -> list[Any]:
    with sync_engine().connect() as conn:
        return [
            tuple(row)
            for table in ("known_sources", "models", "websdr_stations")
            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()
        ]


@pytest.fixture
def seeded(stack: ServiceStack, clean_db: str) -> str:
    created = httpx.post(
        f"{stack.urls['training']}/api/v1/training/known-sources",
        json={"name": "sentinel", "latitude": 45.0, "longitude": 7.6, "frequency_mhz": 145.5},
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def operations(stack: ServiceStack) -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for service in SERVICES:
        document = httpx.get(f"{stack.urls[service]}/openapi.json", timeout=10).json()
        for path, item in document["paths"].items():
            for method, operation in item.items():
                found.append((service, method.upper(), path, operation))
    return found


def filled(path: str, evil: str, target: str, encode: bool) -> str:
    """The path with ``target`` set to ``evil`` and every other parameter valid."""
    values = {
        name: str(uuid.uuid4()) if name != "station_id" else "torino"
        for name in re.findall(r"\{(\w+)\}", path)
    }
    # Encoded whole, or as written: only what cannot be part of a path on the wire is
    # encoded (controls, space; "?" and "#" would end the path there).
    raw = re.sub(r"[\x00-\x20\x7f?#]", lambda m: quote(m.group()), evil)
    values[target] = quote(evil, safe="") if encode else raw
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


@pytest.mark.timeout(600)
def test_hostile_values_in_every_parameter_change_nothing_and_reach_no_other_route(
    stack: ServiceStack, seeded: str
) -> None:
    counts_before, rows_before = row_counts(), sentinels()
    answers: Counter[int] = Counter()
    for service, method, path, operation in operations(stack):
        base = stack.urls[service]
        before = all_route_counts(stack)
        parameters = operation.get("parameters", [])
        path_names = [p["name"] for p in parameters if p["in"] == "path"]
        query_strings = [p["name"] for p in parameters if p["in"] == "query"]
        for evil in INJECTIONS + TRAVERSALS:
            for target in path_names:
                for encode in (True, False):
                    raw = filled(path, evil, target, encode)
                    for via in (base, stack.urls["api-gateway"]):
                        status, body, media = raw_request(via, method, raw)
                        answers[status] += 1
                        assert status < 500, (via, method, raw, body)
                        if status >= 400:
                            assert media == "application/problem+json", (raw, body)
            for name in query_strings:
                url = filled(path, "x", "-", True)
                response = httpx.request(
                    method, base + url, params={name: evil}, headers=AUTH, json={}, timeout=30
                )
                answers[response.status_code] += 1
                assert response.status_code < 500, (method, url, name, evil, response.text)
        # Only the requested route (or none) answered, on its own service.
        reached = grown(before, all_route_counts(stack))
        allowed = {(service, method, path), (service, method, "unrouted")}
        assert reached <= allowed, (method, path, reached - allowed)
    assert row_counts() == counts_before
    assert sentinels() == rows_before
    print(f"answers to hostile parameters: {dict(sorted(answers.items()))}")


def test_injection_strings_in_stored_text_are_kept_verbatim(
    stack: ServiceStack, seeded: str
) -> None:
    base = f"{stack.urls['training']}/api/v1/training/known-sources"
    before = row_counts()
    for index, evil in enumerate(INJECTIONS):
        created = httpx.post(
            base,
            json={
                "name": f"{evil} #{index}",
                "latitude": 45.0,
                "longitude": 7.6,
                "frequency_mhz": 145.5,
                "description": evil,
                "modulation": evil[:100],
            },
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        read = httpx.get(f"{base}/{created.json()['id']}").json()
        assert (read["name"], read["description"]) == (f"{evil} #{index}", evil)
    after = row_counts()
    assert after["known_sources"] == before["known_sources"] + len(INJECTIONS)
    assert {t: n for t, n in after.items() if t != "known_sources"} == {
        t: n for t, n in before.items() if t != "known_sources"
    }
    assert set(TABLES) <= set(after)
