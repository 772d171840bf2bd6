"""Which ASGI app each service runs, and on which port (for the supervisor)."""

from __future__ import annotations

from dataclasses import dataclass

from heimdall.core.settings import Settings


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    asgi_app: str
    port: int


def service_specs(settings: Settings) -> list[ServiceSpec]:
    ports = settings.service_ports()
    modules = {
        "rf-acquisition": "heimdall.services.rf_acquisition:app",
        "training": "heimdall.services.training:app",
        "inference": "heimdall.services.inference:app",
        "data-ingestion-web": "heimdall.services.data_ingestion_web:app",
        # The gateway last: its readiness depends on the others.
        "api-gateway": "heimdall.services.gateway:app",
    }
    return [ServiceSpec(name, target, ports[name]) for name, target in modules.items()]
