"""The training correlates known sources over ``Settings.training_window_s``.

By default that is the localization's window (``Settings.tdoa_window_s``): the timing
sigmas fitted from the known sources' lags describe lags of that span. A longer one
(``HEIMDALL_TRAINING_TDOA_WINDOW_S``) fits the clock offsets better, at the cost of
sigmas fitted on lags of another span than a localization's.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStoreError
from heimdall.localization.observations import Receiver, TdoaObservation
from heimdall.models import Measurement
from heimdall.training import job


def spy_windows(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    seen: list[float] = []

    def observations(
        store: object,
        measurements: list[Measurement],
        receivers: dict[str, Receiver],
        *,
        window_s: float,
    ) -> list[TdoaObservation]:
        seen.append(window_s)
        return []

    monkeypatch.setattr(job, "tdoa_observations", observations)
    return seen


def test_the_job_correlates_known_sources_over_the_localization_window_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = spy_windows(monkeypatch)
    settings = Settings(tdoa_window_s=2.5)
    assert settings.training_tdoa_window_s is None
    assert job.known_source_pairs(object(), [], {}, settings) == ([], "")  # type: ignore[arg-type]
    assert seen == [2.5]  # follows the localization's window when that is changed


def test_the_job_uses_the_training_window_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = spy_windows(monkeypatch)
    monkeypatch.setenv("HEIMDALL_TRAINING_TDOA_WINDOW_S", "4.5")
    settings = Settings(tdoa_window_s=3.0)
    job.known_source_pairs(object(), [], {}, settings)  # type: ignore[arg-type]
    assert seen == [4.5]


def test_unreadable_recordings_leave_the_session_without_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def gone(*_: object, **__: object) -> list[TdoaObservation]:
        raise ObjectStoreError("s3://x/a: no such key")

    monkeypatch.setattr(job, "tdoa_observations", gone)
    pairs, missing = job.known_source_pairs(object(), [], {}, Settings())  # type: ignore[arg-type]
    assert pairs == []
    assert missing == "recordings unreadable: s3://x/a: no such key"


def test_the_training_window_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        Settings(training_tdoa_window_s=0.0)
