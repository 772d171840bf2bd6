"""The calibration a localization runs with: an explicit, versioned, JSON-serialisable input.

Training fits these numbers from approved sessions of known transmitters; until then the
defaults below apply. Every localization result records the version it used.

Defaults and why:

* ``path_loss_exponent = 2.0``: free space. The network's receivers sit on elevated,
  mostly line-of-sight sites, and the simulator's baseline propagation is free space.
  Real terrain fits 2.5-4 (two-ray ground reflection tends to 4 far out); that is
  exactly what training is for, and an untrained system should start from the physical
  baseline rather than a guessed fudge.
* ``reference_distance_m = 100``: the distance at which the unknown transmitter power
  ``P0`` is defined, and the floor below which distances are not trusted (no log of
  zero when a transmitter sits on a receiver; the far-field log-distance law has no
  meaning at a few metres anyway).
* ``shadowing_sigma_db = 6``: log-normal shadowing of 4-10 dB is the usual range for
  VHF/UHF links over rural and hilly terrain; 6 dB is the middle of it. The fit inflates
  it when residuals show it is too small.
* ``default_timing_sigma_ns = 100``: one receiver's GPS timestamp error after averaging
  over the TDOA window, for receivers the calibration has no fitted ``timing_sigmas_ns``
  for. The service takes it from ``HEIMDALL_GPS_TIMING_SIGMA_NS`` when no model is active.
  A TDOA pair's sigma is its correlation's own delay error combined with both receivers'
  timing sigmas: the observation carries the first, the calibration the second.
* ``ground_wave_delay_spread_ns_per_km``, ``ground_wave_timing_floors_ns``: below
  30 MHz the ground wave's group delay varies from path to path by microseconds
  (ground, season), far beyond GPS timing; a receiver without a fitted timing sigma gets
  ``hypot(floor, spread * path_km)`` per band instead of the GPS default (values and
  reasons in ``heimdall.core.constants``).
* ``beyond_horizon_db = 0``, ``beyond_horizon_db_per_km = 0``: the loss a link takes past
  the smooth-Earth radio horizon (``localization.horizon``), a step and a slope. Off
  until training fits them from known-source sessions whose links reach past the
  horizon; with no such links the log-distance model is all there is to go on.
* ``default_full_scale_dbm = 0``: the power that a receiver's 0 dBFS corresponds to, used
  only for dBFS readings. A common offset is absorbed by the unknown ``P0``; only
  per-receiver differences matter, and those belong in ``full_scale_dbm``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from heimdall.core.constants import (
    GROUND_WAVE_DELAY_SPREAD_NS_PER_KM,
    GROUND_WAVE_TIMING_FLOOR_NS,
)

DEFAULT_CALIBRATION_VERSION = "default-v1"


class Calibration(BaseModel):
    """Propagation and receiver calibration for power- and time-based localization.

    Example:
        >>> calibration = Calibration(gain_offsets_db={"torino": -3.0})
        >>> calibration.gain_offset_db("torino"), calibration.gain_offset_db("milano")
        (-3.0, 0.0)
        >>> Calibration.model_validate_json(calibration.model_dump_json()) == calibration
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = DEFAULT_CALIBRATION_VERSION
    path_loss_exponent: float = Field(default=2.0, gt=0.5, le=8.0)
    reference_distance_m: float = Field(default=100.0, gt=0.0)
    shadowing_sigma_db: float = Field(default=6.0, gt=0.0)
    gain_offsets_db: dict[str, float] = Field(default_factory=dict)
    full_scale_dbm: dict[str, float] = Field(default_factory=dict)
    default_full_scale_dbm: float = 0.0
    clock_offsets_ns: dict[str, float] = Field(default_factory=dict)
    timing_sigmas_ns: dict[str, float] = Field(default_factory=dict)
    default_timing_sigma_ns: float = Field(default=100.0, ge=0.0)
    # Timing sigma of a receiver without a fitted one on a ground-wave band ("lf", "mf",
    # "hf"): hypot(floor, spread * path_km), the GPS bias and the ground wave's delay
    # spread along the path (localization.propagation.timing_sigma_s).
    ground_wave_timing_floors_ns: dict[str, float] = Field(
        default_factory=lambda: dict(GROUND_WAVE_TIMING_FLOOR_NS)
    )
    ground_wave_delay_spread_ns_per_km: dict[str, float] = Field(
        default_factory=lambda: dict(GROUND_WAVE_DELAY_SPREAD_NS_PER_KM)
    )
    # Diffraction loss past the radio horizon (localization.horizon): step and slope.
    beyond_horizon_db: float = Field(default=0.0, ge=0.0)
    beyond_horizon_db_per_km: float = Field(default=0.0, ge=0.0)
    # Path loss at reference_distance_m, when known-source EIRPs let training fit it;
    # localization does not need it (the unknown P0 absorbs it), reports can.
    reference_loss_db: float | None = None

    def gain_offset_db(self, receiver_id: str) -> float:
        """Receiver gain relative to the network (antenna, cable, front end), in dB."""
        return self.gain_offsets_db.get(receiver_id, 0.0)

    def dbfs_to_dbm(self, receiver_id: str, power_dbfs: float) -> float:
        """Convert a receiver's full-scale-relative reading to dBm."""
        return power_dbfs + self.full_scale_dbm.get(receiver_id, self.default_full_scale_dbm)

    def clock_offset_s(self, receiver_id: str) -> float:
        """How late the receiver's GPS timestamps are, in seconds (positive = late)."""
        return self.clock_offsets_ns.get(receiver_id, 0.0) * 1e-9

    def timing_sigma_s(self, receiver_id: str) -> float:
        """Standard deviation of the receiver's timestamp error over a TDOA window, seconds."""
        return self.timing_sigmas_ns.get(receiver_id, self.default_timing_sigma_ns) * 1e-9
