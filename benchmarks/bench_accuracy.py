"""Accuracy of the localization pipeline on seeded simulator scenarios, calibrated as deployed.

Run: ``PYTHONPATH=src python benchmarks/bench_accuracy.py [--scenarios 640] [--seed 1]
[--known-sessions 40] [--world clean|realistic] [--ablation N]`` (``make bench-accuracy``
runs both worlds and the ablation). Prints Markdown tables; asserts nothing.

``--world realistic`` switches on every impairment of ``simulator.impairments``
(issue 15: GPS solution errors, stale and bad stamps, multipath, converter LO offsets and
drift, announced rate errors, interference, obstructed links, correlated shadowing, the
radio horizon), drawn once per seed after the hidden network; the known-source sessions
of the fit are recorded in the same world, as a deployment records its own.
``--ablation N`` then runs N scenarios for each impairment kind alone (fitted calibration).

The network is the default scenario's seven receivers with hidden imperfections drawn
once per seed: a chain gain error of +-6 dB, a fixed GPS timing bias of +-1 us and a GPS
jitter of 0.1-1 us per block, per receiver. The estimators get only what a deployment
knows:

* **default**: the untrained calibration with the configured GPS timing sigma
  (``get_settings().gps_timing_sigma_ns``);
* **fitted**: ``fit_calibration`` on ``--known-sessions`` known-source sessions
  simulated on the same network (their positions, and half their EIRPs, known);
* **oracle**: the simulator's truth (exponent, shadowing sigma, antenna + hidden gains,
  biases, each receiver's timing sigma): an upper bound, not something a deployment has.

No calibration is told the transmitter's height (``localize`` assumes the receivers'
median). Every receiver's IQ goes through the simulator server's frames and the client's
decoders, ``dsp.measure`` and the service's TDOA lags (``training.simulated``); nothing
is drawn from the estimator's own models.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyproj
from scipy.spatial import Delaunay

from heimdall.core.constants import NS_PER_S
from heimdall.core.process import prepare_computing_process
from heimdall.core.settings import get_settings
from heimdall.localization import Calibration, Receiver, cramer_rao_bound, localize
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.service import default_calibration
from heimdall.receivers.capture import SAMPLES_PER_BLOCK
from heimdall.simulator.impairments import ImpairmentKind, ablated, realistic_world
from heimdall.simulator.physics import link_budget
from heimdall.simulator.scenario import Modulation, Scenario, load_scenario
from heimdall.simulator.waveforms import transmitted_baseband
from heimdall.training.calibration_fit import KnownSourceSession, fit_calibration
from heimdall.training.evaluation import error_m, truth_in_ellipse, wilson_interval
from heimdall.training.simulated import (
    known_source_session,
    pipeline_observations,
    receivers_of,
)

GEOD = pyproj.Geod(ellps="WGS84")

# The service correlates the central part of each capture (Settings.tdoa_window_s).
TDOA_WINDOW_S = get_settings().tdoa_window_s
# The training job correlates the known sources' recordings over their own window
# (Settings.training_window_s: the localization's unless set).
TRAINING_TDOA_WINDOW_S = get_settings().training_window_s
FIRST_START_NS = 1_717_200_000 * NS_PER_S  # 2024-06-01, one minute apart per scenario
KNOWN_FIRST_START_NS = 1_716_000_000 * NS_PER_S  # the known sources, recorded earlier
TRANSMITTER_ALTITUDE_M = 300.0  # the simulator's truth; never given to the estimators
SNR_LEVELS_DB = (0.0, 10.0, 20.0, 30.0)
# Carriers (power only) are a fifth of the scenarios: the TDOA and fused headline rows
# (FM/wideband, >= 10 dB) then reach 300 fixes with ~640 scenarios instead of ~720.
MODULATION_WEIGHTS = {Modulation.carrier: 0.2, Modulation.nfm: 0.4, Modulation.wideband: 0.4}
KNOWN_SNR_LEVELS_DB = (10.0, 20.0, 30.0)  # known sources are picked where they are heard
NO_GPS_SHARE = 0.25  # scenarios in which one receiver has lost its GPS clock
OUTSIDE_RANGE_M = (120e3, 160e3)  # from the network's centre, for the outside third
# Hidden per-receiver imperfections, drawn once per benchmark seed.
GAIN_OFFSET_DB = 6.0
TIMING_BIAS_NS = 1000.0
GPS_JITTER_RANGE_NS = (100.0, 1000.0)  # log-uniform per receiver
# The median of n Gaussian block stamps has sigma sqrt(pi / 2) * jitter / sqrt(n).
MEDIAN_EFFICIENCY = float(np.sqrt(np.pi / 2.0))
METHODS = ("rss", "tdoa", "fused", "auto")
CALIBRATIONS = ("default", "fitted", "oracle")
MIN_HEADLINE_FIXES = 300


@dataclass(frozen=True)
class BenchScenario:
    """One seeded case: the simulator scenario plus the labels the table groups by."""

    scenario: Scenario
    inside_hull: bool
    snr_db: float  # link-budget SNR in the 12 kHz receiver band, at the median receiver
    start_time_ns: int

    @property
    def modulation(self) -> str:
        return str(self.scenario.transmitter.modulation)

    @property
    def latitude(self) -> float:
        return self.scenario.transmitter.latitude

    @property
    def longitude(self) -> float:
        return self.scenario.transmitter.longitude


def hidden_network(base: Scenario, rng: np.random.Generator) -> Scenario:
    """The base network with each receiver's hidden gain error, timing bias and GPS jitter."""
    low, high = np.log(GPS_JITTER_RANGE_NS)
    receivers = [
        r.model_copy(
            update={
                "gain_offset_db": float(rng.uniform(-GAIN_OFFSET_DB, GAIN_OFFSET_DB)),
                "timing_bias_ns": float(rng.uniform(-TIMING_BIAS_NS, TIMING_BIAS_NS)),
                "gps_jitter_ns": float(np.exp(rng.uniform(low, high))),
            }
        )
        for r in base.receivers
    ]
    return base.model_copy(update={"receivers": receivers})


