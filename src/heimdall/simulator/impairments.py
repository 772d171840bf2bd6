"""Real-world impairments of a receiver and its link, as scenario settings (issue 15).

Each receiver of a scenario may carry an ``impairments:`` block; all default to off, so
a scenario without one renders exactly as before. ``realistic_impairments`` draws the
set the ``realistic`` benchmark world uses (every impairment on, magnitudes from what
KiwiSDR networks show), and ``only`` keeps a single kind of them for the ablation.

Kinds (``ImpairmentKind``), and where they act (``physics`` and ``channel``):

* ``gps``: a timing error that is one smooth function per GPS solution (piecewise linear
  between solutions ``solution_interval_s`` apart, sigma ``solution_sigma_ns``): a
  receiver interpolates its block stamps from its last solution, so a capture shares
  one error instead of averaging independent per-block jitter away; solutions that go
  stale (``last_gps_solution`` 254, stamps drifting off by ``stale_drift_ns_per_s``)
  and occasional bad stamps (off by ``bad_stamp_us`` microseconds).
* ``multipath``: a tapped delay line per link: up to ``echoes`` echoes within
  ``delay_spread_us``, each a Rayleigh tap ``echo_power_db`` below the direct path,
  fading slowly (``fading_hz``); the direct path is Rician (``rician_k_db``).
* ``lo``: a converter in front of the receiver (``converter_offset_hz``, up to +-2 kHz)
  drifting slowly (``drift_hz`` peak over ``drift_period_s``).
* ``sample_rate``: the announced sample rate ``announced_rate_error_ppm`` off the true
  one (the GPS stamps still follow the true one).
* ``interference``: a second signal in the passband for a share of the time
  (``interferer_probability`` per 10 s, ``interferer_snr_db`` over the noise) and
  impulsive noise (``impulses_per_s`` impulses ``impulse_snr_db`` over the noise).
* ``not_heard``: the link is obstructed with ``obstruction_probability`` (``obstruction_loss_db``).
* Scenario-wide, in ``Propagation``: ``shadowing_correlation_m`` (shadowing correlated
  between nearby receivers, ``shadowing_correlation``) and ``radio_horizon``
  (4/3-Earth smooth-Earth horizon, ``horizon``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # scenario.py imports this module
    from heimdall.simulator.scenario import Scenario


class ImpairmentKind(StrEnum):
    gps = "gps"
    multipath = "multipath"
    lo = "lo"
    sample_rate = "sample_rate"
    interference = "interference"
    not_heard = "not_heard"
    shadowing_correlation = "shadowing_correlation"
    horizon = "horizon"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpsTiming(_Model):
    solution_sigma_ns: Annotated[float, Field(ge=0)] = 0.0
    solution_interval_s: Annotated[float, Field(gt=0)] = 8.0
    stale_probability: Annotated[float, Field(ge=0, le=1)] = 0.0
    stale_drift_ns_per_s: Annotated[float, Field(ge=0)] = 2_000.0
    bad_stamp_probability: Annotated[float, Field(ge=0, le=1)] = 0.0
    bad_stamp_us: Annotated[float, Field(ge=0)] = 100.0


class Multipath(_Model):
    echoes: Annotated[int, Field(ge=0, le=4)] = 0
    delay_spread_us: Annotated[float, Field(ge=0, le=100)] = 10.0
    echo_power_db: tuple[float, float] = (-12.0, -4.0)
    rician_k_db: float | None = 10.0  # None: the direct path fades as Rayleigh too
    fading_hz: Annotated[float, Field(ge=0, le=20)] = 0.2


class Converter(_Model):
    converter_offset_hz: Annotated[float, Field(ge=-5_000, le=5_000)] = 0.0
    drift_hz: Annotated[float, Field(ge=0, le=100)] = 0.0
    drift_period_s: Annotated[float, Field(gt=0)] = 600.0


class Interference(_Model):
    interferer_probability: Annotated[float, Field(ge=0, le=1)] = 0.0
    interferer_snr_db: tuple[float, float] = (0.0, 15.0)
    impulses_per_s: Annotated[float, Field(ge=0)] = 0.0
    impulse_snr_db: Annotated[float, Field(ge=-20, le=80)] = 30.0


class ReceiverImpairments(_Model):
    """One receiver's impairments (all off by default)."""

    gps: GpsTiming = GpsTiming()
    multipath: Multipath = Multipath()
    converter: Converter = Converter()
    announced_rate_error_ppm: Annotated[float, Field(ge=-100, le=100)] = 0.0
    interference: Interference = Interference()
    obstruction_probability: Annotated[float, Field(ge=0, le=1)] = 0.0
    obstruction_loss_db: Annotated[float, Field(ge=0)] = 40.0


