"""From observations to the problem a localization solves.

Which readings and pairs are usable (``select_inputs``), which estimator runs
(``choose_method``), and the ``fusion.Problem`` it minimises: the local frame, the
receivers in use, the power block with its calibration and horizon, the TDOA block with
its clock corrections and timing sigmas (``assemble_problem``). ``estimate.localize``
calls these in turn; nothing here searches or refines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from heimdall.core.constants import SPEED_OF_LIGHT_M_PER_S
from heimdall.localization.calibration import Calibration
from heimdall.localization.fusion import Problem, RssBlock, TdoaBlock
from heimdall.localization.geodesy import LocalFrame
from heimdall.localization.horizon import HorizonLoss, radio_horizon_m
from heimdall.localization.observations import (
    Method,
    NotHeardObservation,
    PowerObservation,
    Receiver,
    TdoaObservation,
)
from heimdall.localization.propagation import (
    PropagationModelName,
    band_of,
    pair_sigmas_from_timing_m,
    receiver_timing_sigmas_s,
    tdoa_range_scale,
    timing_sigma_s,
)
from heimdall.localization.tdoa import pair_variance_scale

FloatArray = npt.NDArray[np.float64]

#: Why three of each: ``estimate``'s module docstring.
MIN_RSS_RECEIVERS = 3
MIN_TDOA_RECEIVERS = 3


@dataclass(frozen=True, slots=True)
class SelectedInputs:
    """The observations a localization can use, and those it cannot (``dropped``)."""

    power_by_id: dict[str, PowerObservation]
    tdoa_kept: list[TdoaObservation]
    #: Every receiver in a kept pair, sorted.
    tdoa_receiver_ids: list[str]
    #: Ceilings of receivers known to the network and without a power reading.
    ceiling_by_id: dict[str, NotHeardObservation]
    dropped: list[str]

    def counts(self, model: PropagationModelName, frequency_hz: float | None) -> dict[str, Any]:
        """What went in, for the result's diagnostics."""
        return {
            "rss_receivers": len(self.power_by_id),
            "not_heard_receivers": len(self.ceiling_by_id),
            "tdoa_receivers": len(self.tdoa_receiver_ids),
            "tdoa_pairs": len(self.tdoa_kept),
            "dropped_observations": self.dropped,
            "propagation_model": model,
            "band": band_of(frequency_hz),
        }


def select_inputs(
    by_id: dict[str, Receiver],
    power_observations: Sequence[PowerObservation],
    tdoa_observations: Sequence[TdoaObservation],
    not_heard: Sequence[NotHeardObservation],
    *,
    max_tdoa_sigma_s: float,
    min_tdoa_quality: float,
) -> SelectedInputs:
    """Readings of known receivers with a finite value; pairs of two known receivers that
    are informative (sigma and quality within the limits); ceilings of known receivers
    without a reading. The rest is listed as dropped."""
    dropped: list[str] = []
    power_by_id: dict[str, PowerObservation] = {}
    for observation in power_observations:
        if observation.receiver_id in by_id and np.isfinite(observation.power):
            power_by_id[observation.receiver_id] = observation
        else:
            dropped.append(f"power:{observation.receiver_id}")
    tdoa_kept: list[TdoaObservation] = []
    for pair in tdoa_observations:
        known = pair.receiver_i in by_id and pair.receiver_j in by_id
        informative = pair.sigma_s <= max_tdoa_sigma_s and pair.quality >= min_tdoa_quality
        if known and informative and pair.receiver_i != pair.receiver_j:
            tdoa_kept.append(pair)
        else:
            dropped.append(f"tdoa:{pair.receiver_i}-{pair.receiver_j}")
    ceiling_by_id = {
        o.receiver_id: o
        for o in not_heard
        if o.receiver_id in by_id
        and o.receiver_id not in power_by_id
        and np.isfinite(o.ceiling_dbm)
    }
    return SelectedInputs(
        power_by_id=power_by_id,
        tdoa_kept=tdoa_kept,
        tdoa_receiver_ids=sorted({r for p in tdoa_kept for r in (p.receiver_i, p.receiver_j)}),
        ceiling_by_id=ceiling_by_id,
        dropped=dropped,
    )


