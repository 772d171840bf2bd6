"""What a localization is given: the receivers, and what each observed.

Plain, frozen models with no behaviour: ``estimate.localize`` takes them, the services
and the training build them from stored measurements and lags.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The estimators ``localize`` can run ("auto" picks one of them).
Method = Literal["rss", "tdoa", "fused"]


class Receiver(BaseModel):
    """A receiver site; ``altitude_m`` is taken as the height above the WGS84 ellipsoid."""

    model_config = ConfigDict(frozen=True)

    id: str
    latitude: float = Field(ge=-90.0, le=90.0)
    longitude: float = Field(ge=-180.0, le=180.0)
    altitude_m: float = 0.0


class PowerObservation(BaseModel):
    """A received power at one receiver; ``sigma_db`` is the measurement's own error."""

    model_config = ConfigDict(frozen=True)

    receiver_id: str
    power: float
    unit: Literal["dBm", "dBFS"] = "dBm"
    sigma_db: float | None = Field(default=None, ge=0.0)


class NotHeardObservation(BaseModel):
    """A receiver that did not hear the transmitter: its power was not above ``ceiling_dbm``.

    A one-sided (censored) reading on the network's dBm scale: the fit pays only where the
    source it proposes would have been heard there (``rss.ceiling_excesses``). It is used
    with power readings only, is no degree of freedom and never an outlier.
    """

    model_config = ConfigDict(frozen=True)

    receiver_id: str
    ceiling_dbm: float


class TdoaObservation(BaseModel):
    """``time_difference_s = arrival at receiver_i - arrival at receiver_j``.

    ``sigma_s`` is the measurement's own error (the correlation's); the receivers' clock
    errors are the calibration's ``timing_sigma_s`` and are added by ``localize``.
    """

    model_config = ConfigDict(frozen=True)

    receiver_i: str
    receiver_j: str
    time_difference_s: float
    sigma_s: float = Field(gt=0.0)
    quality: float = Field(default=1.0, ge=0.0, le=1.0)
