"""The scenario file: one transmitter, the receivers that hear it, and the propagation model.

A scenario is YAML parsed into the pydantic models below. Receiver positions and
ports come from the station registry (``stations-simulated.yaml`` by default);
the scenario only adds each receiver's radio characteristics, and may override
the position (useful for generated benchmark scenarios).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from heimdall.simulator.impairments import ReceiverImpairments

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_SCENARIO_FILE = PACKAGE_DATA / "scenario-default.yaml"
DEFAULT_STATIONS_FILE = PACKAGE_DATA / "stations-simulated.yaml"


class Modulation(StrEnum):
    carrier = "carrier"
    nfm = "nfm"
    wideband = "wideband"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WidebandSettings(_Model):
    """Random QPSK/BPSK symbols with root-raised-cosine pulses, optionally in bursts."""

    symbol_rate_hz: Annotated[int, Field(gt=0, le=12_000)] = 8000
    rolloff: Annotated[float, Field(gt=0.0, le=1.0)] = 0.35
    bits_per_symbol: Literal[1, 2] = 2
    # A burst pattern of period burst_period_s, transmitting for duty_cycle of it.
    burst_period_s: Annotated[float, Field(gt=0.0)] = 1.0
    duty_cycle: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0


class Transmitter(_Model):
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    altitude_m: float = 0.0
    eirp_dbm: float = 40.0
    frequency_hz: Annotated[float, Field(gt=0)] = 145_500_000.0
    modulation: Modulation = Modulation.wideband
    fm_deviation_hz: Annotated[float, Field(gt=0)] = 2500.0
    wideband: WidebandSettings = WidebandSettings()


class ReceiverSettings(_Model):
    """One simulated receiver. Position and port default to the station registry."""

    id: str
    antenna_gain_dbi: float = 0.0
    noise_figure_db: Annotated[float, Field(ge=0)] = 8.0
    lo_error_ppm: float = 0.0
    gps_jitter_ns: Annotated[float, Field(ge=0)] = 50.0
    has_gps: bool = True
    # The true, GPS-corrected sample rate this receiver reports and samples at.
    sample_rate_hz: Annotated[float, Field(gt=1000)] = 12_001.135
    latitude: Annotated[float | None, Field(ge=-90, le=90)] = None
    longitude: Annotated[float | None, Field(ge=-180, le=180)] = None
    altitude_m: float | None = None
    port: Annotated[int | None, Field(ge=0, le=65535)] = None
    name: str | None = None
    rx_chans: Annotated[int, Field(ge=1, le=16)] = 4
    # Hidden imperfections that only calibration can remove (docs/simulator.md): a gain
    # error of the receiver chain after its noise-setting front end (scales signal and
    # noise alike: SNR unchanged, every power reading off by it), and a fixed bias of the
    # GPS block stamps (positive = stamps late), constant over every capture.
    gain_offset_db: Annotated[float, Field(ge=-30.0, le=30.0)] = 0.0
    timing_bias_ns: Annotated[float, Field(ge=-1e6, le=1e6)] = 0.0
    # The protocol it is served with; the registry's when not given, else KiwiSDR.
    protocol: Literal["kiwisdr", "openwebrx"] | None = None
    # This receiver's own digital scale (dBm at full scale), when it differs from the
    # scenario's: OpenWebRX receivers are SDRs at different gains, so their S-meters
    # read the same field differently.
    full_scale_dbm: float | None = None
    # Real-world impairments (issue 15, simulator/impairments.py): all off by default.
    impairments: ReceiverImpairments = ReceiverImpairments()

    def require_position(self) -> tuple[float, float, float]:
        if self.latitude is None or self.longitude is None or self.altitude_m is None:
            raise ValueError(f"receiver {self.id!r} has no position (not in the registry?)")
        return self.latitude, self.longitude, self.altitude_m


class PropagationModel(StrEnum):
    free_space = "free_space"
    log_distance = "log_distance"


class GroundWave(_Model):
    """The ground wave of LF/MF/HF: the path follows the Earth's surface, slower than light.

    A link's path is the geodesic on the WGS84 ellipsoid between transmitter and receiver
    (heights left out), and its group delay beyond light time is
    ``d_km * (excess_delay_ns_per_km + e)``, ``e ~ N(0, excess_delay_sigma_ns_per_km)``
    drawn per link (seed, receiver, transmitter position: physics.ground_wave_excess_s).
    The mean stands for this scenario's ground (a few us per 100 km over land at HF),
    the spread for what changes along each path. Path loss keeps ``Propagation.model``,
    over the geodesic distance.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)  # hashable: keys a cache

    excess_delay_ns_per_km: Annotated[float, Field(ge=0)] = 30.0
    excess_delay_sigma_ns_per_km: Annotated[float, Field(ge=0)] = 6.0


