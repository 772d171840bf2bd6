"""TDOA accuracy at HF on seeded ground-wave networks anywhere on Earth, as deployed.

Run: ``PYTHONPATH=src python benchmarks/bench_hf.py [--scenarios 400] [--seed 1]
[--impairments]`` (``make bench-hf``). Prints a Markdown table; asserts nothing.

Each scenario is a new network: 3 to 6 KiwiSDRs placed at random around a random centre
(latitude 55 S to 60 N, any longitude), every pair 200-500 km apart, hearing a 2.4 kBd
transmitter on 3-28 MHz placed uniformly inside their hull. The simulator's ground wave
(``Propagation.ground_wave``) carries each path over the ellipsoid with a group delay
beyond light time whose mean rate is drawn per scenario (20-40 ns/km: the ground) and
varies per link (6 ns/km); each receiver has a hidden GPS bias (+-500 ns) and jitter
(50-150 ns per block). Every receiver's IQ goes through the KiwiSDR frames, the client's
decoders, ``dsp.measure`` and the service's TDOA lags (``training.simulated``).

The estimator gets what a deployment has: the receivers' positions, the frequency, and
the default calibration (``localization.service.default_calibration``), so each
receiver's timing sigma is the HF floor and delay spread over its path, and the ground
wave's rate the nominal one (``heimdall.core.constants``). Nothing of the scenario's truth reaches it. The
"line of sight" rows are what the same fixes give under the VHF model (straight lines at
the speed of light, GPS timing sigma only): the model mismatch, for comparison.

``--impairments`` renders every scenario in the realism issue's ``realistic`` world
(``apply_impairments``: GPS solution errors and bad stamps, multipath, converter LO
offsets, announced-rate errors, interference, obstructed links, correlated shadowing).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

from heimdall.core.constants import NS_PER_S
from heimdall.core.process import prepare_computing_process
from heimdall.core.settings import get_settings
from heimdall.localization import localize
from heimdall.localization.estimate import LocalizationResult
from heimdall.localization.geodesy import LocalFrame, geodesic_distances_m
from heimdall.localization.service import default_calibration
from heimdall.simulator.impairments import realistic_world
from heimdall.simulator.physics import link_budget
from heimdall.simulator.scenario import (
    PACKAGE_DATA,
    GroundWave,
    ReceiverSettings,
    Scenario,
    load_scenario,
)
from heimdall.training.evaluation import error_m, truth_in_ellipse, wilson_interval
from heimdall.training.simulated import pipeline_observations, receivers_of

TDOA_WINDOW_S = get_settings().tdoa_window_s
FIRST_START_NS = 1_735_000_000 * NS_PER_S  # one minute apart per scenario
RECEIVER_COUNTS = (3, 4, 5, 6)
PAIR_DISTANCE_M = (200e3, 500e3)
PLACEMENT_RADIUS_M = 260e3  # receivers uniform in a disc this wide around the centre
LATITUDE_RANGE_DEG = (-55.0, 60.0)
FREQUENCY_RANGE_HZ = (3.0e6, 28.0e6)
SNR_RANGE_DB = (10.0, 30.0)  # link-budget SNR at the median receiver
GROUND_RATE_NS_PER_KM = (20.0, 40.0)  # per scenario: the ground
GROUND_SPREAD_NS_PER_KM = 6.0  # per link
TIMING_BIAS_NS = 500.0
GPS_JITTER_RANGE_NS = (50.0, 150.0)
TRANSMITTER_ALTITUDE_M = 200.0
MIN_FIXES = 300
#: Other HF ground-wave delay spreads tried on the same observations (sensitivity), ns/km.
SENSITIVITY_SPREADS_NS_PER_KM = (6.0, 8.0)
COVERAGE_TARGET = (0.88, 0.98)


@dataclass(frozen=True)
class Case:
    scenario: Scenario
    start_time_ns: int

    @property
    def receivers(self) -> int:
        return len(self.scenario.receivers)


@dataclass(frozen=True)
class Fix:
    case: Case
    model: str  # "ground_wave" (production) or "line_of_sight" (comparison)
    spread: float | None  # a sensitivity run's HF delay spread (ns/km); None: production
    error_m: float | None
    covered: bool
    rivals: int
    latency_ms: float  # TDOA lags + localize
    localize_ms: float


def _network(rng: np.random.Generator, count: int) -> tuple[LocalFrame, np.ndarray]:
    """A centre and ``count`` receiver positions in its plane, every pair 200-500 km apart."""
    while True:
        frame = LocalFrame(
            float(np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians(LATITUDE_RANGE_DEG)))))),
            float(rng.uniform(-180.0, 180.0)),
        )
        points: list[np.ndarray] = []
        for _ in range(2000):
            radius_m = PLACEMENT_RADIUS_M * np.sqrt(rng.uniform())
            angle = rng.uniform(0.0, 2 * np.pi)
            candidate = radius_m * np.array([np.sin(angle), np.cos(angle)])
            if not points:
                points.append(candidate)
                continue
            lat, lon = frame.plane_to_geodetic(candidate[0], candidate[1])
            lats, lons = frame.plane_to_geodetic(*np.array(points).T)
            distances_m = geodesic_distances_m(lat, lon, lats, lons)
            if np.all((distances_m >= PAIR_DISTANCE_M[0]) & (distances_m <= PAIR_DISTANCE_M[1])):
                points.append(candidate)
                if len(points) == count:
                    return frame, np.array(points)


def _inside(points_m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hull = Delaunay(points_m)
    while True:
        candidate = rng.uniform(points_m.min(axis=0), points_m.max(axis=0))
        if hull.find_simplex(candidate[np.newaxis])[0] >= 0:
            return np.asarray(candidate)


def apply_impairments(scenario: Scenario, rng: np.random.Generator) -> Scenario:
    """The scenario in the realism issue's ``realistic`` world, without its radio horizon.

    Every receiver gets the realistic GPS, multipath, converter LO, sample-rate,
    interference and obstruction impairments (``simulator.impairments``) and shadowing
    is correlated between nearby receivers. The 4/3-Earth horizon is a line-of-sight
    limit: a ground wave bends past it, so it stays off at HF.
    """
    impaired = realistic_world(scenario, rng)
    propagation = impaired.propagation.model_copy(update={"radio_horizon": False})
    return impaired.model_copy(update={"propagation": propagation})


def make_case(base: Scenario, index: int, rng: np.random.Generator, impairments: bool) -> Case:
    count = RECEIVER_COUNTS[index % len(RECEIVER_COUNTS)]
    frame, points_m = _network(rng, count)
    latitudes, longitudes = frame.plane_to_geodetic(points_m[:, 0], points_m[:, 1])
    template = base.receivers[0]
    low, high = np.log(GPS_JITTER_RANGE_NS)
    receivers = [
        ReceiverSettings(
            id=f"rx{k}",
            latitude=float(latitudes[k]),
            longitude=float(longitudes[k]),
            altitude_m=float(rng.uniform(0.0, 800.0)),
            noise_figure_db=template.noise_figure_db,
            lo_error_ppm=float(rng.uniform(-0.03, 0.03)),
            sample_rate_hz=12_000.0 + float(rng.uniform(0.5, 1.5)),
            timing_bias_ns=float(rng.uniform(-TIMING_BIAS_NS, TIMING_BIAS_NS)),
            gps_jitter_ns=float(np.exp(rng.uniform(low, high))),
            protocol="kiwisdr",
        )
        for k in range(count)
    ]
    tx_lat, tx_lon = frame.plane_to_geodetic(*_inside(points_m, rng))
    ground_wave = GroundWave(
        excess_delay_ns_per_km=float(rng.uniform(*GROUND_RATE_NS_PER_KM)),
        excess_delay_sigma_ns_per_km=GROUND_SPREAD_NS_PER_KM,
    )
    scenario = base.model_copy(
        update={
            "seed": base.seed + index,
            "receivers": receivers,
            "propagation": base.propagation.model_copy(update={"ground_wave": ground_wave}),
            "transmitter": base.transmitter.model_copy(
                update={
                    "latitude": float(tx_lat),
                    "longitude": float(tx_lon),
                    "altitude_m": TRANSMITTER_ALTITUDE_M,
                    "frequency_hz": float(rng.uniform(*FREQUENCY_RANGE_HZ)),
                    "eirp_dbm": 0.0,
                }
            ),
        }
    )
    snrs_db = [link_budget(scenario, receiver).snr_db for receiver in receivers]
    eirp_dbm = float(rng.uniform(*SNR_RANGE_DB) - np.median(snrs_db))
    scenario = scenario.model_copy(
        update={"transmitter": scenario.transmitter.model_copy(update={"eirp_dbm": eirp_dbm})}
    )
    if impairments:
        scenario = apply_impairments(scenario, rng)
    return Case(scenario, FIRST_START_NS + 60 * NS_PER_S * index)


def _fix(
    case: Case,
    result: LocalizationResult,
    model: str,
    spread: float | None,
    lag_ms: float,
    localize_ms: float,
) -> Fix:
    transmitter = case.scenario.transmitter
    located = result.status == "ok" and result.latitude is not None
    return Fix(
        case=case,
        model=model,
        spread=spread,
        error_m=error_m(result, transmitter.latitude, transmitter.longitude) if located else None,
        covered=located and truth_in_ellipse(result, transmitter.latitude, transmitter.longitude),
        rivals=int(result.diagnostics.get("ambiguous_solutions", 0)) if located else 0,
        latency_ms=lag_ms + localize_ms,
        localize_ms=localize_ms,
    )


def run(count: int, seed: int, impairments: bool) -> tuple[list[Fix], float]:
    rng = np.random.default_rng(seed)
    base = load_scenario(PACKAGE_DATA / "scenario-hf-europe.yaml")
    calibration = default_calibration(get_settings())
    prepare_computing_process()
    fixes: list[Fix] = []
    started_s = time.perf_counter()
    for index in range(count):
        case = make_case(base, index, rng, impairments)
        observations = pipeline_observations(
            case.scenario, case.start_time_ns, rng, window_s=TDOA_WINDOW_S
        )
        receivers = receivers_of(case.scenario)
        runs: list[tuple[str, float | None]] = [("ground_wave", None), ("line_of_sight", None)]
        runs += [("ground_wave", spread) for spread in SENSITIVITY_SPREADS_NS_PER_KM]
        for model, spread in runs:
            used = calibration
            if spread is not None:
                spreads = calibration.ground_wave_delay_spread_ns_per_km | {"hf": spread}
                used = calibration.model_copy(
                    update={"ground_wave_delay_spread_ns_per_km": spreads}
                )
            localize_started_s = time.perf_counter()
            result = localize(
                receivers,
                [],
                observations.pairs,
                used,
                method="tdoa",
                frequency_hz=case.scenario.transmitter.frequency_hz,
                propagation=model,  # type: ignore[arg-type]
            )
            localize_ms = 1e3 * (time.perf_counter() - localize_started_s)
            fixes.append(_fix(case, result, model, spread, observations.lag_time_ms, localize_ms))
    return fixes, time.perf_counter() - started_s


def coverage(group: list[Fix]) -> tuple[float, list[float] | None, str]:
    located = [f for f in group if f.error_m is not None]
    covered = sum(f.covered for f in located)
    interval = wilson_interval(covered, len(located))
    if interval is None:
        return float("nan"), None, "–"
    share = covered / len(located)
    return share, interval, f"{100 * share:.1f} % ({100 * interval[0]:.0f}-{100 * interval[1]:.0f})"


def row(label: str, group: list[Fix]) -> str:
    located = [f for f in group if f.error_m is not None]
    if not located:
        return f"| {label} | 0 / {len(group)} | – | – | – | – | – | – | – |"
    errors_km = np.array([f.error_m for f in located]) / 1e3
    q50, q68, q95 = np.percentile(errors_km, [50, 68, 95])
    rivals = sum(f.rivals > 0 for f in located)
    p50_ms, p95_ms = np.percentile([f.latency_ms for f in located], [50, 95])
    l50_ms, l95_ms = np.percentile([f.localize_ms for f in located], [50, 95])
    return (
        f"| {label} | {len(located)} / {len(group)} | {q50:.2f} | {q68:.2f} | {q95:.2f} "
        f"| {coverage(group)[2]} | {rivals} | {p50_ms:.0f} / {p95_ms:.0f} "
        f"| {l50_ms:.0f} / {l95_ms:.0f} |"
    )


def report(fixes: list[Fix], count: int, seconds: float, impairments: bool) -> str:
    production = [f for f in fixes if f.model == "ground_wave" and f.spread is None]
    naive = [f for f in fixes if f.model == "line_of_sight"]
    lines = [
        f"{count} scenarios{' with the realism impairments' if impairments else ''}: "
        "3-6 KiwiSDRs 200-500 km apart anywhere (55 S - 60 N), transmitter inside their "
        "hull on 3-28 MHz, 2.4 kBd, SNR 10-30 dB at the median receiver; ground wave with "
        f"{GROUND_RATE_NS_PER_KM[0]:g}-{GROUND_RATE_NS_PER_KM[1]:g} ns/km excess delay per "
        f"scenario and {GROUND_SPREAD_NS_PER_KM:g} ns/km per link, GPS biases "
        f"+-{TIMING_BIAS_NS:g} ns; simulator IQ -> KiwiSDR frames -> dsp.measure -> service "
        f"TDOA lags ({TDOA_WINDOW_S:g} s window) -> localize(method='tdoa', frequency), "
        "default calibration. Coverage: truth inside the 95 % ellipse, Wilson 95 % interval.",
        "",
        "| model, receivers | fixes / scenarios | median km | 68 % km | 95 % km "
        "| truth in 95 % ellipse | fixes with a rival | lags + localize p50 / p95 ms "
        "| localize p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
        row("ground wave (production), 3-6", production),
    ]
    for receivers in RECEIVER_COUNTS:
        lines.append(
            row(
                f"ground wave, {receivers}",
                [f for f in production if f.case.receivers == receivers],
            )
        )
    lines.append(row("line of sight (VHF model, comparison), 3-6", naive))
    lines.append(row("line of sight, 3", [f for f in naive if f.case.receivers == 3]))
    for spread in SENSITIVITY_SPREADS_NS_PER_KM:
        lines.append(
            row(
                f"ground wave, HF delay spread {spread:g} ns/km (sensitivity), 3-6",
                [f for f in fixes if f.spread == spread],
            )
        )
    located = [f for f in production if f.error_m is not None]
    median_km = float(np.median([f.error_m for f in located])) / 1e3 if located else np.inf
    share, interval, text = coverage(production)
    three = [f for f in production if f.case.receivers == 3 and f.error_m is not None]
    three_km = float(np.median([f.error_m for f in three])) / 1e3 if three else np.inf
    inside = interval is not None and (
        COVERAGE_TARGET[0] <= interval[0] and interval[1] <= COVERAGE_TARGET[1]
    )
    targets = [
        (f"TDOA median < 2 km, 3-6 receivers ({median_km:.2f} km)", median_km < 2.0),
        (f"TDOA median < 2 km, 3 receivers ({three_km:.2f} km)", three_km < 2.0),
        (f"95 % coverage with its Wilson interval inside 88-98 % ({text})", inside),
        (f"at least {MIN_FIXES} fixes ({len(located)})", len(located) >= MIN_FIXES),
    ]
    lines += ["", "Targets:", *(f"- {'met' if ok else 'NOT met'}: {n}" for n, ok in targets)]
    lines += ["", f"Time: {seconds:.0f} s (render + DSP + 5 fixes per scenario)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=400)
    # Seeds 1, 7 and 8 chose the HF delay spread (core.constants); 2 is the record.
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument(
        "--impairments",
        action="store_true",
        help="render with the realism issue's simulator impairments (see apply_impairments)",
    )
    arguments = parser.parse_args()
    fixes, seconds = run(arguments.scenarios, arguments.seed, arguments.impairments)
    print(report(fixes, arguments.scenarios, seconds, arguments.impairments))


if __name__ == "__main__":
    main()
