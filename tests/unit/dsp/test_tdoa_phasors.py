"""Phase ramps built as products of short factors (``dsp.tdoa.peak``) against exp in float64."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.dsp.tdoa import _newton_peak
from heimdall.dsp.tdoa.peak import RAMP_FINE_PHASORS, DelayedSums, fft_phasors, ramp_phasors

# Each factor and their product round once to complex64 (~6e-8 each).
EXACT_TO = 3e-7


@pytest.mark.parametrize("count", [0, 1, 2, 255, 256, 257, 24_000, 24_001])
@pytest.mark.parametrize(("step", "start"), [(0.0, 0.0), (0.123456789, 0.0), (-0.4999, 0.37)])
def test_a_ramp_is_exp_of_its_phase(count: int, step: float, start: float) -> None:
    expected = np.exp(2j * np.pi * (start + step * np.arange(count)))
    ramp = ramp_phasors(step, count, start_cycles=start)
    assert ramp.dtype == np.complex64 and ramp.shape == (count,)
    assert np.max(np.abs(ramp - expected), initial=0.0) < EXACT_TO


def test_ramps_broadcast_over_steps_and_starts() -> None:
    steps, starts = np.array([0.01, -0.2, 0.33]), np.array([0.5, 0.0, -0.25])
    ramps = ramp_phasors(steps, 1_000, start_cycles=starts)
    expected = np.exp(2j * np.pi * (starts[:, None] + np.outer(steps, np.arange(1_000))))
    assert ramps.shape == (3, 1_000)
    assert np.max(np.abs(ramps - expected)) < EXACT_TO


def test_a_samples_phasor_does_not_depend_on_the_ramps_length() -> None:
    # The same tone taken out of a pair alone and in a batch must round alike.
    long, short = ramp_phasors(0.0371, 3 * RAMP_FINE_PHASORS + 5), ramp_phasors(0.0371, 300)
    assert np.array_equal(long[:300], short)


@pytest.mark.parametrize("length", [1, 2, 5, 16, 2_880, 23_625, 24_000])
@pytest.mark.parametrize("delay", [0.0, 0.37, -0.93, 3.4])
def test_fft_phasors_are_the_delay_at_each_fft_frequency(length: int, delay: float) -> None:
    expected = np.exp(2j * np.pi * np.fft.fftfreq(length) * delay)
    phasors = fft_phasors(length, delay)
    assert phasors.shape == (length,)
    assert np.max(np.abs(phasors - expected)) < EXACT_TO


def test_delayed_sums_equal_the_direct_sums_for_one_delay_and_for_one_per_row() -> None:
    rng = np.random.default_rng(7)
    length = 2_881  # odd: one more non-negative frequency than negative
    spectra = (
        rng.standard_normal((3, 4, length)) + 1j * rng.standard_normal((3, 4, length))
    ).astype(np.complex64)
    frequencies = np.fft.fftfreq(length)
    sums = DelayedSums(spectra)

    one = sums(0.41)
    direct_one = spectra.astype(np.complex128) @ np.exp(2j * np.pi * frequencies * 0.41)
    assert one.shape == (3, 4)
    assert np.allclose(one, direct_one, rtol=0, atol=1e-5 * np.abs(direct_one).max())

    delays = np.array([-0.9, 0.0, 0.25, 0.77])
    per_row = sums(delays)
    direct_rows = np.einsum(
        "crk,rk->cr",
        spectra.astype(np.complex128),
        np.exp(2j * np.pi * np.outer(delays, frequencies)),
    )
    assert per_row.shape == (3, 4)
    assert np.allclose(per_row, direct_rows, rtol=0, atol=1e-5 * np.abs(direct_rows).max())


def test_newton_on_a_grid_of_band_centres_finds_the_delay() -> None:
    # Any frequency grid (the multipath study's band centres), not only an FFT's.
    band_cycles = np.linspace(-0.4, 0.4, 41)
    spectrum = np.exp(-2j * np.pi * band_cycles * 0.3).astype(np.complex64)
    refined = _newton_peak(spectrum, 0.2, band_cycles)
    assert refined == pytest.approx(0.3, abs=1e-5)
