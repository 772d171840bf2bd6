"""Accuracy of the localization estimators on seeded scenarios of the NW Italy network.

Run: ``PYTHONPATH=src python benchmarks/bench_accuracy.py [--scenarios 60] [--seed 1]``
(``make bench-accuracy``). Prints a Markdown table; asserts nothing.

Observations are synthesised from the estimators' own models (``synthetic_observations``):
log-normal shadowing on the powers, and per-receiver arrival-time errors from GPS jitter
plus a correlation timing error that shrinks with SNR and the signal's RMS bandwidth.
A later pass swaps that one function for observations measured by the DSP on the
simulator's rendered IQ; everything else stays.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import yaml

from heimdall.localization import (
    Calibration,
    LocalizationResult,
    PowerObservation,
    Receiver,
    TdoaObservation,
    cramer_rao_bound,
    localize,
)
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.rss import path_loss_db
from heimdall.localization.tdoa import SPEED_OF_LIGHT_M_PER_S
from heimdall.localization.uncertainty import CHI2_2DOF_95

STATIONS = Path(__file__).parents[1] / "src/heimdall/data/stations-simulated.yaml"
GEOD = pyproj.Geod(ellps="WGS84")

# RMS bandwidth of each signal class inside a KiwiSDR's ~12 kHz IQ passband; a carrier has
# none, so its correlation peak is flat and its TDOA unusable.
RMS_BANDWIDTH_HZ = {"carrier": 0.0, "fm": 2_000.0, "wideband": 3_500.0}
CAPTURE_S = 2.0
SAMPLE_RATE_HZ = 12_000.0
SOURCE_POWER_DBM = 40.0
TRANSMITTER_ALTITUDE_M = 300.0
POWER_SIGMA_DB = 1.0  # the power estimate's own error, on top of shadowing
DETECTION_SNR_DB = -3.0  # below this a receiver gives no usable correlation


@dataclass(frozen=True)
class Scenario:
    latitude: float
    longitude: float
    inside_hull: bool
    snr_db: float  # at the median receiver
    modulation: str
    gps_jitter_s: float
    receivers_without_gps: tuple[str, ...]


@dataclass(frozen=True)
class Observations:
    powers: list[PowerObservation]
    pairs: list[TdoaObservation]
    # For the bound: per-receiver sigmas behind the observations.
    power_sigma_db: float
    arrival_sigmas_s: dict[str, float]


def load_receivers() -> list[Receiver]:
    stations = yaml.safe_load(STATIONS.read_text())["stations"]
    return [
        Receiver(
            id=s["id"], latitude=s["latitude"], longitude=s["longitude"], altitude_m=s["altitude_m"]
        )
        for s in stations
    ]


def make_scenarios(
    receivers: list[Receiver], count: int, rng: np.random.Generator
) -> list[Scenario]:
    """Two thirds inside the network's bounding region, one third 20-80 km outside it."""
    lats = np.array([r.latitude for r in receivers])
    lons = np.array([r.longitude for r in receivers])
    scenarios = []
    for index in range(count):
        inside = index % 3 != 2
        if inside:
            lat, lon = rng.uniform(lats.min(), lats.max()), rng.uniform(lons.min(), lons.max())
        else:
            azimuth_deg = rng.uniform(0.0, 360.0)
            lon, lat, _ = GEOD.fwd(
                float(np.mean(lons)), float(np.mean(lats)), azimuth_deg, rng.uniform(120e3, 160e3)
            )
        no_gps = (str(rng.choice([r.id for r in receivers])),) if rng.random() < 0.25 else ()
        scenarios.append(
            Scenario(
                latitude=float(lat),
                longitude=float(lon),
                inside_hull=inside,
                snr_db=float(rng.choice([0.0, 10.0, 20.0, 30.0])),
                modulation=str(rng.choice(list(RMS_BANDWIDTH_HZ))),
                gps_jitter_s=float(rng.choice([0.1e-6, 0.5e-6, 1.0e-6])),
                receivers_without_gps=no_gps,
            )
        )
    return scenarios


def _ranges_m(receivers: list[Receiver], scenario: Scenario) -> np.ndarray:
    frame = LocalFrame(scenario.latitude, scenario.longitude, TRANSMITTER_ALTITUDE_M)
    enu = np.column_stack(
        frame.geodetic_to_enu(
            [r.latitude for r in receivers],
            [r.longitude for r in receivers],
            [r.altitude_m for r in receivers],
        )
    )
    return np.asarray(np.linalg.norm(enu, axis=1))


