"""Bearer-token comparison, the rate limiter, readiness reasons and the problem shape."""

from __future__ import annotations

import doctest
import json

import pytest
from pydantic import SecretStr

from heimdall.core import errors, health, security
from heimdall.core.health import DependencyCheck, run_checks
from heimdall.core.security import TokenBucket, token_matches


def test_docstring_examples() -> None:
    for module in (security, errors):
        assert doctest.testmod(module).failed == 0


def test_tokens_compare_as_utf8_bytes() -> None:
    tokens = [SecretStr("alpha"), SecretStr("bëta-tøken")]
    assert token_matches(b"alpha", tokens)
    assert token_matches("bëta-tøken".encode(), tokens)
    # The same text in Latin-1 is other bytes: not a match, and no exception either.
    assert not token_matches("bëta-tøken".encode("latin-1"), tokens)
    assert not token_matches(b"alph", tokens)
    assert not token_matches(b"", tokens)
    assert not token_matches(b"\xff\xfe", tokens)


def test_bucket_refills_at_its_rate_and_forgets_old_clients() -> None:
    now = [0.0]
    bucket = TokenBucket(burst=2, per_minute=60, clock=lambda: now[0], max_clients=3)
    assert [bucket.take("a"), bucket.take("a")] == [0.0, 0.0]
    assert bucket.take("a") == pytest.approx(1.0)
    now[0] = 0.5
    assert bucket.take("a") == pytest.approx(0.5)
    now[0] = 1.6
    assert bucket.take("a") == 0.0
    for client in ("b", "c", "d", "e"):
        bucket.take(client)
    assert len(bucket._buckets) == 3  # bounded, whatever the number of clients


async def test_readiness_names_the_dependency_never_the_exception_text() -> None:
    async def failing() -> None:
        raise RuntimeError("password authentication failed for user s3cr3t-in-message")

    async def fine() -> None:
        return None

    results = await run_checks(
        [DependencyCheck("PostgreSQL", failing), DependencyCheck("S3", fine)]
    )
    assert results == {"PostgreSQL": "down", "S3": "ok"}
    assert "s3cr3t" not in json.dumps(results)
    assert health.CHECK_TIMEOUT_S > 0


def test_problem_bodies_carry_a_string_detail() -> None:
    response = errors.problem(404, "no such thing", instance="/x")
    assert response.media_type == "application/problem+json"
    assert json.loads(response.body) == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no such thing",
        "instance": "/x",
    }
