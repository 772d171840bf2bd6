"""Transmitter localization: RSS, TDOA and fused estimators with honest uncertainty.

The estimation core is pure: plain receivers and observations in, a
``LocalizationResult`` out. Services, storage and tasks live elsewhere.
"""

from heimdall.localization.calibration import Calibration
from heimdall.localization.estimate import (
    ConfidenceEllipse,
    LocalizationResult,
    Residual,
    localize,
)
from heimdall.localization.observations import (
    NotHeardObservation,
    PowerObservation,
    Receiver,
    TdoaObservation,
)
from heimdall.localization.uncertainty import CramerRaoBound, cramer_rao_bound

__all__ = [
    "Calibration",
    "ConfidenceEllipse",
    "CramerRaoBound",
    "LocalizationResult",
    "NotHeardObservation",
    "PowerObservation",
    "Receiver",
    "Residual",
    "TdoaObservation",
    "cramer_rao_bound",
    "localize",
]
