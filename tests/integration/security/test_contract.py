"""Every answer is in the schema: schemathesis against each service's ``/openapi.json``.

The services run as uvicorn processes on loopback with real PostgreSQL, RabbitMQ and
S3, bearer tokens required. Each operation gets a bounded number of generated cases
(examples, coverage and fuzzing phases); then the stateful phase walks the links
between operations (a created known source read, changed, deleted...) through the
gateway's merged document. Checked on every answer:

- no 5xx (``not_a_server_error``);
- status code, content type, headers and body as the schema documents them;
- an operation that declares bearer auth refuses a request without it (``ignored_auth``);
- a schema-valid request is never refused by validation of one of its fields (a 422
  whose ``errors`` name a field); a 422 without them is a rule the schema cannot say
  (the frequency outside the named receivers' coverage), and one on the whole body or
  query a rule between fields (a band's low edge above its high edge).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import CheckContext
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.security.conftest import AUTH
from tests.support.stack import ServiceStack

MAX_EXAMPLES = 25
SERVICES = ["rf-acquisition", "inference", "training", "data-ingestion-web"]


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
    # An error naming a field says the schema and the validation disagree about it; one
    # on the whole body or query is a rule between fields that JSON Schema cannot say
    # (frequency_min_mhz <= frequency_max_mhz, start < end).
    errors = body.get("errors") or [] if isinstance(body, dict) else []
    if any(len(error.get("loc", [])) > 1 for error in errors):
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


STATEFUL_EXAMPLES = 20
STATEFUL_STEPS = 6


@pytest.mark.timeout(600)
def test_stateful_sequences_through_the_gateway(stack: ServiceStack) -> None:
    """Links between operations (inferred from the schemas: a created known source's id
    fed to its read, change and delete; a task id to status, cancel, review...), walked
    through the gateway's merged document, so the gateway's forwarding is tried too."""
    schema = schemathesis.openapi.from_url(f"{stack.urls['api-gateway']}/openapi.json")
    base = schema.as_state_machine()
    statuses: list[tuple[str, int]] = []

    class Machine(base):  # type: ignore[misc, valid-type]
        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            statuses.append((case.operation.label, response.status_code))

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": AUTH, "timeout": 30}

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kw: Any
        ) -> None:
            # Values carried over by links are not generated from the schema (a null
            # known_source_id becomes the path segment "None"): the validation check
            # belongs to the per-operation phase, every other check runs here.
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        ),
    )
    # The walk went somewhere: calls were made, some of them chained successes.
    successes = {label for label, code in statuses if code < 300}
    print(f"stateful: {len(statuses)} calls, successes on {sorted(successes)}")
    assert len(statuses) >= STATEFUL_EXAMPLES
    assert any(label.startswith("POST") for label in successes)
