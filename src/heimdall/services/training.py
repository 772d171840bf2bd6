"""training (port 8002): training data access, calibration jobs, model registry."""

from heimdall.core.app import create_service_app
from heimdall.core.health import OBJECT_STORE, POSTGRES, RABBITMQ

app = create_service_app(
    "training",
    checks=[POSTGRES, RABBITMQ, OBJECT_STORE],
    description="Calibration fitting from approved sessions of known sources.",
)
