"""Logs never carry a bearer token, an S3 secret or a database password.

rf-acquisition runs with every logger at DEBUG (the libraries' too: botocore, httpx,
SQLAlchemy, uvicorn's access log) while it is asked with right and wrong tokens, its
object storage refuses its signature and /ready reports it; then its whole log is
searched for each secret.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from heimdall.core.settings import Settings
from tests.conftest import STATE_DIR
from tests.support.processes import ManagedProcess, http_status, wait_until
from tests.support.tcp_proxy import free_port

TOKEN = "log-test-api-token-must-never-be-logged-0001"
READ_TOKEN = "log-test-read-token-must-never-be-logged-0002"
S3_SECRET = "log-test-s3-secret-must-never-be-logged-0003"
DB_PASSWORD = "log-test-db-password-0004"
SECRETS = (TOKEN, READ_TOKEN, S3_SECRET, DB_PASSWORD)

SERVE = (
    "import logging, sys, uvicorn; "
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout); "
    "uvicorn.run('heimdall.services.rf_acquisition:app', host='127.0.0.1', "
    "port=int(sys.argv[1]), log_level='debug', access_log=True)"
)


def test_no_secret_reaches_the_log(database: str, settings: Settings) -> None:
    port = free_port()
    url = settings.sync_database_url.replace("postgres@", f"postgres:{DB_PASSWORD}@")
    process = ManagedProcess(
        f"rf-acquisition-logs-{port}",
        [sys.executable, "-c", SERVE, str(port)],
        env={
            "HEIMDALL_API_TOKENS": TOKEN,
            "HEIMDALL_READ_TOKENS": READ_TOKEN,
            "HEIMDALL_S3_SECRET_KEY": S3_SECRET,  # the store refuses this signature
            "HEIMDALL_DATABASE_URL": url,
            "HEIMDALL_LOG_LEVEL": "DEBUG",
        },
        log_dir=Path(STATE_DIR),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{base}/health") == 200, 30, "rf-acquisition up")
        api = f"{base}/api/v1/acquisition"
        good = {"Authorization": f"Bearer {TOKEN}"}
        reader = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert httpx.get(f"{api}/stations", headers=reader).status_code == 200
        assert httpx.get(f"{api}/stations", headers=good).status_code == 200
        assert httpx.get(f"{api}/stations").status_code == 401
        assert httpx.post(f"{api}/acquire", json={}, headers=reader).status_code == 403
        assert httpx.post(f"{api}/acquire", json={}, headers=good).status_code == 422
        near_miss = {"Authorization": f"Bearer {TOKEN[:-1]}X"}
        assert httpx.post(f"{api}/acquire", json={}, headers=near_miss).status_code == 403
        ready = httpx.get(f"{base}/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        assert ready.json()["dependencies"]["S3 object storage"] == "down"
        assert all(secret not in ready.text for secret in SECRETS)
    finally:
        process.stop()
    log = process.log_path.read_text(errors="replace")
    assert "GET /api/v1/acquisition/stations" in log  # the access log was on
    assert "DEBUG" in log
    leaked = [secret for secret in SECRETS if secret in log]
    assert not leaked, f"secrets in {process.log_path}: {leaked}"


def test_settings_never_print_their_secrets(settings: Settings) -> None:
    shown = repr(settings) + str(settings.model_dump())
    assert settings.s3_secret_key.get_secret_value() not in shown
