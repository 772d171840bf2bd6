"""Sessions rendered by the simulator through the production DSP path, without a network.

For the accuracy benchmark and the tests that check the fit end to end on the physics:
every receiver's IQ is rendered by the simulator (``render_receiver_iq``), packed into
the KiwiSDR ``SND`` frames the simulator's server sends and unpacked with the client's
own decoders into an ``IQCapture``; then ``dsp.measure`` per capture, the localization
service's power rule and TDOA lags (``tdoa_observations_from_recordings``). Nothing is
generated from the estimator's or the fit's own models.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from heimdall.core.constants import NS_PER_S
from heimdall.dsp.measurement import measure
from heimdall.localization.observations import (
    NotHeardObservation,
    PowerObservation,
    Receiver,
    TdoaObservation,
)
from heimdall.localization.pairs import TimedRecording, tdoa_observations_from_recordings
from heimdall.localization.service import not_heard_observations, power_observations
from heimdall.models import Measurement
from heimdall.receivers.capture import SAMPLES_PER_BLOCK, IQCapture
from heimdall.receivers.kiwisdr import protocol
from heimdall.receivers.kiwisdr.client import block_times_ns
from heimdall.simulator.physics import power_dbm, render_receiver_iq
from heimdall.simulator.scenario import Scenario
from heimdall.simulator.server import encode_snd_frame
from heimdall.training.fit_data import KnownSourceSession

#: As in production: 5 s captures (the acquisition's default duration).
CAPTURE_S = 5.0
#: Clients connect one after the other: each capture starts up to this much later.
MAX_START_SKEW_S = 0.05


def receivers_of(scenario: Scenario) -> list[Receiver]:
    """The scenario's receivers as the estimator sees them (id and position only)."""
    return [
        Receiver(id=r.id, latitude=lat, longitude=lon, altitude_m=alt)
        for r in scenario.receivers
        for lat, lon, alt in [r.require_position()]
    ]


def record(scenario: Scenario, receiver_id: str, start_time_ns: int, n_blocks: int) -> IQCapture:
    """What the KiwiSDR client would record: rendered IQ through the wire format and back.

    Mirrors the simulator's server frame by frame (int16 samples, 0.1 dB S-meter of the
    block's power, GPS time of week of the reported stamp, seconds since the last fix or
    255 without GPS) and decodes with the client's protocol functions. The whole capture
    is rendered in one call; the server renders block by block, which samples the same
    instants to within the 1 ns rounding of each block's start.
    """
    receiver = scenario.receiver(receiver_id)
    rendered = render_receiver_iq(scenario, receiver, start_time_ns, n_blocks * SAMPLES_PER_BLOCK)
    samples = np.empty(n_blocks * SAMPLES_PER_BLOCK, dtype=np.complex64)
    tow_s = np.empty(n_blocks, dtype=np.int64)
    tow_ns = np.empty(n_blocks, dtype=np.int64)
    gps_status = np.empty(n_blocks, dtype=np.uint8)
    rssi_dbm = np.empty(n_blocks, dtype=np.float32)
    for block in range(n_blocks):
        span = slice(block * SAMPLES_PER_BLOCK, (block + 1) * SAMPLES_PER_BLOCK)
        block_samples = rendered.samples[span]
        frame = encode_snd_frame(
            sequence=block + 1,
            samples=block_samples,
            rssi_dbm=power_dbm(block_samples, scenario.full_scale_dbm),
            reported_time_ns=int(rendered.truth.reported_block_time_ns[block]),
            gps_status=int(rendered.truth.gps_status[block]),
            little_endian=True,
        )
        header = protocol.parse_iq_header(frame)
        samples[span] = protocol.decode_iq_samples(frame, header.little_endian)
        tow_s[block], tow_ns[block] = header.gps_time_of_week_s, header.gps_time_of_week_ns
        gps_status[block] = header.last_gps_solution
        rssi_dbm[block] = protocol.rssi_dbm_from_smeter(header.smeter)
    # The client knows only the announced rate (a few ppm off the true one when impaired).
    announced_hz = rendered.truth.announced_sample_rate_hz
    times_ns = block_times_ns(tow_s, tow_ns, gps_status, announced_hz, start_time_ns)
    return IQCapture(
        station_id=receiver_id,
        center_frequency_hz=float(round(scenario.transmitter.frequency_hz)),
        sample_rate_hz=announced_hz,
        samples=samples,
        block_start_index=np.arange(n_blocks, dtype=np.int64) * SAMPLES_PER_BLOCK,
        block_time_ns=times_ns,
        block_gps_status=gps_status,
        rssi_dbm=rssi_dbm,
        start_time=datetime.fromtimestamp(int(times_ns[0]) / NS_PER_S, tz=UTC),
        driver="kiwisdr",
        driver_version="simulated (simulator frames)",
    )


