"""training (port 8002): training data access, calibration jobs, model registry."""

from heimdall.core.app import create_service_app
from heimdall.core.health import OBJECT_STORE, POSTGRES, RABBITMQ
from heimdall.training.endpoints import router as training_router

app = create_service_app(
    "training",
    routers=[training_router],
    checks=[POSTGRES, RABBITMQ, OBJECT_STORE],
    description="Calibration fitting from approved sessions of known sources.",
)
