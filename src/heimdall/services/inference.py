"""inference (port 8003): localization of finished acquisitions."""

from heimdall.core.app import create_service_app
from heimdall.core.health import OBJECT_STORE, POSTGRES, RABBITMQ

app = create_service_app(
    "inference",
    checks=[POSTGRES, RABBITMQ, OBJECT_STORE],
    description="Where is the transmitter, and how sure are we.",
)
