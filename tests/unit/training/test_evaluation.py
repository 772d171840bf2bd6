"""Evaluation of a calibration on known sources, cross-validation and the activation rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from heimdall.localization import Calibration
from heimdall.training.calibration_fit import (
    compare_calibrations,
    cross_validate,
    evaluate_calibration,
)
from tests.unit.training.model_sessions import draw_truth, model_sessions


def metrics(version: str, errors: Mapping[str, Mapping[str, float | None]]) -> dict:
    """An evaluation-shaped result from per-method, per-session errors (None: not located)."""
    task_ids = sorted({t for per_method in errors.values() for t in per_method})
    return {
        "calibration_version": version,
        "sessions": [
            {
                "task_id": t,
                "methods": {
                    method: (
                        {"located": True, "error_m": per_method[t], "covered": True}
                        if per_method.get(t) is not None
                        else {"located": False}
                    )
                    for method, per_method in errors.items()
                },
            }
            for t in task_ids
        ],
        "methods": {},
    }


def errors_like(base: np.ndarray, factor: float, rng: np.random.Generator) -> dict[str, float]:
    return {f"t{k}": float(v * factor * rng.uniform(0.9, 1.1)) for k, v in enumerate(base)}


def test_a_much_better_tdoa_and_an_unchanged_rss_beat_the_active_calibration() -> None:
    rng = np.random.default_rng(1)
    rss = rng.uniform(5e3, 60e3, 30)
    tdoa = rng.uniform(100.0, 900.0, 30)
    active = metrics(
        "old", {"rss": errors_like(rss, 1.0, rng), "tdoa": errors_like(tdoa, 1.0, rng)}
    )
    candidate = metrics(
        "new", {"rss": errors_like(rss, 1.0, rng), "tdoa": errors_like(tdoa, 0.2, rng)}
    )
    beats, comparison = compare_calibrations(candidate, active)
    assert beats and comparison["beats"]
    assert comparison["methods"]["tdoa"]["verdict"] == "better"
    assert comparison["methods"]["rss"]["verdict"] == "no significant change"
    assert comparison["methods"]["tdoa"]["median_error_ratio"] < 0.25
    assert "sign-test" in comparison["rule"]


def test_a_worse_power_fix_vetoes_activation_even_with_better_tdoa() -> None:
    rng = np.random.default_rng(2)
    rss = rng.uniform(5e3, 60e3, 30)
    tdoa = rng.uniform(100.0, 900.0, 30)
    active = metrics(
        "old", {"rss": errors_like(rss, 1.0, rng), "tdoa": errors_like(tdoa, 1.0, rng)}
    )
    candidate = metrics(
        "new", {"rss": errors_like(rss, 1.5, rng), "tdoa": errors_like(tdoa, 0.2, rng)}
    )
    beats, comparison = compare_calibrations(candidate, active)
    assert not beats
    assert comparison["methods"]["rss"]["verdict"] == "worse"


def test_too_few_common_sessions_are_not_compared_and_nothing_better_means_no() -> None:
    active = metrics("old", {"rss": {"a": 1e3, "b": 2e3}, "tdoa": {"a": 50.0}})
    candidate = metrics("new", {"rss": {"a": 1e2, "b": 2e2}, "tdoa": {"a": 5.0}})
    beats, comparison = compare_calibrations(candidate, active)
    assert not beats
    assert {m["verdict"] for m in comparison["methods"].values()} == {"not compared"}


def test_unpaired_metrics_compare_the_median_with_the_active_ones_interval() -> None:
    rng = np.random.default_rng(3)
    active = metrics(
        "old", {"tdoa": {f"a{k}": float(v) for k, v in enumerate(rng.uniform(400, 600, 40))}}
    )
    candidate = metrics(
        "new", {"tdoa": {f"c{k}": float(v) for k, v in enumerate(rng.uniform(40, 60, 40))}}
    )
    beats, comparison = compare_calibrations(candidate, active)
    assert beats
    assert comparison["methods"]["tdoa"]["paired_sessions"] == 0


def test_cross_validation_holds_out_whole_sites_and_scores_every_session() -> None:
    rng = np.random.default_rng(4)
    truth = draw_truth(rng)
    sessions = model_sessions(truth, rng, 18)
    # Two more sessions at the first one's place: the same site, so the same fold.
    sessions += [
        dataclasses.replace(
            sessions[0], task_id=f"again-{k}", source_longitude=sessions[0].source_longitude + 0.001
        )
        for k in range(2)
    ]
    result = cross_validate(sessions, prior=Calibration(), folds=3)
    assert sum(result["fold_sizes"]) == len(sessions)
    folds = result["fold_of"]
    assert folds["again-0"] == folds["again-1"] == folds[sessions[0].task_id]
    assert result["failed_folds"] == []
    assert result["sessions_evaluated"] == len(sessions)
    again = cross_validate(sessions, prior=Calibration(), folds=3)
    assert again["fold_of"] == folds  # deterministic
    # Held-out fits remove the +-1 us clock biases the default calibration ignores.
    default = evaluate_calibration(sessions, Calibration())
    assert (
        result["methods"]["tdoa"]["median_error_m"]
        < 0.5 * default["methods"]["tdoa"]["median_error_m"]
    )
    assert default["methods"]["rss"]["located"] == len(sessions)
    beats, _ = compare_calibrations(result, default)
    assert beats


def test_quantile_interval_covers_the_true_p95_as_often_as_it_says() -> None:
    # Exponential samples: the true 95th percentile is -ln(0.05). Over 2 000 samples of
    # 200 the interval holds it 95-97 % of the time (order statistics round outwards).
    from heimdall.training.evaluation import quantile_interval

    rng = np.random.default_rng(7)
    true_p95 = -np.log(0.05)
    intervals = [quantile_interval(rng.exponential(size=200), 0.95) for _ in range(2_000)]
    covered = np.mean([low <= true_p95 <= high for _, low, high in intervals])
    assert 0.94 <= covered <= 0.975
    assert all(low <= p95 <= high for p95, low, high in intervals)