@dataclass(frozen=True)
class Observations:
    powers: list[PowerObservation]
    pairs: list[TdoaObservation]
    lag_time_ms: float  # what computing the TDOA pairs cost
    #: The receivers that do not hear it, as the service's ceilings (dBm floors only).
    not_heard: list[NotHeardObservation]


def recorded_session(
    scenario: Scenario,
    start_time_ns: int,
    rng: np.random.Generator,
    *,
    capture_s: float = CAPTURE_S,
) -> tuple[list[Measurement], list[TimedRecording]]:
    """Render, record and measure: the measurement rows and the GPS-timed recordings the
    service would read back for one acquisition (clients starting up to
    ``MAX_START_SKEW_S`` apart)."""
    by_id = {r.id: r for r in receivers_of(scenario)}
    rows: list[Measurement] = []
    recordings: list[TimedRecording] = []
    for settings in scenario.receivers:
        n_blocks = int(np.ceil(capture_s * settings.sample_rate_hz / SAMPLES_PER_BLOCK))
        skew_ns = int(rng.uniform(0.0, MAX_START_SKEW_S) * NS_PER_S)
        capture = record(scenario, settings.id, start_time_ns + skew_ns, n_blocks)
        measured = measure(capture)
        # The fields of the measurement row the service reads (acquisition/tasks.py).
        rows.append(
            Measurement(
                websdr_id=settings.id,
                snr=float(measured.snr_db),
                power_dbm=None if measured.power_dbm is None else float(measured.power_dbm),
                noise_floor_dbm=None
                if measured.noise_floor_dbm is None
                else float(measured.noise_floor_dbm),
                sample_rate_hz=float(capture.sample_rate_hz),
                signal_power_dbfs=float(measured.signal_power_dbfs),
                occupied_bandwidth_hz=float(measured.occupied_bandwidth_hz),
                gps_locked=capture.has_gps_time,
            )
        )
        if capture.has_gps_time:
            recordings.append(
                TimedRecording(
                    station=by_id[settings.id],
                    capture=capture,
                    snr_db=float(measured.snr_db),
                    occupied_bandwidth_hz=float(measured.occupied_bandwidth_hz),
                )
            )
    return rows, recordings


def pipeline_observations(
    scenario: Scenario,
    start_time_ns: int,
    rng: np.random.Generator,
    *,
    window_s: float,
    capture_s: float = CAPTURE_S,
) -> Observations:
    """Render, record, measure and correlate: the acquisition's and the service's path."""
    rows, recordings = recorded_session(scenario, start_time_ns, rng, capture_s=capture_s)
    # Rendering leaves much garbage: collect it now, not in the middle of what is timed.
    gc.collect()
    started_s = time.perf_counter()
    pairs = tdoa_observations_from_recordings(recordings, window_s=window_s)
    lag_time_ms = 1e3 * (time.perf_counter() - started_s)
    return Observations(power_observations(rows), pairs, lag_time_ms, not_heard_observations(rows))


def known_source_session(
    task_id: str,
    scenario: Scenario,
    start_time_ns: int,
    rng: np.random.Generator,
    *,
    window_s: float,
    eirp_known: bool,
    capture_s: float = CAPTURE_S,
) -> KnownSourceSession:
    """One acquisition of the scenario's transmitter, as an approved known-source session.

    ``window_s`` is the training's TDOA window (``Settings.training_window_s``), as the
    training job correlates it.
    """
    observations = pipeline_observations(
        scenario, start_time_ns, rng, window_s=window_s, capture_s=capture_s
    )
    transmitter = scenario.transmitter
    return KnownSourceSession(
        task_id=task_id,
        source_latitude=transmitter.latitude,
        source_longitude=transmitter.longitude,
        source_altitude_m=transmitter.altitude_m,
        source_eirp_dbm=transmitter.eirp_dbm if eirp_known else None,
        receivers=receivers_of(scenario),
        powers=observations.powers,
        pairs=observations.pairs,
    )