def calibrated_eirp_dbm(scenario: Scenario, snr_db: float) -> float:
    """EIRP that puts the median receiver's link-budget SNR at ``snr_db``."""
    probe = scenario.model_copy(
        update={"transmitter": scenario.transmitter.model_copy(update={"eirp_dbm": 0.0})}
    )
    snrs_db = [link_budget(probe, receiver).snr_db for receiver in probe.receivers]
    return float(snr_db - np.median(snrs_db))


def _transmitter_position(
    receivers: list[Receiver], inside: bool, rng: np.random.Generator
) -> tuple[float, float]:
    """Uniform inside the receivers' convex hull, or 120-160 km from its centre and outside."""
    lon_lat = np.array([[r.longitude, r.latitude] for r in receivers])
    hull = Delaunay(lon_lat)
    while True:
        if inside:
            lon, lat = rng.uniform(lon_lat.min(axis=0), lon_lat.max(axis=0))
        else:
            centre = lon_lat.mean(axis=0)
            lon, lat, _ = GEOD.fwd(
                centre[0], centre[1], rng.uniform(0.0, 360.0), rng.uniform(*OUTSIDE_RANGE_M)
            )
        if (hull.find_simplex([[lon, lat]])[0] >= 0) == inside:
            return float(lat), float(lon)


