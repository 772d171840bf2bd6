"""Known-source sessions drawn from the fit's own model, with known parameters.

The truth is explicit (gains, exponent, reference loss, shadowing sigma, clock biases,
timing sigmas), so the fit's estimates and intervals can be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.localization import PowerObservation, Receiver, TdoaObservation
from heimdall.localization.rss import path_loss_db
from heimdall.training.calibration_fit import KnownSourceSession
from heimdall.training.fit_data import receiver_ranges_m
from tests.unit.localization.synthetic import nw_italy_receivers

RECEIVERS = nw_italy_receivers()
REFERENCE_DISTANCE_M = 100.0


@dataclass(frozen=True)
class Truth:
    gains_db: dict[str, float]
    clock_biases_ns: dict[str, float]
    timing_sigmas_ns: dict[str, float]
    path_loss_exponent: float = 2.8
    reference_loss_db: float = 75.0
    shadowing_sigma_db: float = 4.0
    correlation_sigma_ns: float = 30.0
    receivers: list[Receiver] = field(default_factory=lambda: list(RECEIVERS))


def draw_truth(rng: np.random.Generator, **overrides: object) -> Truth:
    ids = [r.id for r in RECEIVERS]
    return Truth(
        gains_db={r: float(g) for r, g in zip(ids, rng.uniform(-6, 6, len(ids)), strict=True)},
        clock_biases_ns={
            r: float(b) for r, b in zip(ids, rng.uniform(-1000, 1000, len(ids)), strict=True)
        },
        timing_sigmas_ns={
            r: float(s) for r, s in zip(ids, rng.uniform(20, 150, len(ids)), strict=True)
        },
        **overrides,  # type: ignore[arg-type]
    )


def random_position(rng: np.random.Generator) -> tuple[float, float]:
    """Somewhere over the network's region (NW Italy, around and between the sites)."""
    return float(rng.uniform(44.2, 45.8)), float(rng.uniform(7.2, 9.4))


def model_session(
    truth: Truth,
    rng: np.random.Generator,
    task_id: str,
    *,
    position: tuple[float, float] | None = None,
    eirp_known: bool = False,
    receivers: list[Receiver] | None = None,
) -> KnownSourceSession:
    """One session: powers from the log-distance model, pairs against the strongest receiver."""
    receivers = receivers or truth.receivers
    latitude, longitude = position or random_position(rng)
    eirp_dbm = float(rng.uniform(30.0, 50.0))
    placeholder = KnownSourceSession(
        task_id, latitude, longitude, 300.0, None, receivers, powers=[]
    )
    ranges = receiver_ranges_m(placeholder)
    ids = [r.id for r in receivers]
    distances = np.array([ranges[r] for r in ids])
    powers = (
        eirp_dbm
        - truth.reference_loss_db
        - path_loss_db(distances, truth.path_loss_exponent, REFERENCE_DISTANCE_M)
        + np.array([truth.gains_db[r] for r in ids])
        + truth.shadowing_sigma_db * rng.standard_normal(len(ids))
    )
    clock_errors_ns = np.array(
        [truth.clock_biases_ns[r] + truth.timing_sigmas_ns[r] * rng.standard_normal() for r in ids]
    )
    arrivals_s = distances / SPEED_OF_LIGHT_M_PER_S + 1e-9 * clock_errors_ns
    reference = int(np.argmax(powers))
    pairs = []
    for k in range(len(ids)):
        if k == reference:
            continue
        correlation_ns = truth.correlation_sigma_ns * rng.uniform(0.5, 1.5)
        pairs.append(
            TdoaObservation(
                receiver_i=ids[k],
                receiver_j=ids[reference],
                time_difference_s=float(
                    arrivals_s[k]
                    - arrivals_s[reference]
                    + 1e-9 * correlation_ns * rng.standard_normal()
                ),
                sigma_s=1e-9 * correlation_ns,
            )
        )
    return KnownSourceSession(
        task_id=task_id,
        source_latitude=latitude,
        source_longitude=longitude,
        source_altitude_m=300.0,
        source_eirp_dbm=eirp_dbm if eirp_known else None,
        receivers=receivers,
        powers=[
            PowerObservation(receiver_id=r, power=float(p))
            for r, p in zip(ids, powers, strict=True)
        ],
        pairs=pairs,
    )


def model_sessions(
    truth: Truth, rng: np.random.Generator, count: int, *, eirp_known_share: float = 0.5
) -> list[KnownSourceSession]:
    return [
        model_session(truth, rng, f"task-{k:04d}", eirp_known=rng.random() < eirp_known_share)
        for k in range(count)
    ]
