"""The five HTTP services as real uvicorn processes on free ports, wired to each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from heimdall.core.settings import get_settings
from heimdall.services.registry import service_specs
from tests.conftest import STATE_DIR
from tests.support.processes import ManagedProcess, http_status, uvicorn_command, wait_until
from tests.support.tcp_proxy import free_port

# The setting that tells the others where a service answers.
URL_SETTINGS = {
    "rf-acquisition": "HEIMDALL_ACQUISITION_URL",
    "training": "HEIMDALL_TRAINING_URL",
    "inference": "HEIMDALL_INFERENCE_URL",
    "data-ingestion-web": "HEIMDALL_INGESTION_URL",
}


@dataclass
class ServiceStack:
    urls: dict[str, str]
    processes: list[ManagedProcess] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in self.processes)


def start_stack(env: Mapping[str, str] | None = None, timeout_s: float = 90) -> ServiceStack:
    """Start every service (the gateway too); ``urls`` maps each name to its base URL."""
    specs = service_specs(get_settings())
    ports = {spec.name: free_port() for spec in specs}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    wiring = {URL_SETTINGS[name]: url for name, url in urls.items() if name in URL_SETTINGS}
    stack = ServiceStack(urls)
    for spec in specs:
        stack.processes.append(
            ManagedProcess(
                f"{spec.name}-{ports[spec.name]}",
                uvicorn_command(spec.asgi_app, ports[spec.name]),
                env={**wiring, **(env or {})},
                log_dir=Path(STATE_DIR),
            )
        )
    try:
        for name, url in urls.items():
            wait_until(lambda url=url: http_status(f"{url}/health") == 200, timeout_s, name)
    except TimeoutError as exc:
        logs = stack.logs()
        stack.stop()
        raise RuntimeError(f"{exc}\n{logs}") from exc
    return stack