def make_scenarios(
    network: Scenario,
    count: int,
    rng: np.random.Generator,
    *,
    snr_levels_db: tuple[float, ...] = SNR_LEVELS_DB,
    modulation_weights: dict[Modulation, float] = MODULATION_WEIGHTS,
    first_start_ns: int = FIRST_START_NS,
    seed_offset: int = 0,
) -> list[BenchScenario]:
    """Two thirds inside the hull, one third outside; every other choice seeded at random.

    Each scenario gets its own simulator seed: noise, symbols and GPS jitter are drawn
    afresh, and shadowing (a property of each link) changes with the position anyway.
    """
    receivers = receivers_of(network)
    scenarios = []
    for index in range(count):
        inside = index % 3 != 2
        latitude, longitude = _transmitter_position(receivers, inside, rng)
        snr_db = float(rng.choice(snr_levels_db))
        choices = list(modulation_weights)
        weights = np.array([modulation_weights[m] for m in choices])
        modulation = choices[int(rng.choice(len(choices), p=weights / weights.sum()))]
        no_gps = str(rng.choice([r.id for r in receivers])) if rng.random() < NO_GPS_SHARE else ""
        scenario = network.model_copy(
            update={
                "seed": network.seed + seed_offset + index,
                "transmitter": network.transmitter.model_copy(
                    update={
                        "latitude": latitude,
                        "longitude": longitude,
                        "altitude_m": TRANSMITTER_ALTITUDE_M,
                        "modulation": modulation,
                    }
                ),
                "receivers": [
                    r.model_copy(update={"has_gps": r.id != no_gps}) for r in network.receivers
                ],
            }
        )
        eirp_dbm = calibrated_eirp_dbm(scenario, snr_db)
        scenario = scenario.model_copy(
            update={"transmitter": scenario.transmitter.model_copy(update={"eirp_dbm": eirp_dbm})}
        )
        scenarios.append(
            BenchScenario(
                scenario=scenario,
                inside_hull=inside,
                snr_db=snr_db,
                start_time_ns=first_start_ns + 60 * NS_PER_S * index,
            )
        )
    return scenarios


def known_session_cases(
    network: Scenario, count: int, rng: np.random.Generator
) -> list[BenchScenario]:
    """The known sources' scenarios: FM or wideband, 10-30 dB (drawn from ``rng``)."""
    return make_scenarios(
        network,
        count,
        rng,
        snr_levels_db=KNOWN_SNR_LEVELS_DB,
        modulation_weights={Modulation.nfm: 0.5, Modulation.wideband: 0.5},
        first_start_ns=KNOWN_FIRST_START_NS,
        seed_offset=1_000_000,
    )


def known_sessions(
    network: Scenario, count: int, rng: np.random.Generator
) -> list[KnownSourceSession]:
    """Approved sessions of known sources on the same network (``known_session_cases``)."""
    cases = known_session_cases(network, count, rng)
    return [
        known_source_session(
            f"known-{index:03d}",
            case.scenario,
            case.start_time_ns,
            rng,
            window_s=TRAINING_TDOA_WINDOW_S,
            eirp_known=index % 2 == 0,
        )
        for index, case in enumerate(cases)
    ]


def gps_timing_sigma_ns(jitter_ns: float, sample_rate_hz: float) -> float:
    """One receiver's start-time error over the TDOA window: the median of its block stamps."""
    blocks = np.ceil(TDOA_WINDOW_S * sample_rate_hz / SAMPLES_PER_BLOCK)
    return float(MEDIAN_EFFICIENCY * jitter_ns / np.sqrt(blocks))


def true_timing_sigma_ns(receiver: Any) -> float:
    """A receiver's timing sigma per capture: its block jitter over the window, and the
    GPS solution error the realistic world adds (shared by the whole capture)."""
    jitter_ns = gps_timing_sigma_ns(receiver.gps_jitter_ns, receiver.sample_rate_hz)
    return float(np.hypot(jitter_ns, receiver.impairments.gps.solution_sigma_ns))


def oracle_calibration(network: Scenario) -> Calibration:
    """The simulator's truth as a calibration: what no fit can beat (an upper bound).

    A receiver's gain is its antenna gain plus its hidden chain error; its clock offset
    the hidden bias; its timing sigma that of its window's stamps (``true_timing_sigma_ns``).
    Multipath delays are not in it: they belong to links, not receivers.
    """
    propagation = network.propagation
    return Calibration(
        version="simulator-truth",
        path_loss_exponent=propagation.path_loss_exponent,
        reference_distance_m=propagation.reference_distance_m,
        shadowing_sigma_db=propagation.shadowing_sigma_db,
        gain_offsets_db={r.id: r.antenna_gain_dbi + r.gain_offset_db for r in network.receivers},
        clock_offsets_ns={r.id: r.timing_bias_ns for r in network.receivers},
        timing_sigmas_ns={r.id: true_timing_sigma_ns(r) for r in network.receivers},
        default_timing_sigma_ns=get_settings().gps_timing_sigma_ns,
    )


@dataclass(frozen=True)
class Bound:
    """Per-scenario truth behind the Cramer-Rao bound."""

    power_sigma_db: float
    path_loss_exponent: float
    arrival_sigmas_s: dict[str, float] = field(default_factory=dict)


