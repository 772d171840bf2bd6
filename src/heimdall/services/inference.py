"""inference (port 8003): localization of finished acquisitions."""

from heimdall.core.app import create_service_app
from heimdall.core.health import OBJECT_STORE, POSTGRES, RABBITMQ
from heimdall.localization.endpoints import router as localization_router

app = create_service_app(
    "inference",
    routers=[localization_router],
    checks=[POSTGRES, RABBITMQ, OBJECT_STORE],
    description="Where is the transmitter, and how sure are we.",
)
