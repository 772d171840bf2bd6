"""ORM models: one module per table, all registered on ``Base.metadata``."""

from heimdall.models.acquisition import (
    Acquisition,
    AcquisitionSource,
    AcquisitionState,
    Approval,
)
from heimdall.models.channel_lease import ChannelLease
from heimdall.models.known_source import KnownSource
from heimdall.models.localization import Localization
from heimdall.models.measurement import Measurement
from heimdall.models.model import Model
from heimdall.models.model_activation import ModelActivation
from heimdall.models.outbox import OutboxMessage
from heimdall.models.station import WebSDRStation
from heimdall.models.training_session import JobState, TrainingSession

__all__ = [
    "Acquisition",
    "AcquisitionSource",
    "AcquisitionState",
    "Approval",
    "ChannelLease",
    "JobState",
    "KnownSource",
    "Localization",
    "Measurement",
    "Model",
    "ModelActivation",
    "OutboxMessage",
    "TrainingSession",
    "WebSDRStation",
]
