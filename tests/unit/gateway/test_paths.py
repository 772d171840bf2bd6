"""Path normalisation of the gateway: what is forwarded, and what is refused."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from heimdall.gateway import openapi, paths
from heimdall.gateway.paths import PathRefused, resolve

PREFIX = "/api/v1/acquisition"


@pytest.mark.parametrize(
    ("raw", "forwarded"),
    [
        ("/api/v1/acquisition/stations", "/api/v1/acquisition/stations"),
        ("/api/v1/acquisition//stations", "/api/v1/acquisition/stations"),
        ("/api/v1/acquisition/./stations", "/api/v1/acquisition/stations"),
        ("/api/v1/acquisition/x/../stations", "/api/v1/acquisition/stations"),
        ("/api/v1/acquisition/x/%2e%2E/stations", "/api/v1/acquisition/stations"),
        ("/api/v1/acquisition/jobs/", "/api/v1/acquisition/jobs/"),
        ("/api/v1/acquisition/a%20b", "/api/v1/acquisition/a%20b"),
        ("/api/v1/acquisition/%7Eme", "/api/v1/acquisition/~me"),
        ("/api/v1/acquisition/caf%C3%A9", "/api/v1/acquisition/caf%C3%A9"),
        ("/api/v1/acquisi%74ion/stations", "/api/v1/acquisition/stations"),
    ],
)
def test_forwarded_paths_are_normalised(raw: str, forwarded: str) -> None:
    assert resolve(raw).under(PREFIX) == forwarded


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/api/v1/acquisition/..", "leaves"),
        ("/api/v1/acquisition/../training/jobs", "leaves"),
        ("/api/v1/acquisition/x/../../training", "leaves"),
        ("/api/v1/acquisition/%2e%2e/training", "leaves"),
        ("/api/v1/acquisition/%2E%2E/training", "leaves"),
        ("/api/v1/acquisition/.%2e/training", "leaves"),
        ("/api/v1/acquisition/..%2ftraining", "encoded '/'"),
        ("/api/v1/acquisition/..%2Ftraining", "encoded '/'"),
        ("/api/v1/acquisition/..\\training", "backslash"),
        ("/api/v1/acquisition/%5C..%5Ctraining", "backslash"),
        ("/api/v1/acquisition/%252e%252e/training", "doubly encoded"),
        ("/api/v1/acquisition/%252F", "doubly encoded"),
        ("/api/v1/acquisition/a%00b", "control character"),
        ("/api/v1/acquisition/%ff", "UTF-8"),
        ("/api/v1/training/jobs", "leaves"),
        ("/../../etc/passwd", "root"),
    ],
)
def test_paths_that_leave_or_hide_separators_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(PathRefused, match=reason):
        resolve(raw).under(PREFIX)


@pytest.mark.parametrize("module", [paths, openapi])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