class Propagation(_Model):
    model: PropagationModel = PropagationModel.free_space
    # Log-distance: PL(d) = FSPL(d0) + 10 n log10(d / d0) + X, X ~ N(0, sigma) per link
    # (receiver and transmitter position; physics.shadowing_db).
    path_loss_exponent: Annotated[float, Field(gt=0)] = 2.0
    reference_distance_m: Annotated[float, Field(gt=0)] = 100.0
    shadowing_sigma_db: Annotated[float, Field(ge=0)] = 0.0
    # Issue 15: shadowing correlated between receivers closer than about this distance
    # (exp(-d / distance) between their links to one transmitter; 0 = independent), and
    # a smooth-Earth radio horizon (effective Earth radius factor k, 4/3 for a standard
    # atmosphere) beyond which a link loses ``beyond_horizon_db`` plus
    # ``beyond_horizon_db_per_km`` per km further.
    shadowing_correlation_m: Annotated[float, Field(ge=0)] = 0.0
    radio_horizon: bool = False
    earth_radius_factor: Annotated[float, Field(gt=0)] = 4.0 / 3.0
    beyond_horizon_db: Annotated[float, Field(ge=0)] = 20.0
    beyond_horizon_db_per_km: Annotated[float, Field(ge=0)] = 1.0
    # None: line of sight (the straight line at the speed of light, VHF and up).
    ground_wave: GroundWave | None = None


class Scenario(_Model):
    seed: Annotated[int, Field(ge=0)] = 0
    # Receiver gain, fixed: a complex sample of magnitude 1.0 (int16 full scale) is this power.
    full_scale_dbm: float = -40.0
    transmitter: Transmitter
    receivers: Annotated[list[ReceiverSettings], Field(min_length=1)]
    propagation: Propagation = Propagation()
    stations_file: Path | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Scenario:
        ids = [receiver.id for receiver in self.receivers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"receiver ids must be unique, got {ids}")
        return self

    def receiver(self, receiver_id: str) -> ReceiverSettings:
        for receiver in self.receivers:
            if receiver.id == receiver_id:
                return receiver
        raise KeyError(receiver_id)

    def full_scale_dbm_of(self, receiver: ReceiverSettings) -> float:
        """The power (dBm) a complex sample of magnitude 1.0 stands for at this receiver."""
        if receiver.full_scale_dbm is not None:
            return receiver.full_scale_dbm
        return self.full_scale_dbm


def _registry_entries(stations_file: Path) -> dict[str, dict[str, object]]:
    document = yaml.safe_load(stations_file.read_text(encoding="utf-8")) or {}
    return {str(entry["id"]): entry for entry in document.get("stations", [])}


def _fill_from_registry(
    receiver: ReceiverSettings, entry: dict[str, object] | None
) -> ReceiverSettings:
    if entry is None:
        return receiver
    updates: dict[str, object] = {}
    for key in ("latitude", "longitude", "altitude_m", "name", "protocol"):
        if getattr(receiver, key) is None and entry.get(key) is not None:
            updates[key] = entry[key]
    if receiver.port is None and entry.get("url"):
        port = urlsplit(str(entry["url"])).port
        if port is not None:
            updates["port"] = port
    return receiver.model_copy(update=updates)


def resolve_scenario(scenario: Scenario, base_dir: Path | None = None) -> Scenario:
    """Fill receiver positions, names and ports from the station registry."""
    stations_file = scenario.stations_file or DEFAULT_STATIONS_FILE
    if not stations_file.is_absolute() and base_dir is not None:
        stations_file = base_dir / stations_file
    registry = _registry_entries(stations_file) if stations_file.exists() else {}
    receivers = [_fill_from_registry(rx, registry.get(rx.id)) for rx in scenario.receivers]
    for receiver in receivers:
        receiver.require_position()
    receivers = [
        rx if rx.protocol is not None else rx.model_copy(update={"protocol": "kiwisdr"})
        for rx in receivers
    ]
    return scenario.model_copy(update={"receivers": receivers})


def load_scenario(
    path: Path | str = DEFAULT_SCENARIO_FILE, stations_file: Path | None = None
) -> Scenario:
    """Read a scenario YAML file and resolve its receivers against the registry.

    ``stations_file`` replaces the scenario's own registry: the platform passes
    the one it serves, so the simulator listens where the registry says.
    """
    path = Path(path)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    scenario = Scenario.model_validate(document)
    if stations_file is not None:
        scenario = scenario.model_copy(update={"stations_file": stations_file.resolve()})
    return resolve_scenario(scenario, base_dir=path.parent)