def synthetic_observations(
    receivers: list[Receiver],
    scenario: Scenario,
    calibration: Calibration,
    rng: np.random.Generator,
) -> Observations:
    """Observations for one scenario: the boundary a simulator+DSP pass will replace."""
    ranges_m = _ranges_m(receivers, scenario)
    mean_power_dbm = SOURCE_POWER_DBM - path_loss_db(
        ranges_m, calibration.path_loss_exponent, calibration.reference_distance_m
    )
    shadowing_db = calibration.shadowing_sigma_db * rng.standard_normal(len(receivers))
    powers_dbm = (
        mean_power_dbm + shadowing_db + POWER_SIGMA_DB * rng.standard_normal(len(receivers))
    )
    powers = [
        PowerObservation(receiver_id=r.id, power=float(p), sigma_db=POWER_SIGMA_DB)
        for r, p in zip(receivers, powers_dbm, strict=True)
    ]
    snr_db = scenario.snr_db + (mean_power_dbm + shadowing_db) - np.median(mean_power_dbm)
    snr = 10.0 ** (snr_db / 10.0)
    rms_bandwidth_hz = RMS_BANDWIDTH_HZ[scenario.modulation]
    # Delay-estimation bound: 1 / (2 pi B_rms sqrt(2 SNR N)), N samples in the capture.
    if rms_bandwidth_hz > 0:
        correlation_sigma_s = 1.0 / (
            2 * np.pi * rms_bandwidth_hz * np.sqrt(2.0 * snr * CAPTURE_S * SAMPLE_RATE_HZ)
        )
        arrival_sigma_s = np.hypot(scenario.gps_jitter_s, correlation_sigma_s)
    else:
        arrival_sigma_s = np.full(len(receivers), np.inf)
    timed = [
        k
        for k, r in enumerate(receivers)
        if r.id not in scenario.receivers_without_gps and snr_db[k] >= DETECTION_SNR_DB
    ]
    finite_sigma_s = np.where(np.isfinite(arrival_sigma_s), arrival_sigma_s, 0.0)
    arrivals_s = ranges_m / SPEED_OF_LIGHT_M_PER_S + finite_sigma_s * rng.standard_normal(
        len(receivers)
    )
    pairs = []
    for i, j in itertools.combinations(timed, 2):
        pair_sigma_s = float(np.hypot(arrival_sigma_s[i], arrival_sigma_s[j]))
        pair_snr = snr[i] * snr[j] / (1.0 + snr[i] + snr[j])
        usable = np.isfinite(pair_sigma_s)
        pairs.append(
            TdoaObservation(
                receiver_i=receivers[i].id,
                receiver_j=receivers[j].id,
                # A carrier's correlation peak lands anywhere within a cycle of its offset.
                time_difference_s=float(arrivals_s[i] - arrivals_s[j])
                if usable
                else float(rng.uniform(-5e-4, 5e-4)),
                sigma_s=pair_sigma_s if usable else 1e-3,
                quality=float(pair_snr / (1.0 + pair_snr)) if usable else 0.02,
            )
        )
    return Observations(
        powers=powers,
        pairs=pairs,
        power_sigma_db=float(np.hypot(calibration.shadowing_sigma_db, POWER_SIGMA_DB)),
        arrival_sigmas_s={
            receivers[k].id: float(arrival_sigma_s[k])
            for k in timed
            if np.isfinite(arrival_sigma_s[k])
        },
    )


def crb_rms_m(
    receivers: list[Receiver], scenario: Scenario, observations: Observations, method: str
) -> float:
    frame = LocalFrame(scenario.latitude, scenario.longitude, TRANSMITTER_ALTITUDE_M)
    east_m, north_m, _ = frame.geodetic_to_enu(
        [r.latitude for r in receivers],
        [r.longitude for r in receivers],
        [r.altitude_m for r in receivers],
    )
    positions_m = np.column_stack([east_m, north_m])
    timed = [k for k, r in enumerate(receivers) if r.id in observations.arrival_sigmas_s]
    kwargs: dict = {}
    if method in ("rss", "fused"):
        kwargs |= {
            "rss_receivers_en_m": positions_m,
            "rss_sigmas_db": np.full(len(receivers), observations.power_sigma_db),
        }
    if method in ("tdoa", "fused") and len(timed) >= 2:
        kwargs |= {
            "tdoa_receivers_en_m": positions_m[timed],
            "tdoa_arrival_sigmas_s": np.array(
                [observations.arrival_sigmas_s[receivers[k].id] for k in timed]
            ),
        }
    return cramer_rao_bound(np.zeros(2), **kwargs).rms_error_m


def truth_inside_ellipse(result: LocalizationResult, scenario: Scenario) -> bool:
    """Mahalanobis test in a plane at the truth (its axes differ from the fix's by < 2 deg)."""
    assert result.latitude is not None and result.longitude is not None
    assert result.covariance_en_m2 is not None
    frame = LocalFrame(scenario.latitude, scenario.longitude, 0.0)
    east_m, north_m = frame.geodetic_to_plane(result.latitude, result.longitude)
    offset = np.array([float(east_m), float(north_m)])
    covariance = np.array(result.covariance_en_m2)
    return float(offset @ np.linalg.solve(covariance, offset)) <= CHI2_2DOF_95


@dataclass
class Outcome:
    method: str
    scenario: Scenario
    error_m: float
    crb_m: float
    covered: bool
    latency_ms: float