def rms_bandwidth_hz(scenario: Scenario, start_time_ns: int, sample_rate_hz: float) -> float:
    """RMS bandwidth about the centroid of the transmitted envelope over one TDOA window."""
    offsets_s = np.arange(round(TDOA_WINDOW_S * sample_rate_hz)) / sample_rate_hz
    envelope = transmitted_baseband(scenario.transmitter, scenario.seed, start_time_ns, offsets_s)
    power = np.abs(np.fft.fft(envelope)) ** 2
    frequencies_hz = np.fft.fftfreq(len(envelope), 1.0 / sample_rate_hz)
    centroid_hz = np.sum(frequencies_hz * power) / np.sum(power)
    return float(np.sqrt(np.sum((frequencies_hz - centroid_hz) ** 2 * power) / np.sum(power)))


def pipeline_bound(case: BenchScenario) -> Bound:
    """What the simulator's truth allows: shadowing sigma, and per-receiver arrival bounds.

    Arrival time of a known waveform in white noise: sigma = 1 / (2 pi B_rms sqrt(2 N SNR)),
    N the window's samples, SNR the link budget's (signal over noise in the sample rate),
    combined with the receiver's GPS timing sigma. Carriers have no B_rms and no timing.
    Calibration biases are taken as known (the bound is for a calibrated network).
    """
    scenario = case.scenario
    propagation = scenario.propagation
    sample_rate_hz = float(np.median([r.sample_rate_hz for r in scenario.receivers]))
    bandwidth_hz = rms_bandwidth_hz(scenario, case.start_time_ns, sample_rate_hz)
    arrival_sigmas_s: dict[str, float] = {}
    if bandwidth_hz > 1.0:
        samples = TDOA_WINDOW_S * sample_rate_hz
        for receiver in scenario.receivers:
            if not receiver.has_gps:
                continue
            snr = 10.0 ** (link_budget(scenario, receiver).snr_db / 10.0)
            correlation_s = 1.0 / (2 * np.pi * bandwidth_hz * np.sqrt(2.0 * samples * snr))
            gps_s = 1e-9 * true_timing_sigma_ns(receiver)
            arrival_sigmas_s[receiver.id] = float(np.hypot(gps_s, correlation_s))
    return Bound(
        power_sigma_db=propagation.shadowing_sigma_db,
        path_loss_exponent=propagation.path_loss_exponent,
        arrival_sigmas_s=arrival_sigmas_s,
    )


def crb_rms_m(receivers: list[Receiver], case: BenchScenario, bound: Bound, method: str) -> float:
    """RMS position error bound (m) of ``method`` for this scenario's geometry and noise."""
    frame = LocalFrame(case.latitude, case.longitude, TRANSMITTER_ALTITUDE_M)
    east_m, north_m, _ = frame.geodetic_to_enu(
        [r.latitude for r in receivers],
        [r.longitude for r in receivers],
        [r.altitude_m for r in receivers],
    )
    positions_m = np.column_stack([east_m, north_m])
    timed = [k for k, r in enumerate(receivers) if r.id in bound.arrival_sigmas_s]
    kwargs: dict[str, Any] = {"path_loss_exponent": bound.path_loss_exponent}
    if method in ("rss", "fused"):
        kwargs |= {
            "rss_receivers_en_m": positions_m,
            "rss_sigmas_db": np.full(len(receivers), bound.power_sigma_db),
        }
    if method in ("tdoa", "fused") and len(timed) >= 2:
        kwargs |= {
            "tdoa_receivers_en_m": positions_m[timed],
            "tdoa_arrival_sigmas_s": np.array(
                [bound.arrival_sigmas_s[receivers[k].id] for k in timed]
            ),
        }
    return cramer_rao_bound(np.zeros(2), **kwargs).rms_error_m


@dataclass
class Outcome:
    calibration: str
    method: str
    case: BenchScenario
    error_m: float | None  # None when localize found too few usable receivers
    crb_m: float
    covered: bool
    latency_ms: float  # TDOA lags (when used) + localize


@dataclass
class Run:
    outcomes: list[Outcome]
    network: Scenario
    calibrations: dict[str, Calibration]
    fit_report: dict[str, Any]
    known_sessions: int
    seconds: dict[str, float]