#: Scenario-wide propagation settings of the realistic world.
REALISTIC_SHADOWING_CORRELATION_M = 20_000.0
REALISTIC_ECHO_POWER_DB = (-18.0, -8.0)


def realistic_impairments(rng: np.random.Generator) -> ReceiverImpairments:
    """One receiver's impairments in the ``realistic`` world, drawn from ``rng``.

    >>> impairments = realistic_impairments(np.random.default_rng(1))
    >>> abs(impairments.converter.converter_offset_hz) <= 2_000.0
    True
    """
    low, high = np.log(30.0), np.log(200.0)
    return ReceiverImpairments(
        gps=GpsTiming(
            solution_sigma_ns=float(np.exp(rng.uniform(low, high))),
            stale_probability=0.1,
            bad_stamp_probability=0.01,
        ),
        # Echo powers as COST 207's hilly-terrain profile puts its far cluster (about
        # -10 dB) and below; a fixed, elevated receiver keeps a line-of-sight part.
        multipath=Multipath(
            echoes=int(rng.integers(1, 3)),
            delay_spread_us=float(rng.uniform(1.0, 20.0)),
            echo_power_db=REALISTIC_ECHO_POWER_DB,
            rician_k_db=float(rng.uniform(6.0, 15.0)),
            fading_hz=float(np.exp(rng.uniform(np.log(0.05), np.log(1.0)))),
        ),
        converter=Converter(
            converter_offset_hz=float(rng.uniform(-2_000.0, 2_000.0)),
            drift_hz=float(rng.uniform(0.0, 5.0)),
            drift_period_s=float(rng.uniform(300.0, 1_800.0)),
        ),
        announced_rate_error_ppm=float(rng.uniform(-5.0, 5.0)),
        interference=Interference(interferer_probability=0.1, impulses_per_s=2.0),
        obstruction_probability=0.05,
    )


def only(impairments: ReceiverImpairments, kind: ImpairmentKind | None) -> ReceiverImpairments:
    """The receiver's impairments of one kind, every other kind off (``None``: all off).

    >>> full = realistic_impairments(np.random.default_rng(2))
    >>> lo_only = only(full, ImpairmentKind.lo)
    >>> lo_only.converter == full.converter, lo_only.multipath.echoes
    (True, 0)
    """
    off = ReceiverImpairments()
    keeps: dict[ImpairmentKind, dict[str, object]] = {
        ImpairmentKind.gps: {"gps": impairments.gps},
        ImpairmentKind.multipath: {"multipath": impairments.multipath},
        ImpairmentKind.lo: {"converter": impairments.converter},
        ImpairmentKind.sample_rate: {
            "announced_rate_error_ppm": impairments.announced_rate_error_ppm
        },
        ImpairmentKind.interference: {"interference": impairments.interference},
        ImpairmentKind.not_heard: {
            "obstruction_probability": impairments.obstruction_probability,
            "obstruction_loss_db": impairments.obstruction_loss_db,
        },
    }
    return off.model_copy(update=keeps.get(kind, {}) if kind is not None else {})


def realistic_world(scenario: Scenario, rng: np.random.Generator) -> Scenario:
    """The scenario with every impairment on: each receiver's drawn from ``rng``, the
    propagation's correlated shadowing and radio horizon switched on."""
    propagation = scenario.propagation.model_copy(
        update={
            "shadowing_correlation_m": REALISTIC_SHADOWING_CORRELATION_M,
            "radio_horizon": True,
        }
    )
    receivers = [
        r.model_copy(update={"impairments": realistic_impairments(rng)}) for r in scenario.receivers
    ]
    return scenario.model_copy(update={"propagation": propagation, "receivers": receivers})


def ablated(scenario: Scenario, kind: ImpairmentKind | None) -> Scenario:
    """The (realistic) scenario with only impairments of ``kind`` left on (None: none)."""
    propagation = scenario.propagation.model_copy(
        update={
            "shadowing_correlation_m": scenario.propagation.shadowing_correlation_m
            if kind is ImpairmentKind.shadowing_correlation
            else 0.0,
            "radio_horizon": scenario.propagation.radio_horizon and kind is ImpairmentKind.horizon,
        }
    )
    receivers = [
        r.model_copy(update={"impairments": only(r.impairments, kind)}) for r in scenario.receivers
    ]
    return scenario.model_copy(update={"propagation": propagation, "receivers": receivers})