def run(count: int, seed: int) -> list[Outcome]:
    rng = np.random.default_rng(seed)
    receivers = load_receivers()
    calibration = Calibration()
    outcomes = []
    localize(receivers, [], [])  # warm the frame cache
    for scenario in make_scenarios(receivers, count, rng):
        observations = synthetic_observations(receivers, scenario, calibration, rng)
        for method in ("rss", "tdoa", "fused", "auto"):
            started_s = time.perf_counter()
            result = localize(
                receivers,
                observations.powers,
                observations.pairs,
                calibration,
                method=method,  # type: ignore[arg-type]
                transmitter_altitude_m=TRANSMITTER_ALTITUDE_M,
            )
            latency_ms = 1e3 * (time.perf_counter() - started_s)
            if result.status != "ok" or result.latitude is None or result.longitude is None:
                continue
            used = result.method or method
            error_m = GEOD.inv(
                scenario.longitude, scenario.latitude, result.longitude, result.latitude
            )[2]
            outcomes.append(
                Outcome(
                    method=method,
                    scenario=scenario,
                    error_m=float(error_m),
                    crb_m=crb_rms_m(receivers, scenario, observations, used),
                    covered=truth_inside_ellipse(result, scenario),
                    latency_ms=latency_ms,
                )
            )
    return outcomes


def _row(label: str, group: list[Outcome]) -> str:
    if not group:
        return f"| {label} | 0 | – | – | – | – | – | – |"
    errors_km = np.array([o.error_m for o in group]) / 1e3
    crb_km = np.median([o.crb_m for o in group]) / 1e3
    coverage = 100.0 * np.mean([o.covered for o in group])
    latency = np.percentile([o.latency_ms for o in group], 95)
    q50, q68, q95 = np.percentile(errors_km, [50, 68, 95])
    return (
        f"| {label} | {len(group)} | {q50:.2f} | {q68:.2f} | {q95:.2f} | {crb_km:.2f} "
        f"| {coverage:.0f} % | {latency:.0f} |"
    )


def report(outcomes: list[Outcome], count: int) -> str:
    def pick(method: str, *, modulations=None, min_snr_db=-99.0, inside=None) -> list[Outcome]:
        return [
            o
            for o in outcomes
            if o.method == method
            and (modulations is None or o.scenario.modulation in modulations)
            and o.scenario.snr_db >= min_snr_db
            and (inside is None or o.scenario.inside_hull == inside)
        ]

    rows = [
        ("rss, all", pick("rss")),
        ("rss, inside hull", pick("rss", inside=True)),
        ("rss, outside hull", pick("rss", inside=False)),
        (
            "tdoa, FM/wideband, SNR >= 10 dB",
            pick("tdoa", modulations={"fm", "wideband"}, min_snr_db=10),
        ),
        ("tdoa, all usable", pick("tdoa")),
        ("tdoa, outside hull", pick("tdoa", inside=False)),
        ("fused, all usable", pick("fused")),
        (
            "fused, FM/wideband, SNR >= 10 dB",
            pick("fused", modulations={"fm", "wideband"}, min_snr_db=10),
        ),
        ("auto, all", pick("auto")),
        ("auto, carrier", pick("auto", modulations={"carrier"})),
    ]
    lines = [
        f"{count} scenarios, 7 receivers (NW Italy), default calibration "
        "(n = 2, shadowing 6 dB); TDOA needs GPS and >= 4 timed receivers.",
        "",
        "| method, subset | n | median km | 68 % km | 95 % km | CRB rms km (median) "
        "| truth in 95 % ellipse | p95 latency ms |",
        "|---|---|---|---|---|---|---|---|",
        *(_row(label, group) for label, group in rows),
    ]
    tdoa_good = pick("tdoa", modulations={"fm", "wideband"}, min_snr_db=10)
    tdoa_jitter = [o for o in tdoa_good if o.scenario.gps_jitter_s <= 1e-6]
    targets = [
        (
            "TDOA median < 1 km (FM/wideband, SNR >= 10 dB, jitter <= 1 us)",
            bool(tdoa_jitter) and np.median([o.error_m for o in tdoa_jitter]) < 1e3,
        ),
        ("RSS median < 10 km", np.median([o.error_m for o in pick("rss")]) < 10e3),
    ]
    for method in ("rss", "tdoa", "fused", "auto"):
        group = pick(method)
        coverage = np.mean([o.covered for o in group]) if group else float("nan")
        targets.append(
            (f"{method} coverage in 90-98 % ({100 * coverage:.0f} %)", 0.90 <= coverage <= 0.98)
        )
    latency = np.percentile([o.latency_ms for o in pick("auto")], 95)
    targets.append((f"p95 latency <= 100 ms ({latency:.0f} ms)", latency <= 100.0))
    lines += ["", "Targets:", *(f"- {'met' if ok else 'NOT met'}: {name}" for name, ok in targets)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    print(report(run(arguments.scenarios, arguments.seed), arguments.scenarios))


if __name__ == "__main__":
    main()
