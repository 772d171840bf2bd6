"""The fit recovers the simulator's hidden gain offsets and timing biases through the real
signal path: rendered IQ -> KiwiSDR frames -> IQCapture -> dsp.measure -> service lags.

This checks the conventions end to end (a chain gain error reaches ``power_dbm``, a
late GPS stamp reaches the lag with the sign ``localize`` corrects). The fit's
statistics are tested on model sessions (test_calibration_fit.py); here shadowing is
kept at 1 dB so that 12 short sessions pin every gain well inside the 1.5 dB asked.
"""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.core.constants import NS_PER_S
from heimdall.localization import Calibration, localize
from heimdall.simulator.physics import link_budget
from heimdall.simulator.scenario import Modulation, Scenario, load_scenario
from heimdall.training.calibration_fit import fit_calibration
from heimdall.training.evaluation import error_m
from heimdall.training.simulated import known_source_session, pipeline_observations

START_NS = 1_717_300_000 * NS_PER_S
SESSIONS = 12
CAPTURE_S = 1.0
WINDOW_S = 0.5
MEDIAN_SNR_DB = 25.0


def hidden_network(rng: np.random.Generator) -> Scenario:
    base = load_scenario()
    receivers = [
        r.model_copy(
            update={
                "gain_offset_db": float(rng.uniform(-6.0, 6.0)),
                "timing_bias_ns": float(rng.uniform(-1000.0, 1000.0)),
            }
        )
        for r in base.receivers
    ]
    return base.model_copy(
        update={
            "receivers": receivers,
            "propagation": base.propagation.model_copy(update={"shadowing_sigma_db": 1.0}),
            "transmitter": base.transmitter.model_copy(update={"modulation": Modulation.wideband}),
        }
    )


def with_transmitter_at(scenario: Scenario, latitude: float, longitude: float) -> Scenario:
    moved = scenario.model_copy(
        update={
            "transmitter": scenario.transmitter.model_copy(
                update={"latitude": latitude, "longitude": longitude, "eirp_dbm": 0.0}
            )
        }
    )
    snrs_db = [link_budget(moved, r).snr_db for r in moved.receivers]
    eirp_dbm = MEDIAN_SNR_DB - float(np.median(snrs_db))
    return moved.model_copy(
        update={"transmitter": moved.transmitter.model_copy(update={"eirp_dbm": eirp_dbm})}
    )


def test_the_fit_recovers_hidden_gains_and_biases_from_rendered_sessions() -> None:
    rng = np.random.default_rng(2024)
    network = hidden_network(rng)
    sessions = []
    for k in range(SESSIONS):
        scenario = with_transmitter_at(
            network, float(rng.uniform(44.4, 45.6)), float(rng.uniform(7.4, 9.2))
        )
        sessions.append(
            known_source_session(
                f"sim-{k:02d}",
                scenario,
                START_NS + 60 * NS_PER_S * k,
                rng,
                window_s=WINDOW_S,
                eirp_known=k % 2 == 0,
                capture_s=CAPTURE_S,
            )
        )
    fit = fit_calibration(sessions, version="sim", prior=Calibration())
    calibration = fit.calibration

    ids = [r.id for r in network.receivers]
    # A receiver's whole gain: its antenna and its chain's hidden error.
    true_gains = np.array(
        [r.antenna_gain_dbi + r.gain_offset_db for r in network.receivers], dtype=np.float64
    )
    true_biases = np.array([r.timing_bias_ns for r in network.receivers], dtype=np.float64)
    fitted_gains = np.array([calibration.gain_offsets_db[r] for r in ids])
    fitted_biases = np.array([calibration.clock_offsets_ns[r] for r in ids])
    gain_errors = fitted_gains - (true_gains - true_gains.mean())
    bias_errors = fitted_biases - (true_biases - true_biases.mean())
    assert np.max(np.abs(gain_errors)) < 1.5, gain_errors.round(2)
    assert np.max(np.abs(bias_errors)) < 100.0, bias_errors.round(1)
    assert calibration.path_loss_exponent == pytest.approx(
        network.propagation.path_loss_exponent, abs=0.3
    )
    assert fit.report["outlier_sessions"] == []

    # And the fitted calibration localizes a new transmitter where the default cannot.
    target = with_transmitter_at(network, 44.95, 8.35)
    observations = pipeline_observations(
        target, START_NS + 3600 * NS_PER_S, rng, window_s=WINDOW_S, capture_s=CAPTURE_S
    )
    receivers = sessions[0].receivers
    errors = {}
    for name, used in (("default", Calibration()), ("fitted", calibration)):
        result = localize(
            list(receivers), observations.powers, observations.pairs, used, method="tdoa"
        )
        errors[name] = error_m(result, 44.95, 8.35)
    assert errors["fitted"] < min(100.0, 0.3 * errors["default"]), errors