def calibrations_for(
    network: Scenario, sessions: list[KnownSourceSession]
) -> tuple[dict[str, Calibration], dict[str, Any]]:
    default = default_calibration(get_settings())
    fit = fit_calibration(sessions, version="fitted-bench", prior=default)
    return {
        "default": default,
        "fitted": fit.calibration,
        "oracle": oracle_calibration(network),
    }, fit.report


def run(
    count: int,
    seed: int,
    known_count: int,
    shadowing_db: float | None = None,
    *,
    world: str = "clean",
    kind: ImpairmentKind | None = None,
    ablate: bool = False,
    calibrations_wanted: tuple[str, ...] = CALIBRATIONS,
) -> Run:
    rng = np.random.default_rng(seed)
    base = load_scenario()
    if shadowing_db is not None:
        propagation = base.propagation.model_copy(update={"shadowing_sigma_db": shadowing_db})
        base = base.model_copy(update={"propagation": propagation})
    network = hidden_network(base, rng)
    if world == "realistic":
        # Its own generator: the clean world's draws (and table) stay as they were.
        network = realistic_world(network, np.random.default_rng([seed, 15]))
        # An ablation row keeps only ``kind`` (None: no impairment at all, the "none" row);
        # without ``ablate`` every impairment stays on.
        if ablate:
            network = ablated(network, kind)
    receivers = receivers_of(network)
    localize(receivers, [], [])  # warm the frame cache
    prepare_computing_process()  # as a service or worker does once it has started
    seconds: dict[str, float] = {}
    started_s = time.perf_counter()
    sessions = known_sessions(network, known_count, rng)
    seconds["known sessions (render + DSP)"] = time.perf_counter() - started_s
    started_s = time.perf_counter()
    calibrations, report = calibrations_for(network, sessions)
    seconds["fit"] = time.perf_counter() - started_s
    started_s = time.perf_counter()
    outcomes = []
    for case in make_scenarios(network, count, rng):
        observations = pipeline_observations(
            case.scenario, case.start_time_ns, rng, window_s=TDOA_WINDOW_S
        )
        bound = pipeline_bound(case)
        for label in calibrations_wanted:
            for method in METHODS:
                localize_started_s = time.perf_counter()
                result = localize(
                    receivers,
                    observations.powers,
                    observations.pairs,
                    calibrations[label],
                    method=method,  # type: ignore[arg-type]
                    # As the service: dBm ceilings beside dBm readings only.
                    not_heard=observations.not_heard
                    if all(p.unit == "dBm" for p in observations.powers)
                    else [],
                )
                latency_ms = 1e3 * (time.perf_counter() - localize_started_s)
                # As in the service: every method but "rss" correlates the recordings first,
                # also when the pairs then turn out unusable (a carrier falls back to rss).
                if method != "rss":
                    latency_ms += observations.lag_time_ms
                located = result.status == "ok" and result.latitude is not None
                outcomes.append(
                    Outcome(
                        calibration=label,
                        method=method,
                        case=case,
                        error_m=error_m(result, case.latitude, case.longitude) if located else None,
                        crb_m=crb_rms_m(receivers, case, bound, result.method or method),
                        covered=located and truth_in_ellipse(result, case.latitude, case.longitude),
                        latency_ms=latency_ms,
                    )
                )
    seconds["scenarios (render + DSP + 12 fixes each)"] = time.perf_counter() - started_s
    return Run(outcomes, network, calibrations, report, known_count, seconds)


Condition = Callable[[BenchScenario], bool]


def modulated(case: BenchScenario) -> bool:
    return case.modulation != "carrier"


def strong(case: BenchScenario) -> bool:
    return case.snr_db >= 10.0


def inside(case: BenchScenario) -> bool:
    return case.inside_hull


def outside(case: BenchScenario) -> bool:
    return not case.inside_hull


def carrier(case: BenchScenario) -> bool:
    return case.modulation == "carrier"


def modulated_strong(case: BenchScenario) -> bool:
    return modulated(case) and strong(case)


