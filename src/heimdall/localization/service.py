"""Localize a finished acquisition from its stored measurements and recordings.

Power observations come from the measurement rows of every receiver, KiwiSDR
and OpenWebRX alike; TDOA observations are measured here from the stored SigMF
recordings of the GPS-timed receivers only (OpenWebRX has neither IQ nor GPS
time; which receivers are paired and how is ``localization.pairs``'s. The result's
``detail.inputs`` says which receivers fed the power part and which the TDOA
part, and why any was left out. The caller owns the transaction: this module
flushes, never commits.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from heimdall.acquisition.recording import start_loading
from heimdall.core import metrics
from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore
from heimdall.localization import repository
from heimdall.localization.calibration import Calibration
from heimdall.localization.estimate import LocalizationResult, localize
from heimdall.localization.observations import (
    NotHeardObservation,
    PowerObservation,
    Receiver,
    TdoaObservation,
)
from heimdall.localization.pairs import TimedRecording, tdoa_observations_from_recordings
from heimdall.localization.pools import read_pool
from heimdall.models import Acquisition, AcquisitionState, Localization, Measurement, WebSDRStation
from heimdall.receivers.capture import IQCapture


class NotLocalizable(ValueError):
    """The acquisition does not exist or has not succeeded."""


def tdoa_observations(
    store: ObjectStore,
    measurements: list[Measurement],
    receivers: dict[str, Receiver],
    *,
    window_s: float,
    skipped: list[str] | None = None,
    left_out: dict[str, str] | None = None,
) -> list[TdoaObservation]:
    """TDOA pairs of the GPS-timed receivers, from their stored recordings, correlated over
    their central ``window_s`` seconds (all of a shorter recording)."""
    timed = [m for m in measurements if m.gps_locked]
    return timed_observations(
        timed,
        read_timed(store, timed)(),
        receivers,
        window_s=window_s,
        skipped=skipped,
        left_out=left_out,
    )


def read_timed(store: ObjectStore, timed: list[Measurement]) -> Callable[[], list[IQCapture]]:
    """The recordings of ``timed`` rows, their GETs in flight: what waits for them."""
    # The samples' GET per recording (and the metadata's, for a row that does not carry
    # it), each mostly a wait on the store: all at once (the first failure is raised when
    # waited for, as a serial read would).
    return start_loading(
        store,
        [(m.data_url, m.meta_url) for m in timed],
        read_pool(),
        metas=[m.sigmf_meta for m in timed],
    )


def timed_observations(
    timed: list[Measurement],
    captures: list[IQCapture],
    receivers: dict[str, Receiver],
    *,
    window_s: float,
    skipped: list[str] | None = None,
    left_out: dict[str, str] | None = None,
) -> list[TdoaObservation]:
    """TDOA pairs of GPS-timed rows whose recordings are read (``tdoa_observations``)."""
    recordings = [
        TimedRecording(
            station=receivers[m.websdr_id],
            capture=capture,
            snr_db=m.snr,
            occupied_bandwidth_hz=m.occupied_bandwidth_hz,
        )
        for m, capture in zip(timed, captures, strict=True)
    ]
    return tdoa_observations_from_recordings(
        recordings, window_s=window_s, skipped=skipped, left_out=left_out
    )


#: A measured SNR below this is a receiver hearing only noise: ``dsp.measure`` on noise
#: alone reads about -18 dB (the floor in one resolution bandwidth). Its "power" is a
#: noise estimate tens of dB under the floor, not the transmitter's: taken as a reading
#: it would pull the fix far away (issue 15: receivers that do not hear the transmitter).
NOT_HEARD_SNR_DB = -15.0


#: A receiver that does not hear the transmitter bounds its power from above: the signal
#: was below this SNR in its own band. 15 dB over the detection threshold: a signal at
#: 0 dB in-band SNR reads about 0 dB, far above -15 dB whatever the estimate's spread of
#: a few dB, so not hearing it is certain; how much tighter the bound could be is not
#: measured yet.
NOT_HEARD_CEILING_SNR_DB = 0.0


def _is_heard(m: Measurement) -> bool:
    return m.snr is None or m.snr >= NOT_HEARD_SNR_DB


def not_heard(measurements: list[Measurement]) -> dict[str, str]:
    """Receivers whose measurement is not above the noise, and why no reading comes from them."""
    return {
        m.websdr_id: f"not above the noise (SNR {m.snr:.1f} dB < {NOT_HEARD_SNR_DB:g} dB)"
        for m in measurements
        if not _is_heard(m)
    }


def not_heard_observations(measurements: list[Measurement]) -> list[NotHeardObservation]:
    """The ceilings of the receivers that do not hear the signal, where their floor is in dBm.

    The ceiling is the noise in the signal's band plus ``NOT_HEARD_CEILING_SNR_DB``. The
    row's ``noise_floor_dbm`` is the noise over the whole passband (N0 x sample rate);
    the signal's band is the median occupied bandwidth of the receivers that hear it (the
    same transmitter). Without one, the whole passband's noise: a looser, still true,
    bound. Floors in dBFS or S-meter units are on no common scale and give none.
    """
    bandwidths_hz = [
        m.occupied_bandwidth_hz for m in measurements if _is_heard(m) and m.occupied_bandwidth_hz
    ]
    bandwidth_hz = statistics.median(bandwidths_hz) if bandwidths_hz else None
    observations = []
    for m in measurements:
        if _is_heard(m) or m.noise_floor_dbm is None or not math.isfinite(m.noise_floor_dbm):
            continue
        band_db = 0.0
        if bandwidth_hz is not None and m.sample_rate_hz:
            band_db = 10.0 * math.log10(min(bandwidth_hz / m.sample_rate_hz, 1.0))
        observations.append(
            NotHeardObservation(
                receiver_id=m.websdr_id,
                ceiling_dbm=m.noise_floor_dbm + band_db + NOT_HEARD_CEILING_SNR_DB,
            )
        )
    return observations


def power_observations(measurements: list[Measurement]) -> list[PowerObservation]:
    """Power readings of the receivers that hear the signal (``not_heard`` are left out)."""
    observations = []
    for m in measurements:
        if not _is_heard(m):
            continue
        if m.power_dbm is not None:
            observations.append(PowerObservation(receiver_id=m.websdr_id, power=m.power_dbm))
        elif m.signal_power_dbfs is not None:
            observations.append(
                PowerObservation(receiver_id=m.websdr_id, power=m.signal_power_dbfs, unit="dBFS")
            )
    return observations


def on_network_scale(observation: PowerObservation, calibration: Calibration) -> bool:
    """A reading is on the network's common scale in dBm, or the calibration puts it there.

    dBm readings (KiwiSDR RSSI) are; a dBFS or S-meter reading (OpenWebRX) is only
    when the calibration has fitted that receiver's full scale or gain offset.
    """
    return (
        observation.unit == "dBm"
        or observation.receiver_id in calibration.full_scale_dbm
        or observation.receiver_id in calibration.gain_offsets_db
    )


def select_power_scales(
    observations: list[PowerObservation], calibration: Calibration
) -> tuple[list[PowerObservation], dict[str, str]]:
    """The power readings one fit can use together, and why the others were left out.

    Readings on receivers' own, uncalibrated scales (an S-meter's 0 dB is wherever its
    SDR's gain puts it) differ from one another by offsets the unknown transmitter power
    absorbs only in common, so they can make a fix among themselves; beside dBm readings
    they would be tens of dB off. They then wait for a calibration that fits them.
    """
    own_scale = [o for o in observations if not on_network_scale(o, calibration)]
    if not own_scale or len(own_scale) == len(observations):
        return observations, {}
    excluded = {
        o.receiver_id: "uncalibrated S-meter/dBFS reading beside dBm readings; a fitted "
        "calibration (gain offset or full scale) brings it in"
        for o in own_scale
    }
    return [o for o in observations if o.receiver_id not in excluded], excluded


def localization_inputs(
    result: LocalizationResult,
    measurements: list[Measurement],
    power_excluded: dict[str, str],
    tdoa_left_out: dict[str, str] | None = None,
) -> dict[str, object]:
    """Which receivers fed the power part and which the TDOA part of a fix, and why not.

    ``power_not_above_noise``: the receivers whose not hearing the signal entered the
    power fit as a ceiling (``not_heard_observations``), with the ceiling.
    ``tdoa_excluded``: each receiver in no TDOA pair of the fix, with why: no GPS time,
    what the pairing found (``tdoa_left_out``, from ``tdoa_observations_from_recordings``),
    or else what the estimator did with its pair.
    """
    power = sorted({r.receiver_ids[0] for r in result.residuals if r.kind == "power"})
    tdoa = sorted({i for r in result.residuals if r.kind == "tdoa" for i in r.receiver_ids})
    outliers = result.diagnostics.get("excluded_power_outliers") or []
    excluded: dict[str, str] = dict(power_excluded)
    for receiver_id in outliers:
        excluded[receiver_id] = "power reading rejected as an outlier"
    ceilings = result.diagnostics.get("not_heard_ceilings") or {}
    for receiver_id, ceiling in ceilings.items():
        excluded[receiver_id] = (
            f"{excluded.get(receiver_id, 'not heard')}; used as a not-above-the-noise "
            f"constraint (ceiling {ceiling['ceiling_dbm']:.1f} dBm)"
        )
    return {
        "power": power,
        "tdoa": tdoa,
        "gps_timed": sorted(m.websdr_id for m in measurements if m.gps_locked),
        "no_gps_time": sorted(m.websdr_id for m in measurements if not m.gps_locked),
        "power_excluded": excluded,
        "tdoa_excluded": {
            m.websdr_id: (
                (tdoa_left_out or {}).get(m.websdr_id) or _why_no_tdoa(result)
                if m.gps_locked
                else "no GPS time"
            )
            for m in sorted(measurements, key=lambda m: m.websdr_id)
            if m.websdr_id not in tdoa
        },
        "power_not_above_noise": {
            receiver_id: report["ceiling_dbm"] for receiver_id, report in ceilings.items()
        },
    }


def _why_no_tdoa(result: LocalizationResult) -> str:
    """Why a GPS-timed receiver whose pair the pairing kept is in no TDOA pair of the fix."""
    if result.status != "ok":
        return f"no fix ({result.status})"
    if result.method == "rss":
        return "the fix is power-only (rss)"
    # select_inputs dropped the pair: its sigma or quality outside the estimator's limits.
    return "its pair's timing is too uncertain for the fix"


def default_calibration(settings: Settings) -> Calibration:
    """The untrained calibration, with the configured GPS timing sigma."""
    return Calibration(default_timing_sigma_ns=settings.gps_timing_sigma_ns)


def active_calibration(
    session: Session, settings: Settings
) -> tuple[Calibration, uuid.UUID | None]:
    """The active model's calibration and its id, or the default one and None."""
    model = repository.active_calibration(session)
    if model is None:
        return default_calibration(settings), None
    return Calibration.model_validate(model.parameters), model.id


