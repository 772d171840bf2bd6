"""api-gateway (port 8000): the single public entry point."""

from heimdall.core.app import create_service_app
from heimdall.core.health import upstream
from heimdall.core.settings import get_settings
from heimdall.gateway.proxy import build_router, lifespan_with_client, upstream_table

settings = get_settings()
app = create_service_app(
    "api-gateway",
    routers=[build_router(settings)],
    checks=[upstream(u.name, u.base_url) for u in upstream_table(settings).values()],
    description="Proxies /api/v1/... to the services; 503 when an upstream is down.",
    lifespan=lifespan_with_client(),
)
