"""data-ingestion-web (port 8004): session review (approve / reject) and the web page."""

from heimdall.core.app import create_service_app
from heimdall.core.health import POSTGRES

app = create_service_app(
    "data-ingestion-web",
    checks=[POSTGRES],
    description="Operators review acquisition sessions here.",
)
