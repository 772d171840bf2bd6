"""`heimdall sim --record-to` and `heimdall import` as an operator runs them, through a gateway."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from heimdall.core.db import sync_engine
from tests.integration.training.test_cli import heimdall
from tests.support.processes import ManagedProcess
from tests.support.stack import ServiceStack, start_stack


@pytest.fixture(scope="module")
def stack(database: str) -> Iterator[ServiceStack]:
    services = start_stack()
    yield services
    services.stop()


@pytest.fixture
def cli_env(
    stack: ServiceStack, acquisition_worker: ManagedProcess, clean_db: str
) -> dict[str, str]:
    gateway_port = urlsplit(stack.urls["api-gateway"]).port
    return {**os.environ, "HEIMDALL_GATEWAY_PORT": str(gateway_port), "COLUMNS": "250"}


def imports_in_database() -> int:
    with sync_engine().connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM acquisitions WHERE source = 'import'")
            ).scalar_one()
        )


def test_record_then_import_with_a_bad_file_then_without(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    recorded = heimdall(cli_env, "sim", "--record-to", str(tmp_path), "--duration", "1")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    wavs = sorted(str(p) for p in tmp_path.glob("*_iq.wav"))
    assert len(wavs) == 7, recorded.stdout
    positions = str(tmp_path / "gnss_pos")

    bad = tmp_path / "bad" / "20240601T120000Z_145500000_elsewhere_iq.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    refused = heimdall(cli_env, "import", *wavs[:2], str(bad), "--positions", positions)
    assert refused.returncode == 1
    assert "20240601T120000Z_145500000_elsewhere_iq.wav:" in refused.stdout
    assert "no fmt chunk" in refused.stdout and "nothing imported" in refused.stdout
    assert imports_in_database() == 0  # checked here: nothing was even uploaded

    done = heimdall(
        cli_env, "import", *wavs, "--positions", positions, "--description", "from the CLI"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Recordings to import" in done.stdout and "queued" in done.stdout
    assert "final state: SUCCESS" in done.stdout
    assert "estimated position" in done.stdout
    assert imports_in_database() == 1