def compute(
    session: Session,
    store: ObjectStore,
    settings: Settings,
    task_id: uuid.UUID,
    *,
    method: str = "auto",
) -> Localization:
    """Localize one successful acquisition and store the result (flushes, never commits)."""
    started = time.perf_counter()
    acquisition = session.get(Acquisition, task_id)
    if acquisition is None:
        raise NotLocalizable(f"no acquisition with task_id {task_id}")
    if acquisition.state is not AcquisitionState.SUCCESS:
        raise NotLocalizable(
            f"acquisition {task_id} is {acquisition.status}; only SUCCESS can be localized"
        )
    measurements = list(
        session.scalars(
            select(Measurement)
            .where(Measurement.task_id == task_id)
            .options(undefer(Measurement.sigmf_meta))
        ).all()
    )
    # The lags are most of a localization's time: a power-only fix does not need them.
    timed = [] if method == "rss" else [m for m in measurements if m.gps_locked]
    recordings = read_timed(store, timed)  # in flight while the database is read
    receivers = {
        s.id: Receiver(id=s.id, latitude=s.latitude, longitude=s.longitude, altitude_m=s.altitude_m)
        for s in session.scalars(
            select(WebSDRStation).where(WebSDRStation.id.in_([m.websdr_id for m in measurements]))
        ).all()
    }
    calibration, model_id = active_calibration(session, settings)
    skipped: list[str] = []
    tdoa_left_out: dict[str, str] = {}
    try:
        pairs = timed_observations(
            timed,
            recordings(),
            receivers,
            window_s=settings.tdoa_window_s,
            skipped=skipped,
            left_out=tdoa_left_out,
        )
        powers, power_excluded = select_power_scales(power_observations(measurements), calibration)
        # Ceilings are in dBm: beside readings on the receivers' own scales they mean nothing.
        ceilings = (
            not_heard_observations(measurements)
            if all(on_network_scale(p, calibration) for p in powers)
            else []
        )
        power_excluded = {**not_heard(measurements), **power_excluded}
        result: LocalizationResult = localize(
            list(receivers.values()),
            powers,
            pairs,
            calibration,
            method=method,  # type: ignore[arg-type]
            frequency_hz=acquisition.frequency_mhz * 1e6,
            not_heard=ceilings,
        )
    except Exception:
        metrics.observe_localization(method, "error", time.perf_counter() - started)
        raise
    metrics.observe_localization(
        result.method or method, result.status, time.perf_counter() - started
    )
    detail = {
        "calibration_version": result.calibration_version,
        "propagation_model": result.propagation_model,
        "altitude_m": result.altitude_m,
        "diagnostics": result.diagnostics,
        "inputs": localization_inputs(result, measurements, power_excluded, tdoa_left_out),
        "latency_ms": round(1000 * (time.perf_counter() - started), 1),
        "tdoa_pairs_skipped": skipped,
    }
    message = result.message
    if skipped:
        message = "; ".join(
            [m for m in (message, "TDOA pairs left out: " + "; ".join(skipped)) if m]
        )
    localization = Localization(
        task_id=task_id,
        status=result.status,
        method=result.method,
        latitude=result.latitude,
        longitude=result.longitude,
        semi_major_m=result.ellipse.semi_major_m if result.ellipse else None,
        semi_minor_m=result.ellipse.semi_minor_m if result.ellipse else None,
        orientation_deg=result.ellipse.orientation_deg if result.ellipse else None,
        gdop=result.gdop,
        receivers_used=result.n_receivers_used,
        residuals={"items": [r.model_dump(mode="json") for r in result.residuals]},
        surface_geojson=result.surface_geojson,
        detail=json.loads(json.dumps(detail, default=str)),
        model_id=model_id,
        message=message or None,
    )
    repository.replace(session, localization)
    return localization
