"""GPS stamp hygiene against analytic stamp sequences (issue 15)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.core.constants import NS_PER_S
from heimdall.dsp.signals import make_capture
from heimdall.dsp.tdoa import capture_start_time_ns
from heimdall.receivers.gps_stamps import clean_capture, fit_stamps

TRUE_RATE_HZ = 12_001.135
BLOCKS = 120


def stamped(jitter_ns: float = 0.0, announced_hz: float = 12_000.0, seed: int = 1):
    capture = make_capture(np.zeros(512 * BLOCKS, np.complex64), TRUE_RATE_HZ)
    noise = np.random.default_rng(seed).normal(0.0, jitter_ns, BLOCKS).round().astype(np.int64)
    return replace(
        capture, sample_rate_hz=announced_hz, block_time_ns=capture.block_time_ns + noise
    )


def test_rate_and_start_from_the_stamps_beat_the_header_and_the_median() -> None:
    capture = stamped(jitter_ns=200.0, announced_hz=TRUE_RATE_HZ * (1 + 5e-6))
    cleaned, fit = clean_capture(capture)
    assert fit.usable and fit.sample_rate_hz == pytest.approx(TRUE_RATE_HZ, rel=2e-8)
    assert cleaned.sample_rate_hz == fit.sample_rate_hz
    reference = int(capture.block_time_ns[0])
    # The header's 5 ppm put the median start ~ +-7 us off over 5 s; the fit is within jitter.
    truth = make_capture(np.zeros(512 * BLOCKS, np.complex64), TRUE_RATE_HZ)
    true_start = capture_start_time_ns(truth, reference)
    assert abs(capture_start_time_ns(capture, reference) - true_start) > 2_000.0
    assert abs(capture_start_time_ns(cleaned, reference) - true_start) < 60.0


def test_stale_blocks_and_bad_stamps_are_rejected_with_their_reasons() -> None:
    capture = stamped(jitter_ns=50.0)
    status = capture.block_gps_status.copy()
    status[:10] = 254  # a stale solution at the start
    times = capture.block_time_ns.copy()
    times[:10] += 30_000  # stale stamps drift away
    times[50] += 40_000  # bad stamps, well under one sample (83 us)
    times[90] -= 25_000
    fit = fit_stamps(replace(capture, block_gps_status=status, block_time_ns=times))
    assert fit.usable
    assert fit.rejected == {"stale GPS solution (254)": 10, "off the fitted clock": 2}
    assert not fit.good_blocks[50] and not fit.good_blocks[90] and not fit.good_blocks[0]
    assert fit.residual_rms_ns == pytest.approx(50.0, rel=0.3)


def test_unusable_captures_say_why() -> None:
    capture = stamped()
    status = np.full(BLOCKS, 254, np.uint8)
    status[:3] = 1
    fit = fit_stamps(replace(capture, block_gps_status=status))
    assert not fit.usable and "3 of 120 blocks" in (fit.reason or "")
    times = capture.block_time_ns + np.random.default_rng(2).integers(
        -NS_PER_S // 1000, NS_PER_S // 1000, BLOCKS
    )
    scrambled = fit_stamps(replace(capture, block_time_ns=times))
    assert not scrambled.usable and "agree with one sample clock" in (scrambled.reason or "")
    no_gps = make_capture(np.zeros(4096, np.complex64), 12_000.0, gps=False)
    assert clean_capture(no_gps)[1].reason == "unusable for TDOA: no GPS time"
