"""The pure helpers the inference service builds TDOA observations with."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable

import numpy as np
import pytest
from pyproj import Geod

from heimdall.dsp.signals import (
    broadband_burst,
    complex_white_noise,
    fractional_delay,
    make_capture,
)
from heimdall.dsp.tdoa import cross_correlation_lag
from heimdall.localization import Receiver
from heimdall.localization.pairs import (
    baseline_s,
    correlation_sigma_s,
    rms_bandwidth_fallback_hz,
)
from heimdall.localization.windows import central_window, common_window, window_covering
from heimdall.receivers.capture import IQCapture

SAMPLE_RATE_HZ = 12_000.0


def test_central_window_keeps_whole_blocks_from_the_middle() -> None:
    samples = (np.arange(512 * 20) % 7).astype(np.complex64)
    capture = make_capture(samples, SAMPLE_RATE_HZ)
    window = central_window(capture, duration_s=4 * 512 / SAMPLE_RATE_HZ)
    assert len(window.samples) == 4 * 512
    assert list(window.block_start_index) == [0, 512, 1024, 1536]
    # Blocks 8..11 of 20, with their own timestamps.
    assert np.array_equal(window.block_time_ns, capture.block_time_ns[8:12])
    assert np.array_equal(window.samples, capture.samples[8 * 512 : 12 * 512])


def test_central_window_rounds_up_to_a_block_count_of_fast_fft_length() -> None:
    # 2 s at 12 kHz is 47 blocks (a prime times 512): the window takes 48 = 2^13 * 3 samples.
    capture = make_capture(np.zeros(512 * 117, dtype=np.complex64), SAMPLE_RATE_HZ)
    window = central_window(capture, duration_s=2.0)
    assert len(window.samples) == 48 * 512
    assert np.array_equal(window.block_time_ns, capture.block_time_ns[34:82])


def test_central_window_cuts_on_the_captures_own_blocks() -> None:
    # An imported recording with 1000-sample blocks: the window is whole blocks of it.
    capture = make_capture(np.zeros(512 * 100, dtype=np.complex64), SAMPLE_RATE_HZ)
    starts = np.arange(0, len(capture.samples), 1000, dtype=np.int64)
    capture = dataclasses.replace(
        capture,
        block_start_index=starts,
        block_time_ns=capture.block_time_ns[0]
        + np.round(starts * 1e9 / SAMPLE_RATE_HZ).astype(np.int64),
        block_gps_status=np.zeros(len(starts), np.uint8),
        rssi_dbm=np.zeros(len(starts), np.float32),
    )
    assert capture.samples_per_block == 1000
    window = central_window(capture, duration_s=1.0)  # 12 blocks of 1000 (fast: 2^5 3^1 5^3)
    assert len(window.samples) == 12 * 1000
    assert np.all(np.diff(window.block_start_index) == 1000)


def test_central_window_longer_than_the_capture_is_the_capture() -> None:
    capture = make_capture(np.ones(512 * 3, dtype=np.complex64), SAMPLE_RATE_HZ)
    assert central_window(capture, duration_s=10.0) is capture


@pytest.mark.parametrize("start_offset_s", [-0.0431, 0.0, 0.0217])
def test_window_covering_spans_the_reference_window(start_offset_s: float) -> None:
    # A partner capture starting start_offset_s after the reference, at a rate 40 ppm off.
    reference = make_capture(
        np.zeros(512 * 117, np.complex64), SAMPLE_RATE_HZ, start_time_ns=10**18
    )
    partner_rate_hz = SAMPLE_RATE_HZ * (1 + 40e-6)
    partner = make_capture(
        (np.arange(512 * 117) % 11).astype(np.complex64),
        partner_rate_hz,
        start_time_ns=10**18 + round(start_offset_s * 1e9),
    )
    window = central_window(reference, duration_s=2.0)
    covering = window_covering(partner, window)
    window_start_ns = int(window.block_time_ns[0])
    window_end_ns = window_start_ns + len(window.samples) / SAMPLE_RATE_HZ * 1e9
    covering_start_ns = int(covering.block_time_ns[0])
    covering_end_ns = covering_start_ns + len(covering.samples) / partner_rate_hz * 1e9
    # At least one spare block each side, and not much more than that.
    block_ns = 512 / partner_rate_hz * 1e9
    assert covering_start_ns <= window_start_ns - block_ns
    assert covering_end_ns >= window_end_ns + block_ns
    assert len(covering.samples) <= len(window.samples) + 6 * 512
    # Whole blocks of the partner, samples and stamps together.
    first = int(np.flatnonzero(partner.block_time_ns == covering.block_time_ns[0])[0])
    blocks = len(covering.block_time_ns)
    assert np.array_equal(covering.block_time_ns, partner.block_time_ns[first : first + blocks])
    assert np.array_equal(covering.samples, partner.samples[first * 512 : (first + blocks) * 512])


def test_common_window_is_the_span_every_partner_covers() -> None:
    start_ns = 10**18
    reference = make_capture(
        np.zeros(512 * 47, np.complex64), SAMPLE_RATE_HZ, start_time_ns=start_ns
    )

    def partner(offset_s: float, rate_hz: float = SAMPLE_RATE_HZ) -> IQCapture:
        return make_capture(
            np.zeros(512 * 47, np.complex64),
            rate_hz,
            start_time_ns=start_ns + round(offset_s * 1e9),
        )

    # Two partners start 31 ms and 46.7 ms late (one 40 ppm fast), one ends 20 ms early,
    # and one recorded 10 s later covers nothing and must not shrink the others' span.
    late = partner(0.0467, SAMPLE_RATE_HZ * (1 + 40e-6))
    early = partner(-0.020)
    window = common_window(reference, [partner(0.031), late, early, partner(10.0)], 2.0)
    block_ns = 512 / SAMPLE_RATE_HZ * 1e9
    window_start_ns = float(window.block_time_ns[0] - start_ns)
    window_end_ns = window_start_ns + len(window.samples) / SAMPLE_RATE_HZ * 1e9
    late_start_ns = 0.0467e9
    early_end_ns = -0.020e9 + 512 * 47 / SAMPLE_RATE_HZ * 1e9
    # Inside the latest start and the earliest end, losing under two blocks plus the
    # fast-length rounding (47 blocks: 45 fit, 45 = 3^2 5 is fast).
    assert late_start_ns < window_start_ns < late_start_ns + block_ns
    assert early_end_ns - 2 * block_ns < window_end_ns < early_end_ns
    assert len(window.samples) == 44 * 512  # 45 would end past the early partner
    # Whole blocks of the reference, samples and stamps together.
    first = int(np.flatnonzero(reference.block_time_ns == window.block_time_ns[0])[0])
    assert np.array_equal(window.block_time_ns, reference.block_time_ns[first : first + 44])
    # A partner without GPS time cannot shrink it either (its own pair fails, with why).
    untimed = make_capture(np.zeros(512 * 47, np.complex64), SAMPLE_RATE_HZ, gps=False)
    with_untimed = common_window(reference, [late, early, untimed], 2.0)
    assert np.array_equal(with_untimed.block_time_ns, window.block_time_ns)
    # All partners starting together: the central window itself, untouched.
    assert common_window(reference, [partner(0.0), partner(0.0)], 2.0) is reference


def test_every_pair_correlates_the_one_reference_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    from heimdall.localization import pairs
    from heimdall.localization.pairs import TimedRecording, tdoa_observations_from_recordings

    prepared: list[pairs.PreparedCapture] = []

    class Recorded(pairs.PreparedCapture):
        def __init__(self, capture: IQCapture) -> None:
            super().__init__(capture)
            prepared.append(self)

    monkeypatch.setattr(pairs, "PreparedCapture", Recorded)
    rng = np.random.default_rng(4)
    samples = 512 * 47
    signal = broadband_burst(samples + 2_000, rng)
    start_ns = 1_700_000_000 * 10**9
    # Each receiver starts its 2 s capture up to 45 ms after the first (whole samples),
    # and hears the signal 0-0.7 samples late (its path).
    starts = {"a": 0, "b": 137, "c": 540, "d": 301}
    delays = {"a": 0.0, "b": 0.35, "c": -0.2, "d": 0.7}
    sites = {"a": (45.0, 7.0), "b": (45.1, 7.1), "c": (44.9, 7.1), "d": (45.0, 7.2)}
    recordings = [
        TimedRecording(
            station=Receiver(id=rid, latitude=lat, longitude=lon, altitude_m=0.0),
            capture=make_capture(
                (
                    fractional_delay(signal, delays[rid])[1_000 + starts[rid] :][:samples]
                    + complex_white_noise(0.01, samples, rng)
                ).astype(np.complex64),
                SAMPLE_RATE_HZ,
                station_id=rid,
                start_time_ns=start_ns + round(starts[rid] * 1e9 / SAMPLE_RATE_HZ),
            ),
            snr_db={"a": 20.0, "b": 15.0, "c": 12.0, "d": 10.0}[rid],
            occupied_bandwidth_hz=5000.0,
        )
        for rid, (lat, lon) in sites.items()
    ]
    pairs = tdoa_observations_from_recordings(recordings, window_s=2.0)
    assert [p.receiver_j for p in pairs] == ["a"] * 3
    for pair in pairs:
        expected_s = delays[pair.receiver_i] / SAMPLE_RATE_HZ
        assert pair.time_difference_s == pytest.approx(expected_s, abs=0.02 / SAMPLE_RATE_HZ)
    # One reference prepared, one cut of it (its FFTs, moments, carrier fit) for all pairs:
    # the whole window, which starts after the last receiver has started.
    assert len(prepared) == 1
    assert list(prepared[0]._cuts) == [(0, len(prepared[0].capture.samples))]
    assert int(prepared[0].capture.block_time_ns[0]) > start_ns + 540 * 1e9 / SAMPLE_RATE_HZ


def test_baseline_is_the_slant_light_time() -> None:
    a = Receiver(id="a", latitude=45.0, longitude=7.0, altitude_m=0.0)
    b = Receiver(id="b", latitude=45.0, longitude=8.0, altitude_m=3_000.0)
    _, _, ground_m = Geod(ellps="WGS84").inv(7.0, 45.0, 8.0, 45.0)
    assert baseline_s(a, b) == pytest.approx(math.hypot(ground_m, 3_000.0) / 299_792_458.0)


def test_correlation_sigma_shrinks_with_peak_samples_and_bandwidth() -> None:
    base = correlation_sigma_s(0.9, 24_000, 1_000.0)
    assert correlation_sigma_s(0.99, 24_000, 1_000.0) < base
    assert correlation_sigma_s(0.9, 96_000, 1_000.0) == pytest.approx(base / 2)
    assert correlation_sigma_s(0.9, 24_000, 2_000.0) == pytest.approx(base / 2)
    # Known value: rho^2/(1-rho^2) = 4.263; complex samples, so 2 N SNR_eff.
    expected = 1 / (2 * math.pi * 1_000.0 * math.sqrt(2 * 24_000 * 0.81 / 0.19))
    assert base == pytest.approx(expected)


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_stated_sigma_matches_the_spread_of_measured_lags(snr_db: float) -> None:
    """Monte Carlo: lags of a broadband pair in noise scatter as the stated sigma says.

    (At 0 dB the scatter is ~1.2x the stated sigma: the plain correlator also lets the
    noise outside the signal's band into the peak's curvature.)
    """
    rng = np.random.default_rng(round(snr_db) + 17)
    sample_count, margin, delay_samples = 4_096, 64, 1.3
    noise_power = 10 ** (-snr_db / 10)
    errors_s, sigmas_s = [], []
    for _ in range(300):
        burst = broadband_burst(sample_count + 2 * margin, rng, bandwidth_fraction=0.6)
        late = fractional_delay(burst, delay_samples)
        x = burst[margin:-margin] + complex_white_noise(noise_power, sample_count, rng)
        y = late[margin:-margin] + complex_white_noise(noise_power, sample_count, rng)
        lag = cross_correlation_lag(x, y, SAMPLE_RATE_HZ, 4, carrier_notch_hz=30.0)
        errors_s.append((lag.lag_samples - delay_samples) / SAMPLE_RATE_HZ)
        sigmas_s.append(
            correlation_sigma_s(lag.peak_correlation, sample_count, lag.rms_bandwidth_hz)
        )
    empirical_s = float(np.std(errors_s))
    stated_s = float(np.sqrt(np.mean(np.square(sigmas_s))))
    assert abs(float(np.mean(errors_s))) < 0.2 * empirical_s  # unbiased
    assert stated_s == pytest.approx(empirical_s, rel=0.25)


def test_rms_bandwidth_fallback_is_a_flat_band() -> None:
    assert rms_bandwidth_fallback_hz(6_000.0) == pytest.approx(6_000.0 / math.sqrt(12))


def test_correlation_sigma_of_no_correlation_is_huge_not_infinite() -> None:
    sigma = correlation_sigma_s(0.0, 24_000, 1_000.0)
    assert math.isfinite(sigma)
    assert sigma > 1e-4


def test_recordings_that_do_not_overlap_are_left_out_with_the_reason() -> None:
    from heimdall.localization.pairs import TimedRecording, tdoa_observations_from_recordings

    rng = np.random.default_rng(11)
    sites = {"a": (45.0, 7.0), "b": (45.1, 7.2), "c": (44.9, 7.3)}
    signal = broadband_burst(12_000 * 3, rng)
    start_ns = 1_700_000_000 * 10**9
    # "c" recorded ten seconds after the others: nothing in common to correlate.
    starts = {"a": start_ns, "b": start_ns, "c": start_ns + 10 * 10**9}
    recordings = [
        TimedRecording(
            station=Receiver(id=rid, latitude=lat, longitude=lon, altitude_m=0.0),
            capture=make_capture(
                (signal + complex_white_noise(0.01, len(signal), rng)).astype(np.complex64),
                SAMPLE_RATE_HZ,
                station_id=rid,
                start_time_ns=starts[rid],
            ),
            snr_db={"a": 20.0, "b": 15.0, "c": 10.0}[rid],
            occupied_bandwidth_hz=5000.0,
        )
        for rid, (lat, lon) in sites.items()
    ]
    skipped: list[str] = []
    left_out: dict[str, str] = {}
    pairs = tdoa_observations_from_recordings(
        recordings, window_s=1.0, skipped=skipped, left_out=left_out
    )
    assert [(p.receiver_i, p.receiver_j) for p in pairs] == [("b", "a")]
    assert len(skipped) == 1
    assert skipped[0].startswith("c-a: ") and "overlap" in skipped[0]
    assert left_out == {"c": skipped[0]}


def test_pair_sigma_is_the_larger_of_the_correlation_and_window_sigmas() -> None:
    from heimdall.dsp.tdoa import TdoaLag
    from heimdall.localization.pairs import pair_sigma_s

    lag = TdoaLag(
        lag_s=1e-5,
        lag_samples=0.12,
        quality_db=20.0,
        peak_correlation=0.9,
        overlap_s=2.0,
        sample_rate_hz=SAMPLE_RATE_HZ,
        rms_bandwidth_hz=2_000.0,
    )
    random_s = correlation_sigma_s(0.9, 24_000, 2_000.0)
    assert pair_sigma_s(lag, 5_000.0) == pytest.approx(random_s)
    windows = dataclasses.replace(lag, empirical_sigma_s=3 * random_s)
    assert pair_sigma_s(windows, 5_000.0) == pytest.approx(3 * random_s)
    no_bandwidth = dataclasses.replace(lag, rms_bandwidth_hz=0.0)
    flat_s = correlation_sigma_s(0.9, 24_000, rms_bandwidth_fallback_hz(5_000.0))
    assert pair_sigma_s(no_bandwidth, 5_000.0) == pytest.approx(flat_s)
    # The echo bound is carried, not added (measured: no better; see the docstring).
    echo = dataclasses.replace(windows, echo_bias_bound_s=4 * random_s)
    assert pair_sigma_s(echo, 5_000.0) == pytest.approx(3 * random_s)


def _recordings_with_interferer(
    interfered: dict[str, float], snr_db: dict[str, float], seed: int
) -> list:
    """Four receivers close together hearing one broadband signal; those in
    ``interfered`` also hear a periodic interferer (a 16-sample burst repeated, at that
    many times the signal's power), whose correlation is flat (a peak every 16 samples)
    in any pair of two receivers that both hear it, and noise otherwise."""
    from heimdall.localization.pairs import TimedRecording

    rng = np.random.default_rng(seed)
    sites = {"a": (45.0, 7.0), "b": (45.02, 7.03), "c": (44.98, 7.04), "d": (45.03, 6.98)}
    count = 12_000 * 2
    signal = broadband_burst(count, rng)
    burst = complex_white_noise(1.0, 16, rng)
    periodic = np.tile(burst, count // 16)
    start_ns = 1_700_000_000 * 10**9
    recordings = []
    for rid, (lat, lon) in sites.items():
        samples = signal + complex_white_noise(0.01, count, rng)
        if rid in interfered:
            samples = samples + np.sqrt(interfered[rid]) * periodic
        recordings.append(
            TimedRecording(
                station=Receiver(id=rid, latitude=lat, longitude=lon, altitude_m=0.0),
                capture=make_capture(
                    samples.astype(np.complex64),
                    SAMPLE_RATE_HZ,
                    station_id=rid,
                    start_time_ns=start_ns,
                ),
                snr_db=snr_db[rid],
                occupied_bandwidth_hz=5_000.0,
            )
        )
    return recordings


def test_a_receiver_whose_pair_with_the_reference_fails_is_paired_with_another() -> None:
    from heimdall.localization.pairs import UNUSABLE_SIGMA_S, tdoa_observations_from_recordings

    # a (the reference) and c both hear the interferer at 3x the signal: their pair is
    # flat (quality ~4 dB); b and d do not, and their pairs with a or c are clean.
    recordings = _recordings_with_interferer(
        {"a": 3.0, "c": 3.0}, {"a": 30.0, "b": 25.0, "c": 20.0, "d": 15.0}, seed=5
    )
    skipped: list[str] = []
    left_out: dict[str, str] = {}
    pairs = tdoa_observations_from_recordings(
        recordings, window_s=1.0, skipped=skipped, left_out=left_out
    )
    assert sorted((p.receiver_i, p.receiver_j) for p in pairs) == [
        ("b", "a"),
        ("c", "b"),
        ("d", "a"),
    ]
    assert all(p.sigma_s < UNUSABLE_SIGMA_S for p in pairs)
    assert len(skipped) == 1
    assert skipped[0].startswith("c-a: correlation quality") and "paired with b" in skipped[0]
    assert left_out == {}  # c's pair was mended: every receiver is in a usable pair
    # The receivers are at one place and hear one signal: every lag is ~0.
    assert all(abs(p.time_difference_s) < 5e-6 for p in pairs)


def test_a_reference_that_spoils_every_pair_is_replaced_by_the_next_strongest() -> None:
    from heimdall.localization.pairs import UNUSABLE_SIGMA_S, tdoa_observations_from_recordings

    # The strongest receiver hears the interferer far above the signal: every pair
    # against it is flat, the pairs without it are not.
    recordings = _recordings_with_interferer(
        {"a": 3000.0}, {"a": 30.0, "b": 25.0, "c": 20.0, "d": 15.0}, seed=6
    )
    skipped: list[str] = []
    pairs = tdoa_observations_from_recordings(recordings, window_s=1.0, skipped=skipped)
    usable = sorted((p.receiver_i, p.receiver_j) for p in pairs if p.sigma_s < UNUSABLE_SIGMA_S)
    assert ("c", "b") in usable and ("d", "b") in usable
    assert skipped[0].startswith("a as reference: ") and "b is the reference instead" in skipped[0]
    # Still a tree: one pair per receiver but the reference.
    assert len(pairs) == 3


def test_a_signal_without_timing_costs_no_second_reference() -> None:
    """Everyone hears only the periodic interferer (no timing in it): no retry."""
    from heimdall.localization import pairs as pairing

    recordings = _recordings_with_interferer(
        {r: 1e6 for r in "abcd"}, {"a": 30.0, "b": 25.0, "c": 20.0, "d": 15.0}, seed=7
    )
    calls: list[tuple[str, str]] = []
    original = pairing.tdoa_lags

    def counting(a, partners, **kwargs):  # type: ignore[no-untyped-def]
        calls.extend((a.capture.station_id, b.station_id) for b in partners)
        return original(a, partners, **kwargs)

    pairing.tdoa_lags = counting
    try:
        skipped: list[str] = []
        left_out: dict[str, str] = {}
        pairs = pairing.tdoa_observations_from_recordings(
            recordings, window_s=1.0, skipped=skipped, left_out=left_out
        )
    finally:
        pairing.tdoa_lags = original
    assert all(p.sigma_s >= pairing.UNUSABLE_SIGMA_S for p in pairs)
    assert skipped == []
    # The star against a, then one pair without a (b with c) to tell a carrier apart.
    assert len(calls) == 4
    # The message stays short, but each receiver says why it is in no pair.
    assert left_out["a"] == "none of its pairs is usable"
    for rid in "bcd":
        assert left_out[rid].startswith(f"{rid}-a: correlation quality")


def test_a_receiver_whose_stamps_cannot_time_it_is_left_out_with_the_reason() -> None:
    from heimdall.localization.pairs import tdoa_observations_from_recordings

    snr_db = {"a": 30.0, "b": 25.0, "c": 20.0, "d": 15.0}
    recordings = _recordings_with_interferer({}, snr_db, seed=8)[:3]
    # b's stamps all from a stale GPS solution (last_gps_solution 254): no GPS time.
    stale = dataclasses.replace(
        recordings[1].capture,
        block_gps_status=np.full_like(recordings[1].capture.block_gps_status, 254),
    )
    recordings[1] = dataclasses.replace(recordings[1], capture=stale)
    skipped: list[str] = []
    left_out: dict[str, str] = {}
    pairs = tdoa_observations_from_recordings(
        recordings, window_s=1.0, skipped=skipped, left_out=left_out
    )
    assert [(p.receiver_i, p.receiver_j) for p in pairs] == [("c", "a")]
    assert list(left_out) == ["b"] and skipped == [f"b: {left_out['b']}"]
    assert "GPS" in left_out["b"]


def test_read_pool_is_kept_per_process() -> None:
    from heimdall.localization import pools

    pool = pools.read_pool()
    assert pools.read_pool() is pool
    assert list(pool.map(abs, [-1, -2])) == [1, 2]
    # What a forked child runs: the inherited pool has no threads, a new one is started.
    pools.forget_pools()
    assert pools.read_pool() is not pool


def test_a_forked_child_reads_on_threads_of_its_own() -> None:
    from heimdall.localization import pools

    # The parent's threads are running (they start on the first task) before the fork.
    assert list(pools.read_pool().map(abs, [-1, -2])) == [1, 2]
    pid = os.fork()
    if pid == 0:  # the child: with the parent's pool its task would never run
        code = 1
        try:
            code = 0 if pools.read_pool().submit(abs, -3).result(timeout=10) == 3 else 1
        finally:
            os._exit(code)  # never back into pytest
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_recordings_are_read_back_at_once_in_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from heimdall.core.settings import get_settings
    from heimdall.localization import service
    from heimdall.models import Measurement

    seen_urls: list[list[tuple[str, str | None]]] = []

    def load(
        store: object, urls: list[tuple[str, str | None]], pool: object, metas: object = None
    ) -> Callable[[], list[IQCapture]]:
        seen_urls.append(urls)
        return lambda: [
            make_capture(np.zeros(512, np.complex64), SAMPLE_RATE_HZ, station_id=data_url)
            for data_url, _ in urls
        ]

    seen: list[tuple[str, str]] = []

    def observations(recordings: list[service.TimedRecording], **_: object) -> list[object]:
        seen.extend((r.station.id, r.capture.station_id) for r in recordings)
        return []

    monkeypatch.setattr(service, "start_loading", load)
    monkeypatch.setattr(service, "tdoa_observations_from_recordings", observations)
    ids = ["a", "b", "c", "d"]
    measurements = [
        Measurement(websdr_id=rid, snr=10.0, gps_locked=rid != "c", data_url=f"s3://x/{rid}")
        for rid in ids
    ]
    receivers = {rid: Receiver(id=rid, latitude=45.0, longitude=7.0, altitude_m=0.0) for rid in ids}
    service.tdoa_observations(
        object(),  # type: ignore[arg-type]
        measurements,
        receivers,
        window_s=get_settings().tdoa_window_s,
    )
    assert seen_urls == [[("s3://x/a", None), ("s3://x/b", None), ("s3://x/d", None)]]
    assert seen == [("a", "s3://x/a"), ("b", "s3://x/b"), ("d", "s3://x/d")]
