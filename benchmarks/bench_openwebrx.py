"""Power-only localization accuracy on the simulated OpenWebRX network (NW Italy sites).

Run: ``PYTHONPATH=src python benchmarks/bench_openwebrx.py [--scenarios 120] [--seed 1]``.
Prints a Markdown table; asserts nothing.

Each scenario is ``scenario-openwebrx.yaml`` (seven receivers at their own SDR gains,
0.3-0.9 ppm oscillators) with the transmitter moved, re-powered and re-modulated the
way ``bench_accuracy.py`` draws them (two thirds inside the receivers' hull). Every
receiver's listener stream is rendered by the simulator's OpenWebRX functions (the
spectrum frames at 9 per second, the USB channel through its demodulator and AGC, the
S-meter every two audio messages), put into the wire format (ADPCM) and decoded with the
client's own protocol functions into an ``AudioCapture``. From there the production path
runs: ``measure_audio``, the service's power rule (``power_observations``,
``select_power_scales``), then ``localize(method="rss")`` under two calibrations:

* ``default``: the untrained calibration. It knows nothing of the receivers' S-meter
  scales (each SDR's gain puts its 0 dB elsewhere): their spread acts as extra
  shadowing the 6 dB default sigma must absorb.
* ``oracle``: the calibration a perfect fit would reach, the simulator's truth (each
  receiver's full scale and antenna gain, the propagation model). It bounds what a
  fitted calibration can do; it is not the output of the training fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from heimdall.core.constants import NS_PER_S
from heimdall.core.process import prepare_computing_process
from heimdall.dsp.audio_measurement import measure_audio
from heimdall.localization import Calibration, localize
from heimdall.localization.service import power_observations, select_power_scales
from heimdall.models import Measurement
from heimdall.receivers.capture import AudioCapture
from heimdall.receivers.openwebrx import protocol
from heimdall.receivers.openwebrx.client import (
    HIGH_CUT_HZ,
    LOW_CUT_HZ,
    OUTPUT_RATE_HZ,
    TONE_OFFSET_HZ,
)
from heimdall.simulator.openwebrx_render import (
    PROFILES,
    ChannelDemodulator,
    OpenWebRXOptions,
    audio_frame,
    fft_frame,
    render_channel,
    spectrum_frame_db,
)
from heimdall.simulator.scenario import PACKAGE_DATA, Scenario, load_scenario
from heimdall.simulator.truth import truth_calibration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import (
    GEOD,
    TRANSMITTER_ALTITUDE_M,
    BenchScenario,
    make_scenarios,
    receivers_of,
    truth_inside_ellipse,
)

CAPTURE_S = 5.0
OPTIONS = OpenWebRXOptions()


def record(scenario: Scenario, receiver_id: str, start_ns: int) -> AudioCapture:
    """What the OpenWebRX client records from the simulated receiver over CAPTURE_S."""
    receiver = scenario.receiver(receiver_id)
    profile = PROFILES[0]
    frequency_hz = scenario.transmitter.frequency_hz
    dial_hz = round(frequency_hz) - TONE_OFFSET_HZ
    chunk = OPTIONS.audio_chunk_samples
    chunks = int(np.ceil(CAPTURE_S * OUTPUT_RATE_HZ / chunk))
    demodulator = ChannelDemodulator(OUTPUT_RATE_HZ, "usb", LOW_CUT_HZ, HIGH_CUT_HZ)
    encoder_state = (0, 0)
    decoder_state = None
    audio, chunk_starts, chunk_times, smeter, smeter_times, passband = [], [], [], [], [], []
    for index in range(chunks):
        chunk_ns = start_ns + round(index * chunk * NS_PER_S / OUTPUT_RATE_HZ)
        iq = render_channel(scenario, receiver, chunk_ns, chunk, dial_hz, OUTPUT_RATE_HZ)
        levelled, power = demodulator.process(iq)
        frame, encoder_state = audio_frame(levelled, OPTIONS.audio_compression, encoder_state)
        samples, decoder_state = protocol.decode_audio_frame(
            frame[1:], OPTIONS.audio_compression, decoder_state
        )
        chunk_starts.append(index * chunk)
        chunk_times.append(chunk_ns + round(chunk * NS_PER_S / OUTPUT_RATE_HZ))
        audio.append(samples)
        passband.append(power)
        if len(passband) == OPTIONS.smeter_every:
            smeter.append(float(np.float32(np.mean(passband))))
            smeter_times.append(chunk_times[-1])
            passband.clear()
    frames = int(CAPTURE_S * OPTIONS.fft_fps)
    spectra, spectrum_times = [], []
    for index in range(frames):
        frame_ns = start_ns + round(index * NS_PER_S / OPTIONS.fft_fps)
        values_db = spectrum_frame_db(scenario, receiver, profile, frame_ns, OPTIONS.fft_size)
        wire = fft_frame(values_db, OPTIONS.fft_compression)
        spectra.append(
            protocol.decode_fft_frame(wire[1:], OPTIONS.fft_size, OPTIONS.fft_compression)
        )
        spectrum_times.append(frame_ns)
    pcm = np.concatenate(audio)
    return AudioCapture(
        station_id=receiver_id,
        center_frequency_hz=float(round(frequency_hz)),
        dial_frequency_hz=float(dial_hz),
        demodulator="usb",
        passband_hz=(float(LOW_CUT_HZ), float(HIGH_CUT_HZ)),
        sample_rate_hz=float(OUTPUT_RATE_HZ),
        samples=pcm.astype(np.float32) / np.float32(protocol.INT16_FULL_SCALE),
        chunk_start_index=np.array(chunk_starts, dtype=np.int64),
        chunk_arrival_ns=np.array(chunk_times, dtype=np.int64),
        fft_db=np.array(spectra, dtype=np.float32),
        fft_arrival_ns=np.array(spectrum_times, dtype=np.int64),
        fft_center_frequency_hz=profile.center_frequency_hz,
        fft_sample_rate_hz=profile.sample_rate_hz,
        smeter_power=np.array(smeter, dtype=np.float64),
        smeter_arrival_ns=np.array(smeter_times, dtype=np.int64),
        start_time=datetime.fromtimestamp(start_ns / NS_PER_S, tz=UTC),
        driver="openwebrx",
        driver_version="bench",
    )


@dataclass
class Outcome:
    label: str
    case: BenchScenario
    error_m: float | None
    covered: bool
    latency_ms: float


def run(count: int, seed: int) -> list[Outcome]:
    rng = np.random.default_rng(seed)
    base = load_scenario(PACKAGE_DATA / "scenario-openwebrx.yaml")
    receivers = receivers_of(base)
    calibrations = {"default": Calibration(), "oracle": truth_calibration(base)}
    prepare_computing_process()
    outcomes = []
    for case in make_scenarios(base, count, rng):
        rows = []
        for settings in case.scenario.receivers:
            measured = measure_audio(record(case.scenario, settings.id, case.start_time_ns))
            rows.append(
                Measurement(
                    websdr_id=settings.id,
                    snr=float(measured.snr_db),
                    power_dbm=None,
                    signal_power_dbfs=float(measured.signal_power_dbfs),
                    gps_locked=False,
                )
            )
        for label, calibration in calibrations.items():
            powers, _ = select_power_scales(power_observations(rows), calibration)
            started_s = time.perf_counter()
            result = localize(
                receivers,
                powers,
                [],
                calibration,
                method="rss",
                transmitter_altitude_m=TRANSMITTER_ALTITUDE_M,
            )
            latency_ms = 1e3 * (time.perf_counter() - started_s)
            located = result.status == "ok" and result.latitude is not None
            error_m = None
            if located:
                assert result.latitude is not None and result.longitude is not None
                error_m = float(
                    GEOD.inv(case.longitude, case.latitude, result.longitude, result.latitude)[2]
                )
            outcomes.append(
                Outcome(
                    label=label,
                    case=case,
                    error_m=error_m,
                    covered=located and truth_inside_ellipse(result, case),
                    latency_ms=latency_ms,
                )
            )
    return outcomes


def coverage(group: list[Outcome]) -> str:
    """Share of fixes whose 95 % ellipse holds the truth, with its Wilson 95 % interval."""
    if not group:
        return "no fixes"
    covered = sum(o.covered for o in group)
    interval = binomtest(covered, len(group)).proportion_ci(method="wilson")
    return (
        f"{100 * covered / len(group):.0f} % ({100 * interval.low:.0f}-{100 * interval.high:.0f} %)"
    )


def row(label: str, group: list[Outcome]) -> str:
    located = [o for o in group if o.error_m is not None]
    if not located:
        return f"| {label} | 0 / {len(group)} | – | – | – | – | – |"
    errors_km = np.array([o.error_m for o in located]) / 1e3
    q50, q68, q95 = np.percentile(errors_km, [50, 68, 95])
    p95_ms = np.percentile([o.latency_ms for o in located], 95)
    return (
        f"| {label} | {len(located)} / {len(group)} | {q50:.1f} | {q68:.1f} | {q95:.1f} "
        f"| {coverage(located)} | {p95_ms:.0f} |"
    )


def report(outcomes: list[Outcome], count: int) -> str:
    def pick(
        label: str, inside: bool | None = None, modulation: str | None = None
    ) -> list[Outcome]:
        return [
            o
            for o in outcomes
            if o.label == label
            and (inside is None or o.case.inside_hull == inside)
            and (modulation is None or o.case.modulation == modulation)
        ]

    rows = []
    for label in ("default", "oracle"):
        rows += [
            row(f"rss, {label} calibration, all", pick(label)),
            row(f"rss, {label}, inside hull", pick(label, inside=True)),
            row(f"rss, {label}, outside hull", pick(label, inside=False)),
        ]
        for modulation in ("carrier", "nfm", "wideband"):
            rows.append(row(f"rss, {label}, {modulation}", pick(label, modulation=modulation)))
    return "\n".join(
        [
            f"{count} scenarios, 7 simulated OpenWebRX receivers (NW Italy sites), "
            f"{CAPTURE_S:g} s captures; simulator -> OpenWebRX frames (ADPCM) -> "
            "measure_audio -> service power rule -> localize(rss).",
            "",
            "| calibration, subset | fixes / scenarios | median km | 68 % km | 95 % km "
            "| truth in 95 % ellipse (Wilson 95 %) | p95 localize ms |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    started_s = time.perf_counter()
    outcomes = run(arguments.scenarios, arguments.seed)
    print(report(outcomes, arguments.scenarios))
    print(f"\n(run time {time.perf_counter() - started_s:.0f} s)")


if __name__ == "__main__":
    main()
