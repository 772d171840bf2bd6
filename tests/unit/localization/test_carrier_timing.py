"""An unmodulated carrier carries no arrival time: no TDOA pair is formed for it (issue 15)."""

from __future__ import annotations

import numpy as np

from heimdall.dsp.signals import (
    broadband_burst,
    complex_white_noise,
    fractional_delay,
    make_capture,
)
from heimdall.localization import Receiver
from heimdall.localization.pairs import (
    MIN_TIMING_BANDWIDTH_HZ,
    TimedRecording,
    tdoa_observations_from_recordings,
)

SAMPLE_RATE_HZ = 12_000.0
SAMPLES = 512 * 47
START_NS = 1_700_000_000 * 10**9
SITES = {"a": (45.0, 7.0), "b": (45.1, 7.1), "c": (44.9, 7.1), "d": (45.0, 7.2)}
#: The carrier's own delays (samples): a phase only, nothing a correlation can see.
CARRIER_DELAYS = {"a": 0.0, "b": 0.35, "c": -0.2, "d": 0.7}
#: An interferer elsewhere reaches the receivers with delays of its own.
INTERFERER_DELAYS = {"a": 0.0, "b": -0.6, "c": 0.5, "d": -0.3}


def recordings(occupied_bandwidth_hz: float) -> list[TimedRecording]:
    """A strong 1 kHz carrier with a weaker wideband interferer in the band, per receiver."""
    rng = np.random.default_rng(11)
    interferer = broadband_burst(SAMPLES + 2_000, rng)
    t_s = np.arange(SAMPLES + 2_000) / SAMPLE_RATE_HZ
    recorded = []
    for rid, (lat, lon) in SITES.items():
        carrier = np.exp(2j * np.pi * 1_000.0 * (t_s - CARRIER_DELAYS[rid] / SAMPLE_RATE_HZ))
        samples = (
            carrier[1_000:][:SAMPLES]
            + 0.3 * fractional_delay(interferer, INTERFERER_DELAYS[rid])[1_000:][:SAMPLES]
            + complex_white_noise(0.01, SAMPLES, rng)
        )
        recorded.append(
            TimedRecording(
                station=Receiver(id=rid, latitude=lat, longitude=lon, altitude_m=0.0),
                capture=make_capture(
                    samples.astype(np.complex64),
                    SAMPLE_RATE_HZ,
                    station_id=rid,
                    start_time_ns=START_NS,
                ),
                snr_db={"a": 30.0, "b": 28.0, "c": 26.0, "d": 24.0}[rid],
                occupied_bandwidth_hz=occupied_bandwidth_hz,
            )
        )
    return recorded


def test_a_carrier_gets_no_pair_and_the_reason_is_said() -> None:
    skipped: list[str] = []
    left_out: dict[str, str] = {}
    # 141 Hz: what dsp.measure reads for a spectral line at 12 kHz (its resolution bandwidth).
    pairs = tdoa_observations_from_recordings(
        recordings(141.0), window_s=2.0, skipped=skipped, left_out=left_out
    )
    assert pairs == []
    assert len(skipped) == 1
    assert "141 Hz" in skipped[0] and "carrier" in skipped[0]
    assert left_out == dict.fromkeys("abcd", skipped[0])


def test_the_same_band_measured_as_modulated_is_correlated() -> None:
    # What the carrier pairs would have said: the interferer's delays, not the carrier's.
    pairs = tdoa_observations_from_recordings(recordings(2 * MIN_TIMING_BANDWIDTH_HZ), window_s=2.0)
    assert len(pairs) == 3
    for pair in pairs:
        expected_s = (
            INTERFERER_DELAYS[pair.receiver_i] - INTERFERER_DELAYS[pair.receiver_j]
        ) / SAMPLE_RATE_HZ
        assert abs(pair.time_difference_s - expected_s) < 0.05 / SAMPLE_RATE_HZ


def test_rows_without_a_measured_bandwidth_do_not_decide() -> None:
    assert len(tdoa_observations_from_recordings(recordings_without_bandwidth(), window_s=2.0)) == 3


def recordings_without_bandwidth() -> list[TimedRecording]:
    return [
        TimedRecording(r.station, r.capture, r.snr_db, occupied_bandwidth_hz=None)
        for r in recordings(141.0)
    ]
