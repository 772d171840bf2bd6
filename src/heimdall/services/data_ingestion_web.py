"""data-ingestion-web (port 8004): session review (approve / reject) and the web page.

The page calls the other services' APIs on its own origin: this service forwards
``/api/v1/acquisition``, ``/training`` and ``/inference`` with the gateway's
hardened proxy, so the page works the same here and through the gateway.
"""

from heimdall.core.app import create_service_app
from heimdall.core.health import POSTGRES
from heimdall.core.settings import get_settings
from heimdall.gateway.proxy import Forwarder, lifespan_with_client, upstream_table
from heimdall.gateway.routes import api_router
from heimdall.sessions.endpoints import router as sessions_router
from heimdall.web.page import mount_static, page_router

settings = get_settings()
_forwarded = {
    area: upstream
    for area, upstream in upstream_table(settings).items()
    if area in ("acquisition", "training", "inference")
}

app = create_service_app(
    "data-ingestion-web",
    routers=[sessions_router],
    # The page and the forwarded APIs: the services behind them check their tokens.
    open_routers=[page_router(settings), api_router(_forwarded, Forwarder.for_settings(settings))],
    checks=[POSTGRES],
    description="Operators review acquisition sessions here.",
    lifespan=lifespan_with_client(settings),
)
mount_static(app)