# (label, method, subset): the headline rows (>= MIN_HEADLINE_FIXES fixes each) ...
HEADLINE = (
    ("rss, all", "rss", None),
    ("tdoa, FM/wideband, SNR >= 10 dB", "tdoa", modulated_strong),
    ("fused, FM/wideband, SNR >= 10 dB", "fused", modulated_strong),
    ("auto, all", "auto", None),
)
# ... and the detail rows, for the fitted calibration only.
DETAIL = (
    ("rss, inside hull", "rss", inside),
    ("rss, outside hull", "rss", outside),
    ("tdoa, all usable", "tdoa", None),
    ("tdoa, outside hull", "tdoa", outside),
    ("fused, all usable", "fused", None),
    ("auto, carrier", "auto", carrier),
)


def pick(
    outcomes: list[Outcome], calibration: str, method: str, subset: Condition | None
) -> list[Outcome]:
    return [
        o
        for o in outcomes
        if o.calibration == calibration
        and o.method == method
        and (subset is None or subset(o.case))
    ]


def located(group: list[Outcome]) -> list[Outcome]:
    return [o for o in group if o.error_m is not None]


def median_km(group: list[Outcome]) -> float:
    errors = [o.error_m for o in located(group) if o.error_m is not None]
    return float(np.median(errors)) / 1e3 if errors else float("inf")


def coverage_text(group: list[Outcome]) -> str:
    fixes = located(group)
    covered = sum(o.covered for o in fixes)
    interval = wilson_interval(covered, len(fixes))
    if interval is None:
        return "–"
    return f"{100 * covered / len(fixes):.1f} % ({100 * interval[0]:.0f}-{100 * interval[1]:.0f})"


def row(calibration: str, label: str, group: list[Outcome]) -> str:
    fixes = located(group)
    if not fixes:
        return f"| {calibration} | {label} | 0 / {len(group)} | – | – | – | – | – | – |"
    errors_km = np.array([o.error_m for o in fixes]) / 1e3
    crb_km = np.median([o.crb_m for o in fixes]) / 1e3
    q50, q68, q95 = np.percentile(errors_km, [50, 68, 95])
    p50_ms, p95_ms = np.percentile([o.latency_ms for o in fixes], [50, 95])
    return (
        f"| {calibration} | {label} | {len(fixes)} / {len(group)} | {q50:.2f} | {q68:.2f} "
        f"| {q95:.2f} | {crb_km:.2f} | {coverage_text(group)} | {p50_ms:.0f} / {p95_ms:.0f} |"
    )


def fit_summary(result: Run) -> list[str]:
    """How close the fit came to the hidden values (each set centred: only differences count)."""
    network, fitted = result.network, result.calibrations["fitted"]
    ids = [r.id for r in network.receivers]
    true_gains = np.array([r.antenna_gain_dbi + r.gain_offset_db for r in network.receivers])
    true_biases = np.array([r.timing_bias_ns for r in network.receivers])
    gains = np.array([fitted.gain_offsets_db.get(r, 0.0) for r in ids])
    biases = np.array([fitted.clock_offsets_ns.get(r, 0.0) for r in ids])
    gain_errors = gains - gains.mean() - (true_gains - true_gains.mean())
    bias_errors = biases - biases.mean() - (true_biases - true_biases.mean())
    truth_sigmas = {
        r.id: gps_timing_sigma_ns(r.gps_jitter_ns, r.sample_rate_hz) for r in network.receivers
    }
    sigma_pairs = ", ".join(
        f"{r} {fitted.timing_sigmas_ns.get(r, float('nan')):.0f}/{truth_sigmas[r]:.0f}" for r in ids
    )
    outliers = result.fit_report.get("outlier_sessions", [])
    return [
        f"Fit from {result.known_sessions} known-source sessions "
        f"({result.seconds['fit']:.1f} s): hidden gains recovered within "
        f"{np.max(np.abs(gain_errors)):.2f} dB (rms {np.sqrt(np.mean(gain_errors**2)):.2f}), "
        f"clock biases within {np.max(np.abs(bias_errors)):.0f} ns "
        f"(rms {np.sqrt(np.mean(bias_errors**2)):.0f}); exponent "
        f"{fitted.path_loss_exponent:.2f} (truth {network.propagation.path_loss_exponent:.2f}), "
        f"shadowing sigma {fitted.shadowing_sigma_db:.2f} dB "
        f"(truth {network.propagation.shadowing_sigma_db:.2f}); "
        f"timing sigma fitted/true ns: {sigma_pairs}; "
        f"sessions flagged as outliers: {len(outliers)}.",
    ]


