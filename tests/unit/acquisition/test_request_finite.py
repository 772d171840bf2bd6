"""Request bodies refuse NaN and infinities as such, not with a bound's message."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from heimdall.acquisition.schemas import AcquireRequest
from heimdall.training.schemas import KnownSourceCreate, KnownSourceFields, Selection

VALID_ACQUIRE = {"frequency_mhz": 145.5, "duration_seconds": 2.0}
VALID_SOURCE = {
    "name": "beacon",
    "latitude": 45.0,
    "longitude": 7.5,
    "frequency_mhz": 145.5,
}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("model", "valid", "field"),
    [
        (AcquireRequest, VALID_ACQUIRE, "frequency_mhz"),
        (AcquireRequest, VALID_ACQUIRE, "duration_seconds"),
        (AcquireRequest, VALID_ACQUIRE, "max_wait_seconds"),
        (KnownSourceCreate, VALID_SOURCE, "latitude"),
        (KnownSourceCreate, VALID_SOURCE, "eirp_dbm"),
        (KnownSourceFields, {}, "altitude_m"),
        (Selection, {}, "frequency_min_mhz"),
    ],
)
def test_non_finite_numbers_are_refused_as_such(
    model: type[BaseModel], valid: dict[str, Any], field: str, value: float
) -> None:
    model.model_validate(valid)  # the body is valid without the bad value
    with pytest.raises(ValidationError) as raised:
        model.model_validate({**valid, field: value})
    [error] = raised.value.errors()
    assert error["loc"] == (field,)
    assert error["type"] == "finite_number"
    assert error["msg"] == "Input should be a finite number"
