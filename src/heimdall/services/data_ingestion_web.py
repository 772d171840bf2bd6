"""data-ingestion-web (port 8004): session review (approve / reject) and the web page."""

from heimdall.core.app import create_service_app
from heimdall.core.health import POSTGRES
from heimdall.sessions.endpoints import router as sessions_router

app = create_service_app(
    "data-ingestion-web",
    routers=[sessions_router],
    checks=[POSTGRES],
    description="Operators review acquisition sessions here.",
)
