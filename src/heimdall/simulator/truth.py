"""The calibration a perfect training fit would converge to on a simulated network.

Benchmarks and tests use it as an oracle bound (labelled so in every result):
the simulator's own propagation model, each receiver's antenna gain as its gain
offset and its digital full scale as ``full_scale_dbm``, so dBm readings (KiwiSDR
RSSI) and S-meter readings (OpenWebRX) land on one scale.
"""

from __future__ import annotations

from heimdall.localization.calibration import Calibration
from heimdall.simulator.scenario import Scenario

ORACLE_VERSION = "oracle-simulator-truth"


def truth_calibration(scenario: Scenario) -> Calibration:
    """The simulator's truth as a calibration.

    Example:
        >>> from heimdall.simulator.scenario import PACKAGE_DATA, load_scenario
        >>> calibration = truth_calibration(load_scenario(PACKAGE_DATA / "scenario-openwebrx.yaml"))
        >>> calibration.path_loss_exponent, calibration.full_scale_dbm["coazze"]
        (2.8, -28.0)
    """
    propagation = scenario.propagation
    return Calibration(
        version=ORACLE_VERSION,
        path_loss_exponent=propagation.path_loss_exponent,
        reference_distance_m=propagation.reference_distance_m,
        shadowing_sigma_db=propagation.shadowing_sigma_db,
        gain_offsets_db={r.id: r.antenna_gain_dbi for r in scenario.receivers},
        full_scale_dbm={r.id: scenario.full_scale_dbm_of(r) for r in scenario.receivers},
    )
