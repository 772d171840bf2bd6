"""Which propagation model a localization uses, and what it knows about each band.

Two models, named in every result (``LocalizationResult.propagation_model``):

* ``line_of_sight`` (VHF and up, and when the frequency is unknown): the wave travels
  the straight line between transmitter and receiver at the speed of light; ranges are
  slant ranges in the exact ENU frame (``geodesy.slant_ranges_m``).
* ``ground_wave`` (LF, MF, HF: below 30 MHz): receivers 50-1000 km apart are joined by
  the ground wave, which follows the Earth's surface. Ranges are geodesic distances on
  the WGS84 ellipsoid (``geodesy.geodesic_distances_m``; heights are left out), and the
  arrival time carries a group delay beyond light time that grows with the path: a
  nominal rate per band (``GROUND_WAVE_EXCESS_NS_PER_KM``) is added to every path, so a
  TDOA range difference is ``(1 + k) (d_i - d_j)`` with ``k = c * rate``. What the real
  rate does differently (ground, season, path), with the receivers' GPS biases, is the
  timing sigma an uncalibrated receiver gets, growing with its path (``timing_sigma_s``).

Skywave (ionospheric) paths are not modelled: a TDOA fix from them would need the
reflection heights. At HF between receivers a few hundred km apart both can arrive; the
ground wave is the first arrival that the correlation's strongest peak is assumed to be.

Example:
    >>> band_of(7.055e6), band_of(145.5e6), band_of(None)
    ('hf', 'vhf', None)
    >>> propagation_model_for(7.055e6), propagation_model_for(145.5e6)
    ('ground_wave', 'line_of_sight')
    >>> round(tdoa_range_scale("ground_wave", 7.055e6) - 1.0, 6)  # 30 ns/km at HF
    0.008994
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import numpy as np

from heimdall.core.constants import (
    GROUND_WAVE_DELAY_SPREAD_NS_PER_KM,
    GROUND_WAVE_EXCESS_NS_PER_KM,
    GROUND_WAVE_TIMING_FLOOR_NS,
    HF_MIN_HZ,
    MF_MIN_HZ,
    SPEED_OF_LIGHT_M_PER_S,
    VHF_MIN_HZ,
)
from heimdall.localization.calibration import Calibration
from heimdall.localization.geodesy import geodesic_distances_m

PropagationModelName = Literal["line_of_sight", "ground_wave"]
PropagationChoice = Literal["auto", "line_of_sight", "ground_wave"]
Band = Literal["lf", "mf", "hf", "vhf"]


def band_of(frequency_hz: float | None) -> Band | None:
    """The band a frequency is in (``lf`` covers everything below 300 kHz, VLF too)."""
    if frequency_hz is None:
        return None
    if frequency_hz >= VHF_MIN_HZ:
        return "vhf"
    if frequency_hz >= HF_MIN_HZ:
        return "hf"
    if frequency_hz >= MF_MIN_HZ:
        return "mf"
    return "lf"


def propagation_model_for(
    frequency_hz: float | None, choice: PropagationChoice = "auto"
) -> PropagationModelName:
    """Ground wave below 30 MHz, line of sight above it or when the frequency is unknown."""
    if choice != "auto":
        return choice
    band = band_of(frequency_hz)
    return "ground_wave" if band in ("lf", "mf", "hf") else "line_of_sight"


def _ground_band(frequency_hz: float | None) -> str:
    """The band whose ground-wave figures apply (HF when a ground wave is forced blind)."""
    band = band_of(frequency_hz)
    return band if band in GROUND_WAVE_EXCESS_NS_PER_KM else "hf"


def ground_wave_excess_ns_per_km(frequency_hz: float | None) -> float:
    """Nominal ground-wave delay beyond light time over average land, ns per km."""
    return GROUND_WAVE_EXCESS_NS_PER_KM[_ground_band(frequency_hz)]


def tdoa_range_scale(model: PropagationModelName, frequency_hz: float | None) -> float:
    """Factor from path length to light-time range: 1, or ``1 + c * rate`` for ground wave."""
    if model == "line_of_sight":
        return 1.0
    rate_s_per_m = ground_wave_excess_ns_per_km(frequency_hz) * 1e-12
    return 1.0 + SPEED_OF_LIGHT_M_PER_S * rate_s_per_m


def timing_sigma_s(
    calibration: Calibration,
    receiver_id: str,
    model: PropagationModelName,
    frequency_hz: float | None,
    path_m: float = 0.0,
) -> float:
    """A receiver's timing sigma for a TDOA pair: fitted, else the band's floor and spread.

    The active calibration's fitted sigma wins (training saw this receiver's real
    errors, ground wave included, on this network). Otherwise line of sight keeps the
    calibration's default (the configured GPS timing sigma), and a ground wave over a
    path of ``path_m`` takes ``hypot(floor, spread * path_km)``: the receiver's own
    timing floor (at least the GPS default) and the ground wave's delay spread about its
    nominal rate along the path (``Calibration.ground_wave_timing_floors_ns`` and
    ``ground_wave_delay_spread_ns_per_km``, by default from ``heimdall.core.constants``).

    Example:
        >>> calibration = Calibration(timing_sigmas_ns={"fitted": 800.0})
        >>> round(timing_sigma_s(calibration, "fitted", "ground_wave", 7e6, 200e3) * 1e9, 3)
        800.0
        >>> round(timing_sigma_s(calibration, "other", "ground_wave", 7e6, 200e3) * 1e9, 1)
        1431.8
        >>> round(timing_sigma_s(calibration, "other", "line_of_sight", 145e6) * 1e9, 3)
        100.0
    """
    if receiver_id in calibration.timing_sigmas_ns or model == "line_of_sight":
        return calibration.timing_sigma_s(receiver_id)
    band = _ground_band(frequency_hz)
    floor_ns = max(
        calibration.default_timing_sigma_ns,
        calibration.ground_wave_timing_floors_ns.get(band, GROUND_WAVE_TIMING_FLOOR_NS[band]),
    )
    spread_ns_per_km = calibration.ground_wave_delay_spread_ns_per_km.get(
        band, GROUND_WAVE_DELAY_SPREAD_NS_PER_KM[band]
    )
    return float(np.hypot(floor_ns, spread_ns_per_km * path_m * 1e-3)) * 1e-9


class PairSigma(Protocol):
    """What ``pair_sigmas_from_timing_m`` reads of a TDOA observation."""

    @property
    def receiver_i(self) -> str: ...

    @property
    def receiver_j(self) -> str: ...

    @property
    def sigma_s(self) -> float: ...


def receiver_timing_sigmas_s(
    fix_lat_lon_deg: np.ndarray,
    receiver_timing_sigma_s: Callable[[str, float], float],
    sites: dict[str, tuple[float, float]],
) -> dict[str, float]:
    """Each receiver's timing sigma (s) over its path from ``fix_lat_lon_deg``.

    ``receiver_timing_sigma_s(receiver_id, path_m)`` is the calibration's (fitted, else
    the GPS default or the ground wave's floor and spread over the path from
    ``fix_lat_lon_deg`` to the receiver's ``sites`` entry).
    """
    ids = sorted(sites)
    paths_m = geodesic_distances_m(
        fix_lat_lon_deg[0],
        fix_lat_lon_deg[1],
        np.array([sites[r][0] for r in ids]),
        np.array([sites[r][1] for r in ids]),
    ).tolist()
    return {r: receiver_timing_sigma_s(r, path_m) for r, path_m in zip(ids, paths_m, strict=True)}


def pair_sigmas_from_timing_m(
    pairs: Sequence[PairSigma], timing_s: dict[str, float], variance_scale: float
) -> np.ndarray:
    """Each pair's range sigma (m) from its own sigma and its receivers' ``timing_s``."""
    return np.asarray(
        SPEED_OF_LIGHT_M_PER_S
        * np.sqrt(variance_scale)
        * np.array(
            [
                np.sqrt(p.sigma_s**2 + timing_s[p.receiver_i] ** 2 + timing_s[p.receiver_j] ** 2)
                for p in pairs
            ]
        ),
        dtype=np.float64,
    )
