"""Known-answer tests of the calibration fit on sessions drawn from its own model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from heimdall.localization import Calibration, PowerObservation, TdoaObservation
from heimdall.training.calibration_fit import (
    FitOptions,
    KnownSourceSession,
    NotEnoughData,
    fit_calibration,
)
from tests.unit.training.model_sessions import (
    Truth,
    draw_truth,
    model_session,
    model_sessions,
)


def centred(values: dict[str, float]) -> dict[str, float]:
    mean = float(np.mean(list(values.values())))
    return {k: v - mean for k, v in values.items()}


def inside(entry: dict, value: float) -> bool:
    low, high = entry["ci"]
    return bool(low <= value <= high)


def test_recovers_the_model_parameters_within_their_intervals() -> None:
    rng = np.random.default_rng(11)
    truth = draw_truth(rng)
    sessions = model_sessions(truth, rng, 60)
    # 99.9 % intervals: with ~25 intervals checked at once, 95 % ones would all hold
    # only a quarter of the time even when every one of them is right.
    fit = fit_calibration(
        sessions, version="t", prior=Calibration(), options=FitOptions(confidence=0.999)
    )
    report, calibration = fit.report, fit.calibration
    gains, biases = centred(truth.gains_db), centred(truth.clock_biases_ns)
    for receiver_id, entry in report["receivers"].items():
        assert inside(entry["gain_offset_db"], gains[receiver_id]), receiver_id
        assert calibration.gain_offsets_db[receiver_id] == pytest.approx(
            gains[receiver_id], abs=1.5
        )
        assert inside(entry["clock_offset_ns"], biases[receiver_id]), receiver_id
        assert calibration.clock_offsets_ns[receiver_id] == pytest.approx(
            biases[receiver_id], abs=100.0
        )
        assert inside(entry["timing_sigma_ns"], truth.timing_sigmas_ns[receiver_id]), receiver_id
        assert entry["power_sessions"] == 60
    parameters = report["parameters"]
    assert inside(parameters["path_loss_exponent"], truth.path_loss_exponent)
    assert inside(parameters["shadowing_sigma_db"], truth.shadowing_sigma_db)
    # The reference loss is relative to the network's mean gain (the gauge).
    mean_gain = float(np.mean(list(truth.gains_db.values())))
    assert inside(parameters["reference_loss_db"], truth.reference_loss_db - mean_gain)
    assert calibration.reference_loss_db == pytest.approx(
        truth.reference_loss_db - mean_gain, abs=3.0
    )
    assert np.mean(list(calibration.gain_offsets_db.values())) == pytest.approx(0.0, abs=1e-9)
    assert np.mean(list(calibration.clock_offsets_ns.values())) == pytest.approx(0.0, abs=1e-6)
    assert calibration.version == "t"
    assert calibration.default_timing_sigma_ns == Calibration().default_timing_sigma_ns
    assert calibration.reference_distance_m == Calibration().reference_distance_m
    assert report["kept_at_prior"] == [] and report["outlier_sessions"] == []
    json.dumps(report)  # JSON-safe as promised


def test_intervals_have_about_their_nominal_coverage() -> None:
    """A small Monte Carlo: 95 % intervals should hold the truth about 95 % of the time."""
    hits: dict[str, list[bool]] = {"gain": [], "bias": [], "sigma": [], "exponent": []}
    for repetition in range(30):
        rng = np.random.default_rng(500 + repetition)
        truth = draw_truth(rng)
        report = fit_calibration(
            model_sessions(truth, rng, 25), version="mc", prior=Calibration()
        ).report
        gains, biases = centred(truth.gains_db), centred(truth.clock_biases_ns)
        for receiver_id, entry in report["receivers"].items():
            hits["gain"].append(inside(entry["gain_offset_db"], gains[receiver_id]))
            hits["bias"].append(inside(entry["clock_offset_ns"], biases[receiver_id]))
            hits["sigma"].append(
                inside(entry["timing_sigma_ns"], truth.timing_sigmas_ns[receiver_id])
            )
        hits["exponent"].append(
            inside(report["parameters"]["path_loss_exponent"], truth.path_loss_exponent)
        )
    # 210 intervals per receiver parameter: a binomial 95 % band is about +-3 %.
    for name in ("gain", "bias", "sigma"):
        assert 0.90 <= np.mean(hits[name]) <= 0.99, (name, np.mean(hits[name]))
    assert np.mean(hits["exponent"]) >= 0.85  # 30 intervals only


def test_one_bad_session_barely_moves_the_fit() -> None:
    rng = np.random.default_rng(21)
    truth = draw_truth(rng)
    sessions = model_sessions(truth, rng, 20)
    clean = fit_calibration(sessions, version="clean", prior=Calibration()).calibration
    wrong_place = dataclasses.replace(
        sessions[0],
        source_latitude=sessions[0].source_latitude + 0.27,  # 30 km north
    )
    receiver_off = dataclasses.replace(
        sessions[1],
        powers=[
            PowerObservation(receiver_id=p.receiver_id, power=p.power + (20.0 if k == 2 else 0.0))
            for k, p in enumerate(sessions[1].powers)
        ],
    )
    for index, bad in ((0, wrong_place), (1, receiver_off)):
        corrupted = [bad if k == index else s for k, s in enumerate(sessions)]
        fit = fit_calibration(corrupted, version="bad", prior=Calibration())
        for receiver_id, gain in clean.gain_offsets_db.items():
            assert fit.calibration.gain_offsets_db[receiver_id] == pytest.approx(gain, abs=0.5)
            assert fit.calibration.clock_offsets_ns[receiver_id] == pytest.approx(
                clean.clock_offsets_ns[receiver_id], abs=30.0
            )
        assert fit.calibration.path_loss_exponent == pytest.approx(
            clean.path_loss_exponent, abs=0.1
        )
        session = fit.report["sessions"][index]
        if bad is wrong_place:
            # Its lags are tens of microseconds off the known geometry: no weight left.
            assert session["timing"]["session_weight"] < 0.01
            assert bad.task_id in fit.report["outlier_sessions"]
        else:
            off_id = sessions[1].powers[2].receiver_id
            assert session["power"]["weights"][off_id] == 0.0
            assert session["power"]["residuals_db"][off_id] > 15.0


def test_one_bad_pair_is_excluded_not_its_whole_session() -> None:
    rng = np.random.default_rng(23)
    truth = draw_truth(rng)
    sessions = model_sessions(truth, rng, 20)
    pairs = list(sessions[3].pairs)
    pairs[1] = pairs[1].model_copy(update={"time_difference_s": pairs[1].time_difference_s + 5e-6})
    sessions[3] = dataclasses.replace(sessions[3], pairs=pairs)
    report = fit_calibration(sessions, version="t", prior=Calibration()).report
    timing = report["sessions"][3]["timing"]
    assert timing["excluded_pairs"] == [f"{pairs[1].receiver_i}-{pairs[1].receiver_j}"]
    assert timing["session_weight"] == 1.0


def test_a_receiver_seen_in_too_few_sessions_keeps_the_prior() -> None:
    rng = np.random.default_rng(31)
    truth = draw_truth(rng)
    sparse = "genova"
    everyone = list(truth.receivers)
    without = [r for r in everyone if r.id != sparse]
    sessions = [
        model_session(truth, rng, f"s{k:03d}", receivers=everyone if k < 3 else without)
        for k in range(25)
    ]
    prior = Calibration(
        version="prior-v1",
        gain_offsets_db={sparse: 1.5},
        clock_offsets_ns={sparse: -40.0},
        timing_sigmas_ns={sparse: 70.0},
    )
    fit = fit_calibration(sessions, version="t", prior=prior)
    calibration, report = fit.calibration, fit.report
    assert calibration.gain_offsets_db[sparse] == 1.5
    assert calibration.clock_offsets_ns[sparse] == -40.0
    assert calibration.timing_sigmas_ns[sparse] == 70.0
    entry = report["receivers"][sparse]
    assert entry["power_sessions"] == 3 and entry["gain_offset_db"]["source"] == "prior"
    assert "fewer than 5" in entry["gain_offset_db"]["reason"]
    kept = {k["receiver_id"]: k for k in report["kept_at_prior"]}
    assert set(kept) == {sparse}
    assert set(kept[sparse]["parameters"]) == {
        "gain_offset_db",
        "clock_offset_ns",
        "timing_sigma_ns",
    }
    # The others are fitted, in their own gauge (mean zero over the fitted receivers).
    fitted = [calibration.gain_offsets_db[r.id] for r in without]
    assert np.mean(fitted) == pytest.approx(0.0, abs=1e-9)


def test_no_known_eirp_leaves_the_reference_loss_to_the_prior() -> None:
    rng = np.random.default_rng(41)
    truth = draw_truth(rng)
    sessions = model_sessions(truth, rng, 15, eirp_known_share=0.0)
    fit = fit_calibration(sessions, version="t", prior=Calibration())
    assert fit.calibration.reference_loss_db is None
    entry = fit.report["parameters"]["reference_loss_db"]
    assert entry["source"] == "prior" and "EIRP" in entry["reason"]
    assert fit.calibration.path_loss_exponent == pytest.approx(truth.path_loss_exponent, abs=0.4)


def test_no_sessions_or_no_usable_data_raise_not_enough_data() -> None:
    with pytest.raises(NotEnoughData, match="no sessions"):
        fit_calibration([], version="t", prior=Calibration())
    rng = np.random.default_rng(51)
    truth = draw_truth(rng)
    # Four sessions: every receiver is below the five-session minimum.
    with pytest.raises(NotEnoughData, match=">= 5 sessions"):
        fit_calibration(model_sessions(truth, rng, 4), version="t", prior=Calibration())
    empty = KnownSourceSession("e", 45.0, 8.0, 0.0, None, truth.receivers, powers=[], pairs=[])
    with pytest.raises(NotEnoughData):
        fit_calibration([empty] * 6, version="t", prior=Calibration())


def test_uninformative_pairs_and_unknown_receivers_are_ignored() -> None:
    rng = np.random.default_rng(61)
    truth: Truth = draw_truth(rng)
    sessions = model_sessions(truth, rng, 12)
    noisy = [
        dataclasses.replace(
            s,
            powers=[*s.powers, PowerObservation(receiver_id="elsewhere", power=-80.0)],
            pairs=[
                *s.pairs,
                TdoaObservation(
                    receiver_i=s.pairs[0].receiver_i,
                    receiver_j=s.pairs[0].receiver_j,
                    time_difference_s=1e-3,
                    sigma_s=1e-3,  # the service's "unusable" pair
                ),
            ],
        )
        for s in sessions
    ]
    assert (
        fit_calibration(noisy, version="t", prior=Calibration()).calibration
        == fit_calibration(sessions, version="t", prior=Calibration()).calibration
    )


def test_a_geometry_that_cannot_separate_the_exponent_keeps_the_prior_power_model() -> None:
    rng = np.random.default_rng(71)
    truth = draw_truth(rng)
    # Every session at the same place with unknown EIRP: each receiver's distance never
    # changes, so its gain and the exponent's share of its loss are one unknown.
    place = (45.0, 8.0)
    sessions = [
        model_session(truth, rng, f"p{k:02d}", position=place, eirp_known=False) for k in range(8)
    ]
    fit = fit_calibration(sessions, version="t", prior=Calibration())
    assert fit.calibration.path_loss_exponent == Calibration().path_loss_exponent
    assert fit.calibration.gain_offsets_db == {}
    reason = fit.report["parameters"]["path_loss_exponent"]["reason"]
    assert "cannot separate" in reason
    # Timing has no such problem: the biases are fitted.
    assert set(fit.calibration.clock_offsets_ns) == set(truth.clock_biases_ns)
    assert all(e["clock_offset_ns"]["ci"] is not None for e in fit.report["receivers"].values())
