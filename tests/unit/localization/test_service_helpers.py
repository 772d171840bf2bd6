"""The pure helpers the inference service builds TDOA observations with."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from heimdall.dsp.signals import make_capture
from heimdall.localization import Receiver
from heimdall.localization.service import baseline_s, central_window, correlation_sigma_s

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


def test_central_window_longer_than_the_capture_is_the_capture() -> None:
    capture = make_capture(np.ones(512 * 3, dtype=np.complex64), SAMPLE_RATE_HZ)
    assert central_window(capture, duration_s=10.0) is capture


def test_baseline_is_the_slant_light_time() -> None:
    a = Receiver(id="a", latitude=45.0, longitude=7.0, altitude_m=0.0)
    b = Receiver(id="b", latitude=45.0, longitude=8.0, altitude_m=3_000.0)
    _, _, ground_m = Geod(ellps="WGS84").inv(7.0, 45.0, 8.0, 45.0)
    assert baseline_s(a, b) == pytest.approx(math.hypot(ground_m, 3_000.0) / 299_792_458.0)


def test_correlation_sigma_shrinks_with_peak_samples_and_bandwidth() -> None:
    base = correlation_sigma_s(0.9, 24_000, 4_000.0)
    assert correlation_sigma_s(0.99, 24_000, 4_000.0) < base
    assert correlation_sigma_s(0.9, 96_000, 4_000.0) == pytest.approx(base / 2)
    assert correlation_sigma_s(0.9, 24_000, 8_000.0) == pytest.approx(base / 2)
    # Known value: rho^2/(1-rho^2) = 4.263, B_rms = 4000/sqrt(12).
    expected = 1 / (2 * math.pi * (4_000 / math.sqrt(12)) * math.sqrt(24_000 * 0.81 / 0.19))
    assert base == pytest.approx(expected)


def test_correlation_sigma_of_no_correlation_is_huge_not_infinite() -> None:
    sigma = correlation_sigma_s(0.0, 24_000, 4_000.0)
    assert math.isfinite(sigma)
    assert sigma > 1e-4
