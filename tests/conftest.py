"""Test-run isolation, set before any Heimdall module reads its settings.

Every run gets its own PostgreSQL database, Celery queue names, S3 buckets and
state directory, so tests never touch a development stack on the same machine
and two runs never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

RUN_ID = uuid.uuid4().hex[:10]
TEST_DATABASE = f"heimdall_test_{RUN_ID}"
STATE_DIR = tempfile.mkdtemp(prefix=f"heimdall-test-{RUN_ID}-")

os.environ.update(
    {
        "HEIMDALL_ENVIRONMENT": "development",
        "HEIMDALL_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{TEST_DATABASE}",
        "HEIMDALL_QUEUE_PREFIX": f"test-{RUN_ID}-",
        "HEIMDALL_S3_BUCKET_RAW": f"heimdall-test-{RUN_ID}-raw",
        "HEIMDALL_S3_BUCKET_MODELS": f"heimdall-test-{RUN_ID}-models",
        "HEIMDALL_STATE_DIR": STATE_DIR,
        # Workers started by tests serve /metrics only where a test asks for it.
        "HEIMDALL_WORKER_METRICS_PORT": "0",
        # Faults are tried with short outages: quick sweeps, claims and retries.
        "HEIMDALL_SWEEP_INTERVAL_S": "1",
        "HEIMDALL_CLAIM_TTL_S": "8",
        "HEIMDALL_DEPENDENCY_RETRY_S": "10",
        "HEIMDALL_RECEIVER_BUSY_RETRY_S": "2",
        "HEIMDALL_RECEIVER_START_WAIT_S": "1",
        "HEIMDALL_ACQUISITION_FINISH_ALLOWANCE_S": "20",
        # One client (this process) sends every test's requests; tests of the rate
        # limit set their own (tests/integration/security).
        "HEIMDALL_RATE_LIMIT_PER_MINUTE": "0",
    }
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The run's state directory (the services' logs, the test S3 server's data) goes
    when every test passed; after a failure it stays for reading, and its path is shown."""
    if exitstatus == 0:
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"this run's service logs are kept in {STATE_DIR}")