def report(result: Run, count: int) -> str:
    outcomes = result.outcomes
    shadowing_db = result.network.propagation.shadowing_sigma_db
    training_window = f"{TRAINING_TDOA_WINDOW_S:g} s"
    lines = [
        f"{count} scenarios, {shadowing_db:g} dB shadowing per link, "
        f"7 receivers (NW Italy) with hidden gains (+-{GAIN_OFFSET_DB:g} dB), "
        f"clock biases (+-{TIMING_BIAS_NS:g} ns) and GPS jitter "
        f"({GPS_JITTER_RANGE_NS[0]:g}-{GPS_JITTER_RANGE_NS[1]:g} ns per block); 5 s captures, "
        f"{TDOA_WINDOW_S:g} s TDOA window (known sources: {training_window}); "
        "simulator IQ -> KiwiSDR frames -> dsp.measure -> service TDOA lags -> localize (no transmitter height given). Coverage: share of fixes "
        "whose 95 % ellipse holds the truth, Wilson 95 % interval in brackets. Oracle = the "
        "simulator's truth, an upper bound no deployment has.",
        "",
        "| calibration | method, subset | fixes / scenarios | median km | 68 % km | 95 % km "
        "| CRB rms km (median) | truth in 95 % ellipse | latency p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, method, subset in HEADLINE:
        for calibration in CALIBRATIONS:
            lines.append(row(calibration, label, pick(outcomes, calibration, method, subset)))
    for label, method, subset in DETAIL:
        lines.append(row("fitted", label, pick(outcomes, "fitted", method, subset)))
    lines += ["", *fit_summary(result), ""]

    def drop(method: str, subset: Condition | None) -> float:
        before = median_km(pick(outcomes, "default", method, subset))
        after = median_km(pick(outcomes, "fitted", method, subset))
        return 1.0 - after / before

    tdoa_target = pick(outcomes, "fitted", "tdoa", modulated_strong)
    auto_ms = [o.latency_ms for o in located(pick(outcomes, "fitted", "auto", None))]
    p50_ms, p95_ms = np.percentile(auto_ms, [50, 95])
    rss_drop, tdoa_drop = drop("rss", None), drop("tdoa", modulated_strong)
    targets = [
        ("fitted: TDOA median < 1 km (FM/wideband, SNR >= 10 dB)", median_km(tdoa_target) < 1.0),
        ("fitted: RSS median < 10 km", median_km(pick(outcomes, "fitted", "rss", None)) < 10.0),
    ]
    for label, method, subset in HEADLINE:
        group = located(pick(outcomes, "fitted", method, subset))
        share = float(np.mean([o.covered for o in group])) if group else float("nan")
        targets.append(
            (f"fitted: {label} coverage in 90-98 % ({coverage_text(group)})", 0.90 <= share <= 0.98)
        )
        if len(group) < MIN_HEADLINE_FIXES:
            targets.append((f"{label}: at least {MIN_HEADLINE_FIXES} fixes ({len(group)})", False))
    targets.append(
        (
            f"p95 latency <= 100 ms (fitted auto: p50 {p50_ms:.0f} ms, p95 {p95_ms:.0f} ms)",
            p95_ms <= 100.0,
        )
    )
    lines += ["Targets:", *(f"- {'met' if ok else 'NOT met'}: {name}" for name, ok in targets)]
    lines += realistic_targets(outcomes)
    # The end-to-end test's criterion (30 % each), reported: on this network's 4 dB
    # shadowing the power-based error is mostly the shadowing's, whatever the gains.
    lines.append(
        f"- (reported) fitted vs default: median power-based error {-100 * rss_drop:+.0f} %, "
        f"TDOA (FM/wideband >= 10 dB) {-100 * tdoa_drop:+.0f} %"
    )
    timing = "; ".join(f"{name} {value:.0f} s" for name, value in result.seconds.items())
    lines += ["", f"Time: {timing}."]
    return "\n".join(lines)


def realistic_targets(outcomes: list[Outcome]) -> list[str]:
    """Issue 15's targets (judged on the realistic world; printed for either)."""
    lines = ["Issue 15 targets (fitted calibration = production settings):"]
    for method in ("tdoa", "fused"):
        group = located(pick(outcomes, "fitted", method, modulated_strong))
        if not group:
            lines.append(f"- NOT met: {method} FM/wideband >= 10 dB: no fixes")
            continue
        q50, q95 = np.percentile([o.error_m for o in group], [50, 95]) / 1e3
        ok = q50 <= 0.3 and q95 <= 3.0
        lines.append(
            f"- {'met' if ok else 'NOT met'}: {method} FM/wideband >= 10 dB median <= 0.3 km "
            f"and 95 % <= 3 km ({q50:.2f} / {q95:.2f} km)"
        )
    for label, method, subset in HEADLINE:
        group = located(pick(outcomes, "fitted", method, subset))
        interval = wilson_interval(sum(o.covered for o in group), len(group))
        ok = interval is not None and interval[0] >= 0.88 and interval[1] <= 0.98
        lines.append(
            f"- {'met' if ok else 'NOT met'}: {label} coverage Wilson interval inside 88-98 % "
            f"({coverage_text(group)})"
        )
    return lines


ABLATION_KINDS: tuple[ImpairmentKind | None, ...] = (None, *ImpairmentKind)


def ablation_row(kind: ImpairmentKind | None, result: Run) -> str:
    """One impairment alone, fitted calibration: TDOA and fused on FM/wideband >= 10 dB, rss."""
    cells = [str(kind) if kind is not None else "none (clean, same draws)"]
    for method, subset in (("tdoa", modulated_strong), ("fused", modulated_strong), ("rss", None)):
        group = pick(result.outcomes, "fitted", method, subset)
        fixes = located(group)
        if not fixes:
            cells.append(f"0 / {len(group)} | – | – | –")
            continue
        errors_km = np.array([o.error_m for o in fixes]) / 1e3
        q50, q95 = np.percentile(errors_km, [50, 95])
        cells.append(
            f"{len(fixes)} / {len(group)} | {q50:.2f} | {q95:.2f} | {coverage_text(group)}"
        )
    return "| " + " | ".join(cells) + " |"


def ablation_report(rows: list[str], count: int) -> str:
    return "\n".join(
        [
            f"Ablation: each impairment alone on the realistic world's draws, {count} scenarios "
            "each, fitted calibration (fitted on known sources recorded with that impairment).",
            "",
            "| impairment | tdoa fixes | tdoa median km | tdoa 95 % km | tdoa coverage "
            "| fused fixes | fused median km | fused 95 % km | fused coverage "
            "| rss fixes | rss median km | rss 95 % km | rss coverage |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=640)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--known-sessions", type=int, default=40)
    parser.add_argument(
        "--shadowing-db",
        type=float,
        default=None,
        help="log-normal shadowing sigma per link (default: the scenario's, 4 dB)",
    )
    parser.add_argument("--world", choices=("clean", "realistic"), default="clean")
    parser.add_argument(
        "--ablation",
        type=int,
        default=0,
        help="scenarios per impairment kind alone (0: no ablation; 'none' is the clean row)",
    )
    parser.add_argument(
        "--ablation-only", action="store_true", help="skip the main table, run the ablation"
    )
    arguments = parser.parse_args()
    started_s = time.perf_counter()
    if not arguments.ablation_only:
        result = run(
            arguments.scenarios,
            arguments.seed,
            arguments.known_sessions,
            arguments.shadowing_db,
            world=arguments.world,
        )
        print(f"World: {arguments.world}.")
        print(report(result, arguments.scenarios))
        print(f"\n(run time {time.perf_counter() - started_s:.0f} s)", flush=True)
    if arguments.ablation:
        rows = []
        for kind in ABLATION_KINDS:
            part = run(
                arguments.ablation,
                arguments.seed,
                arguments.known_sessions,
                arguments.shadowing_db,
                world="realistic",
                kind=kind,
                ablate=True,
                calibrations_wanted=("fitted",),
            )
            rows.append(ablation_row(kind, part))
            print(rows[-1], flush=True)
        print()
        print(ablation_report(rows, arguments.ablation))
        print(f"\n(run time {time.perf_counter() - started_s:.0f} s)")


if __name__ == "__main__":
    main()