def choose_method(
    method: Literal["auto", "rss", "tdoa", "fused"], inputs: SelectedInputs
) -> tuple[Method | None, str | None]:
    """The estimator to run, and None; or, when the inputs cannot support it, the method
    asked (None for "auto") and why not."""
    powers, timed = len(inputs.power_by_id), len(inputs.tdoa_receiver_ids)
    usable: dict[Method, bool] = {
        "rss": powers >= MIN_RSS_RECEIVERS,
        "tdoa": timed >= MIN_TDOA_RECEIVERS,
        "fused": powers >= MIN_RSS_RECEIVERS and len(inputs.tdoa_kept) > 0,
    }
    if method != "auto":
        if usable[method]:
            return method, None
        return method, (
            f"method {method!r} needs more receivers: {powers} with power, "
            f"{timed} in informative TDOA pairs"
        )
    for candidate in ("fused", "rss", "tdoa"):
        if usable[candidate]:
            return candidate, None
    return None, (
        f"need >= {MIN_RSS_RECEIVERS} receivers with power or >= {MIN_TDOA_RECEIVERS} "
        f"with GPS-timed TDOA; have {powers} and {timed}"
    )


@dataclass(frozen=True, slots=True)
class TimingWeights:
    """How the TDOA pairs are weighed: each receiver's timing sigma (fitted, or the band's
    floor and delay spread over its path to the transmitter) added to each pair's own."""

    pairs: list[TdoaObservation]
    receiver_ids: list[str]
    sites: dict[str, tuple[float, float]]
    calibration: Calibration
    model: PropagationModelName
    frequency_hz: float | None
    index_of: dict[str, int]

    def at(self, transmitter_lat_lon_deg: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Each pair's range sigma (m), and each receiver's timing sigma (m) by its index in
        the problem (0 for a receiver without pairs): the part its pairs share, as the
        calibration's timing fit models it (``tdoa.pair_whitening``). The transmitter's
        place matters only for ground-wave paths."""
        variance_scale = pair_variance_scale(len(self.pairs), len(self.receiver_ids))
        timing_s = receiver_timing_sigmas_s(
            transmitter_lat_lon_deg,
            lambda receiver_id, path_m: timing_sigma_s(
                self.calibration, receiver_id, self.model, self.frequency_hz, path_m
            ),
            self.sites,
        )
        receiver_sigmas_m = np.zeros(len(self.index_of))
        for receiver_id, sigma_s in timing_s.items():
            receiver_sigmas_m[self.index_of[receiver_id]] = (
                SPEED_OF_LIGHT_M_PER_S * np.sqrt(variance_scale) * sigma_s
            )
        return pair_sigmas_from_timing_m(self.pairs, timing_s, variance_scale), receiver_sigmas_m


@dataclass(frozen=True, slots=True)
class Assembled:
    """The problem, with what the result's report needs to name its parts."""

    problem: Problem
    #: Receivers in use, sorted: the problem's first indices.
    used_ids: list[str]
    #: Not-hearing receivers in use, after them in the problem.
    ceiling_ids: list[str]
    receivers_enu_m: FloatArray
    receivers_plane_m: tuple[FloatArray, FloatArray]
    #: None without TDOA.
    timing: TimingWeights | None


@lru_cache(maxsize=32)
def _frame_for(sites: tuple[tuple[float, float, float], ...]) -> LocalFrame:
    # Building PROJ pipelines costs milliseconds; the receiver set rarely changes.
    latitudes, longitudes, altitudes = zip(*sites, strict=True)
    return LocalFrame.around(latitudes, longitudes, altitudes)


def assemble_problem(
    by_id: dict[str, Receiver],
    inputs: SelectedInputs,
    method: Method,
    calibration: Calibration,
    model: PropagationModelName,
    frequency_hz: float | None,
    transmitter_altitude_m: float | None,
) -> Assembled:
    """The problem ``method`` solves: the frame around the receivers in use, and the power
    and TDOA blocks it needs. The transmitter's height defaults to the median height of
    the receivers in use (the estimate is 2-D; the height only enters slant ranges)."""
    use_rss = method in ("rss", "fused")
    use_tdoa = method in ("tdoa", "fused")
    used_ids = sorted(set(inputs.power_by_id) if use_rss else set())
    if use_tdoa:
        used_ids = sorted(set(used_ids) | set(inputs.tdoa_receiver_ids))
    index_of = {receiver_id: k for k, receiver_id in enumerate(used_ids)}
    sites = tuple((by_id[r].latitude, by_id[r].longitude, by_id[r].altitude_m) for r in used_ids)
    frame = _frame_for(sites)
    latitudes = np.array([s[0] for s in sites])
    longitudes = np.array([s[1] for s in sites])
    altitudes_m = np.array([s[2] for s in sites])
    receivers_enu_m = np.column_stack(frame.geodetic_to_enu(latitudes, longitudes, altitudes_m))
    ceiling_ids = sorted(inputs.ceiling_by_id) if use_rss else []
    ceiling_sites = np.array(
        [(by_id[r].latitude, by_id[r].longitude, by_id[r].altitude_m) for r in ceiling_ids]
    ).reshape(-1, 3)
    # After the receivers in use, whose indices the residual report keeps.
    problem_enu_m = np.vstack(
        [receivers_enu_m, np.column_stack(frame.geodetic_to_enu(*ceiling_sites.T))]
    )
    altitude_m = (
        float(np.median(altitudes_m)) if transmitter_altitude_m is None else transmitter_altitude_m
    )
    rss_block = None
    if use_rss:
        rss_block = _rss_block(
            inputs, by_id, index_of, ceiling_ids, ceiling_sites, calibration, model, altitude_m
        )
    tdoa_block, timing = None, None
    if use_tdoa:
        timing = TimingWeights(
            pairs=inputs.tdoa_kept,
            receiver_ids=inputs.tdoa_receiver_ids,
            sites={r: (by_id[r].latitude, by_id[r].longitude) for r in inputs.tdoa_receiver_ids},
            calibration=calibration,
            model=model,
            frequency_hz=frequency_hz,
            index_of=index_of,
        )
        # Ground wave: the paths from the network's centre until there is a fix.
        sigmas_m, receiver_sigmas_m = timing.at(
            np.array([frame.origin_latitude_deg, frame.origin_longitude_deg])
        )
        tdoa_block = TdoaBlock(
            first=np.array([index_of[p.receiver_i] for p in inputs.tdoa_kept], dtype=np.intp),
            second=np.array([index_of[p.receiver_j] for p in inputs.tdoa_kept], dtype=np.intp),
            range_differences_m=SPEED_OF_LIGHT_M_PER_S * _clock_corrected_s(inputs, calibration),
            sigmas_m=sigmas_m,
            range_scale=tdoa_range_scale(model, frequency_hz),
            receiver_sigmas_m=receiver_sigmas_m,
        )
    problem = Problem(
        frame,
        problem_enu_m,
        altitude_m,
        rss_block,
        tdoa_block,
        surface_paths=model == "ground_wave",
        receivers_lat_lon_deg=np.vstack(
            [np.column_stack([latitudes, longitudes]), ceiling_sites[:, :2]]
        ),
    )
    return Assembled(
        problem=problem,
        used_ids=used_ids,
        ceiling_ids=ceiling_ids,
        receivers_enu_m=receivers_enu_m,
        receivers_plane_m=frame.geodetic_to_plane(latitudes, longitudes),
        timing=timing,
    )


def _clock_corrected_s(inputs: SelectedInputs, calibration: Calibration) -> FloatArray:
    """Each kept pair's time difference with the calibration's clock offsets taken out."""
    return np.array(
        [
            p.time_difference_s
            - calibration.clock_offset_s(p.receiver_i)
            + calibration.clock_offset_s(p.receiver_j)
            for p in inputs.tdoa_kept
        ]
    )


def _rss_block(
    inputs: SelectedInputs,
    by_id: dict[str, Receiver],
    index_of: dict[str, int],
    ceiling_ids: list[str],
    ceiling_sites: FloatArray,
    calibration: Calibration,
    model: PropagationModelName,
    altitude_m: float,
) -> RssBlock:
    """The power readings on the network's dBm scale, with their sigmas and gains, and the
    not-hearing receivers' ceilings, after the receivers in use."""
    rss_ids = sorted(inputs.power_by_id)
    observations = [inputs.power_by_id[r] for r in rss_ids]
    return RssBlock(
        receiver_indices=np.array([index_of[r] for r in rss_ids], dtype=np.intp),
        powers_dbm=np.array(
            [
                o.power if o.unit == "dBm" else calibration.dbfs_to_dbm(o.receiver_id, o.power)
                for o in observations
            ]
        ),
        sigmas_db=np.array(
            [np.hypot(calibration.shadowing_sigma_db, o.sigma_db or 0.0) for o in observations]
        ),
        gains_db=np.array([calibration.gain_offset_db(r) for r in rss_ids]),
        path_loss_exponent=calibration.path_loss_exponent,
        reference_distance_m=calibration.reference_distance_m,
        ceiling_indices=len(index_of) + np.arange(len(ceiling_ids), dtype=np.intp),
        ceilings_dbm=np.array([inputs.ceiling_by_id[r].ceiling_dbm for r in ceiling_ids]),
        ceiling_sigmas_db=np.full(len(ceiling_ids), calibration.shadowing_sigma_db),
        ceiling_gains_db=np.array([calibration.gain_offset_db(r) for r in ceiling_ids]),
        # A ground wave follows the Earth's curve: no line-of-sight horizon applies.
        horizon=HorizonLoss(
            calibration.beyond_horizon_db, 1e-3 * calibration.beyond_horizon_db_per_km
        )
        if model == "line_of_sight"
        else HorizonLoss(),
        horizons_m=radio_horizon_m(
            altitude_m, np.array([by_id[r].altitude_m for r in rss_ids], dtype=np.float64)
        ),
        ceiling_horizons_m=radio_horizon_m(altitude_m, ceiling_sites[:, 2]),
    )
