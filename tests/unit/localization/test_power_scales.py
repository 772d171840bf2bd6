"""Power readings of two kinds of receiver: which go into one fit, and the inputs report."""

from __future__ import annotations

import numpy as np

from heimdall.localization import (
    Calibration,
    LocalizationResult,
    PowerObservation,
    Receiver,
    localize,
)
from heimdall.localization.service import (
    localization_inputs,
    not_heard,
    power_observations,
    select_power_scales,
)
from heimdall.models import Measurement
from tests.unit.localization import synthetic

KIWI = [PowerObservation(receiver_id=r, power=-90.0) for r in ("a", "b", "c")]
SMETER = [PowerObservation(receiver_id=r, power=-50.0, unit="dBFS") for r in ("d", "e")]


def test_an_all_smeter_network_keeps_every_reading() -> None:
    kept, excluded = select_power_scales(SMETER, Calibration())
    assert kept == SMETER and excluded == {}


def test_uncalibrated_smeters_beside_dbm_wait_for_a_calibration() -> None:
    kept, excluded = select_power_scales(KIWI + SMETER, Calibration())
    assert kept == KIWI
    assert set(excluded) == {"d", "e"} and "calibration" in excluded["d"]
    # A calibration with a term for a receiver puts its reading on the network's scale.
    calibrated = Calibration(gain_offsets_db={"d": 40.0}, full_scale_dbm={"e": -40.0})
    kept, excluded = select_power_scales(KIWI + SMETER, calibrated)
    assert kept == KIWI + SMETER and excluded == {}


def test_rows_without_dbm_are_smeter_readings() -> None:
    rows = [
        Measurement(websdr_id="a", power_dbm=-95.0, signal_power_dbfs=-50.0, gps_locked=True),
        Measurement(websdr_id="d", power_dbm=None, signal_power_dbfs=-61.5, gps_locked=False),
    ]
    observations = power_observations(rows)
    assert [(o.receiver_id, o.power, o.unit) for o in observations] == [
        ("a", -95.0, "dBm"),
        ("d", -61.5, "dBFS"),
    ]


def test_inputs_name_the_receivers_of_each_part() -> None:
    receivers = [
        Receiver(id="a", latitude=45.0, longitude=7.3),
        Receiver(id="b", latitude=45.2, longitude=7.9),
        Receiver(id="c", latitude=44.6, longitude=8.9),
        Receiver(id="d", latitude=45.5, longitude=9.1),
    ]
    powers = [
        PowerObservation(receiver_id="a", power=-80.0),
        PowerObservation(receiver_id="b", power=-85.0),
        PowerObservation(receiver_id="c", power=-92.0),
    ]
    result: LocalizationResult = localize(receivers, powers, [], method="rss")
    rows = [Measurement(websdr_id=r, gps_locked=r in ("a", "b")) for r in ("a", "b", "c", "d")]
    inputs = localization_inputs(result, rows, {"d": "uncalibrated"})
    assert inputs == {
        "power": ["a", "b", "c"],
        "tdoa": [],
        "gps_timed": ["a", "b"],
        "no_gps_time": ["c", "d"],
        "power_excluded": {"d": "uncalibrated"},
        "tdoa_excluded": {
            **dict.fromkeys(("a", "b"), "the fix is power-only (rss)"),
            **dict.fromkeys(("c", "d"), "no GPS time"),
        },
        "power_not_above_noise": {},
    }


def test_receivers_hearing_only_noise_are_left_out_and_named() -> None:
    rows = [
        Measurement(websdr_id="a", snr=12.0, power_dbm=-95.0, gps_locked=True),
        Measurement(websdr_id="b", snr=-18.2, power_dbm=-160.0, gps_locked=True),
    ]
    assert [o.receiver_id for o in power_observations(rows)] == ["a"]
    assert "not above the noise" in not_heard(rows)["b"]
    assert "a" not in not_heard(rows)


def test_each_gps_timed_receiver_outside_the_tdoa_part_says_why() -> None:
    receivers = synthetic.nw_italy_receivers()
    ranges_m = synthetic.true_ranges_m(receivers, 45.0, 7.6, 300.0)
    rng = np.random.default_rng(3)
    ids = [r.id for r in receivers]
    # A star against the first receiver; the pairing gave up on the last one (left_out)
    # and passed the second-to-last with a sigma the estimator refuses (50 us > 20 us).
    star = [
        p
        for p in synthetic.tdoa_observations(receivers, ranges_m, rng, reported_sigma_floor_s=1e-7)
        if p.receiver_i == ids[0] and p.receiver_j != ids[-1]
    ]
    star = [p.model_copy(update={"sigma_s": 5e-5}) if p.receiver_j == ids[-2] else p for p in star]
    result = localize(
        receivers,
        synthetic.power_observations(receivers, ranges_m, rng),
        star,
        method="fused",
    )
    assert result.status == "ok" and result.method == "fused"
    rows = [Measurement(websdr_id=r, gps_locked=True) for r in ids]
    left_out = {ids[-1]: f"{ids[-1]}-{ids[0]}: correlation quality 2.7 dB"}
    inputs = localization_inputs(result, rows, {}, left_out)
    assert inputs["tdoa"] == sorted(ids[:-2])
    assert inputs["tdoa_excluded"] == {
        ids[-1]: left_out[ids[-1]],
        ids[-2]: "its pair's timing is too uncertain for the fix",
    }
