"""Median time of heimdall.dsp.measure for 7 receivers x 5 s at 12 kHz, and of one TDOA lag.

The TDOA lag includes the cross-ambiguity (LO offset) search; target well under 100 ms.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_dsp.py
Prints figures; asserts nothing (the target is < 20 ms for the seven measures).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from heimdall.core.process import limit_blas_threads
from heimdall.dsp.measurement import measure
from heimdall.dsp.signals import (
    broadband_burst,
    complex_white_noise,
    fm_signal,
    fractional_delay,
    make_capture,
    tone,
    voice_like_modulation,
)
from heimdall.dsp.tdoa import PreparedCapture, tdoa_lag

SAMPLE_RATE_HZ = 12_000.0
DURATION_S = 5.0
RECEIVER_COUNT = 7
REPEATS = 30


def median_ms(action: Callable[[], object], repeats: int = REPEATS) -> float:
    action()  # warm caches (windows, chi-square factors)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1e3


def main() -> None:
    limit_blas_threads()  # as the services and workers do
    rng = np.random.default_rng(0)
    sample_count = int(DURATION_S * SAMPLE_RATE_HZ)
    message = voice_like_modulation(SAMPLE_RATE_HZ, sample_count, rng)
    voice_fm = fm_signal(message, SAMPLE_RATE_HZ, deviation_hz=2_500.0, amplitude=0.1)
    captures = [
        make_capture(
            voice_fm + complex_white_noise(1e-3, sample_count, rng),
            SAMPLE_RATE_HZ,
            station_id=f"rx{index}",
            rssi_dbm=-90.0,
        )
        for index in range(RECEIVER_COUNT)
    ]

    carriers = [
        make_capture(
            tone(317.5, SAMPLE_RATE_HZ, sample_count, amplitude=0.05)
            + complex_white_noise(1e-3, sample_count, rng),
            SAMPLE_RATE_HZ,
        )
        for _ in range(RECEIVER_COUNT)
    ]

    def measure_all() -> None:
        for capture in captures:
            measure(capture)

    def measure_carriers() -> None:
        for capture in carriers:
            measure(capture)

    burst = broadband_burst(sample_count + 200, rng)
    # b's receiver: its LO 17 Hz off a's, and (second case) its own GPS-corrected
    # rate 20 ppm off: the cross-ambiguity search and the resampling both run.
    offset = np.exp(2j * np.pi * 17.0 * np.arange(sample_count + 200) / SAMPLE_RATE_HZ)
    shifted = (fractional_delay(burst, 3.3) * offset)[100:-100].astype(np.complex64)
    a = make_capture(burst[100:-100], SAMPLE_RATE_HZ)
    b = make_capture(shifted, SAMPLE_RATE_HZ)
    b_other_rate = make_capture(shifted, SAMPLE_RATE_HZ * (1 + 20e-6))

    print(
        f"measure, {RECEIVER_COUNT} receivers x {DURATION_S:g} s at {SAMPLE_RATE_HZ:g} Hz "
        f"(voice FM): {median_ms(measure_all):.1f} ms median"
    )
    print(
        f"measure, {RECEIVER_COUNT} receivers x {DURATION_S:g} s (carrier, line path): "
        f"{median_ms(measure_carriers):.1f} ms median"
    )
    print(
        f"tdoa_lag, one pair x {DURATION_S:g} s, max lag 1 ms, 17 Hz LO offset: "
        f"{median_ms(lambda: tdoa_lag(a, b, max_lag_s=1e-3), repeats=10):.1f} ms median"
    )
    print(
        f"tdoa_lag, same with sample rates 20 ppm apart (drift series in the correlation): "
        f"{median_ms(lambda: tdoa_lag(a, b_other_rate, max_lag_s=1e-3), repeats=10):.1f}"
        " ms median"
    )
    # The service's case: one reference against N-1 partners, its share done once.
    prepared = PreparedCapture(a)
    tdoa_lag(prepared, b_other_rate, max_lag_s=1e-3)
    print(
        f"tdoa_lag, same against a PreparedCapture (the reference's FFT and carrier fit reused): "
        f"{median_ms(lambda: tdoa_lag(prepared, b_other_rate, max_lag_s=1e-3), repeats=10):.1f}"
        " ms median"
    )


if __name__ == "__main__":
    main()
