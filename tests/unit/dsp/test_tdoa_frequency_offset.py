"""tdoa_lag with a relative carrier offset between the receivers (cross-ambiguity search)."""

import numpy as np
import numpy.typing as npt
import pytest
import scipy.fft

from heimdall.dsp.signals import complex_white_noise, fractional_delay, make_capture, tone
from heimdall.dsp.tdoa import (
    MAX_SERIES_DRIFT_SAMPLES,
    MIN_TDOA_QUALITY_DB,
    PreparedCapture,
    capture_start_time_ns,
    cross_ambiguity_peak,
    resample_to_rate,
    tdoa_lag,
)
from heimdall.dsp.tdoa.carrier import lag_block_sums, shift_frequency

from .conftest import SAMPLE_RATE_HZ

EPOCH_NS = 1_795_869_040_515_962_082  # a real GPS-era instant: float64 resolves only 256 ns
TONE_COUNT = 120


def multitone(
    times_s: npt.NDArray[np.float64], frequency_shift_hz: float, seed: int
) -> npt.NDArray[np.complex64]:
    """A broadband test signal defined at any instant: many random tones within +-4 kHz.

    Evaluating it at each receiver's own sample instants gives an exact
    fractional delay, sample rate and carrier offset, with no interpolation.
    """
    rng = np.random.default_rng(seed)
    frequencies_hz = rng.uniform(-4_000.0, 4_000.0, TONE_COUNT) + frequency_shift_hz
    phases_rad = rng.uniform(0, 2 * np.pi, TONE_COUNT)
    signal = np.zeros(len(times_s), dtype=np.complex128)
    for frequency_hz, phase_rad in zip(frequencies_hz, phases_rad, strict=True):
        signal += np.exp(1j * (2 * np.pi * frequency_hz * times_s + phase_rad))
    return (signal / np.sqrt(TONE_COUNT)).astype(np.complex64)


def with_noise(
    samples: npt.NDArray[np.complex64], snr_db: float, rng: np.random.Generator
) -> npt.NDArray[np.complex64]:
    return samples + complex_white_noise(10 ** (-snr_db / 10), len(samples), rng)


@pytest.mark.parametrize("delay_samples", [0.1, 2.37, 7.5, 20.0, -6.6])
@pytest.mark.parametrize("offset_hz", [0.0, 7.3, -23.1])
def test_delay_and_offset_are_found_at_20_db(delay_samples: float, offset_hz: float) -> None:
    rng = np.random.default_rng(abs(round(delay_samples * 100 + offset_hz * 10)))
    times_s = np.arange(24_000) / SAMPLE_RATE_HZ
    seed = 40 + round(delay_samples)
    a = with_noise(multitone(times_s, 0.0, seed), 20.0, rng)
    b = with_noise(multitone(times_s - delay_samples / SAMPLE_RATE_HZ, offset_hz, seed), 20.0, rng)
    result = tdoa_lag(
        make_capture(a, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
        make_capture(b, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
        max_lag_s=25 / SAMPLE_RATE_HZ,
    )
    assert result.lag_s * SAMPLE_RATE_HZ == pytest.approx(delay_samples, abs=0.05)
    assert result.frequency_offset_hz == pytest.approx(offset_hz, abs=0.5)
    assert result.is_reliable


def test_prepared_reference_gives_the_same_lags_and_reuses_its_cut() -> None:
    # One reference against three partners (the service's N-1 pairs): preparing it must
    # change nothing in the results, and every pair over the same span shares one cut.
    rng = np.random.default_rng(12)
    times_s = np.arange(24_000) / SAMPLE_RATE_HZ
    reference = make_capture(
        with_noise(multitone(times_s, 0.0, seed=8), 20.0, rng),
        SAMPLE_RATE_HZ,
        start_time_ns=EPOCH_NS,
    )
    prepared = PreparedCapture(reference)
    for delay_samples, offset_hz in [(1.7, 4.0), (-3.2, -11.0), (5.05, 19.5)]:
        partner = make_capture(
            with_noise(
                multitone(times_s - delay_samples / SAMPLE_RATE_HZ, offset_hz, seed=8), 20.0, rng
            ),
            SAMPLE_RATE_HZ,
            start_time_ns=EPOCH_NS,
        )
        plain = tdoa_lag(reference, partner, max_lag_s=10 / SAMPLE_RATE_HZ)
        reused = tdoa_lag(prepared, partner, max_lag_s=10 / SAMPLE_RATE_HZ)
        assert reused == plain
        assert reused.lag_s * SAMPLE_RATE_HZ == pytest.approx(delay_samples, abs=0.05)
    assert len(prepared._cuts) == 1


@pytest.mark.parametrize(
    ("rate_ppm", "offset_hz", "delay_samples"), [(30.0, 12.4, 3.3), (-45.0, -27.0, -1.8)]
)
def test_different_sample_rates_and_offset(
    rate_ppm: float, offset_hz: float, delay_samples: float
) -> None:
    # b samples at its own GPS-corrected rate, starts 1.234567 ms after a, hears
    # the signal delay_samples later and offset_hz higher.
    rng = np.random.default_rng(77)
    rate_b_hz = SAMPLE_RATE_HZ * (1 + rate_ppm * 1e-6)
    start_b_ns = EPOCH_NS + 1_234_567
    times_a_s = np.arange(60_000) / SAMPLE_RATE_HZ
    times_b_s = (start_b_ns - EPOCH_NS) / 1e9 + np.arange(60_000) / rate_b_hz
    delay_s = delay_samples / SAMPLE_RATE_HZ
    a = with_noise(multitone(times_a_s, 0.0, seed=5), 20.0, rng)
    b = with_noise(multitone(times_b_s - delay_s, offset_hz, seed=5), 20.0, rng)
    result = tdoa_lag(
        make_capture(a, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
        make_capture(b, rate_b_hz, start_time_ns=start_b_ns),
        max_lag_s=1e-3,
    )
    assert result.lag_s == pytest.approx(delay_s, abs=0.05 / SAMPLE_RATE_HZ)
    # On a's time base b's tones are offset_hz above a's (the rate does not move them).
    assert result.frequency_offset_hz == pytest.approx(offset_hz, abs=0.5)
    assert result.is_reliable


def test_carrier_with_an_offset_is_a_low_quality_lag() -> None:
    # After the offset is removed a carrier correlates equally at every lag.
    rng = np.random.default_rng(8)
    x = tone(300.0, SAMPLE_RATE_HZ, 24_000) + complex_white_noise(0.01, 24_000, rng)
    y = tone(318.6, SAMPLE_RATE_HZ, 24_000, phase_rad=2.0) + complex_white_noise(0.01, 24_000, rng)
    result = tdoa_lag(
        make_capture(x, SAMPLE_RATE_HZ), make_capture(y, SAMPLE_RATE_HZ), max_lag_s=1e-3
    )
    assert result.frequency_offset_hz == pytest.approx(18.6, abs=0.5)
    assert result.quality_db < MIN_TDOA_QUALITY_DB
    assert not result.is_reliable


def test_strong_carrier_across_sample_rates_is_no_lag() -> None:
    # A 50 dB carrier, two receivers with their own LO offsets and GPS-corrected rates
    # 30 ppm apart, correlated the service's way (prepared reference): what is left
    # after the carrier is taken out must not look like a lag.
    rng = np.random.default_rng(21)
    count = 47 * 512
    rate_b_hz = SAMPLE_RATE_HZ * (1 + 30e-6)
    x = tone(12.0, SAMPLE_RATE_HZ, count) + complex_white_noise(1e-5, count, rng)
    times_b_s = np.arange(count) / rate_b_hz
    y = np.exp(2j * np.pi * (29.3 * times_b_s + 0.7)).astype(np.complex64)
    y += complex_white_noise(1e-5, count, rng)
    prepared = PreparedCapture(make_capture(x, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS))
    result = tdoa_lag(prepared, make_capture(y, rate_b_hz, start_time_ns=EPOCH_NS), max_lag_s=1e-3)
    assert result.frequency_offset_hz == pytest.approx(17.3, abs=0.05)
    assert result.quality_db < MIN_TDOA_QUALITY_DB
    assert result.peak_correlation < 0.05


def test_lag_is_exact_to_nanoseconds_at_real_utc_epochs() -> None:
    # Start times ~1.8e18 ns are not representable in float64 to better than
    # 256 ns; the lag must still be exact (noise-free: within 20 ns).
    delay_s = 1.3e-4
    for start_offset_ns in (1_999_872, 3_000_131, 700_077):
        start_b_ns = EPOCH_NS + start_offset_ns
        times_b_s = start_offset_ns / 1e9 + np.arange(24_000) / SAMPLE_RATE_HZ
        a = multitone(np.arange(24_000) / SAMPLE_RATE_HZ, 0.0, seed=9)
        b = multitone(times_b_s - delay_s, 0.0, seed=9)
        result = tdoa_lag(
            make_capture(a, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
            make_capture(b, SAMPLE_RATE_HZ, start_time_ns=start_b_ns),
            max_lag_s=1e-3,
        )
        assert result.lag_s == pytest.approx(delay_s, abs=20e-9), start_offset_ns


@pytest.mark.parametrize("rate_ppm", [20.0, -35.0, 43.0, 80.0])
def test_lag_across_sample_rates_is_exact_to_nanoseconds(rate_ppm: float) -> None:
    # A 2 s window (47 blocks of 512): 20-80 ppm drift b by 0.5-1.9
    # samples across it, which the drift series inside the correlation bridges (the last
    # is its limit).
    count = 47 * 512
    rate_b_hz = SAMPLE_RATE_HZ * (1 + rate_ppm * 1e-6)
    assert abs(rate_ppm) * 1e-6 * count / 2 <= MAX_SERIES_DRIFT_SAMPLES
    delay_s = -2.1e-4
    start_offset_ns = 1_234_567
    a = multitone(np.arange(count) / SAMPLE_RATE_HZ, 0.0, seed=11)
    b = multitone(start_offset_ns / 1e9 + np.arange(count) / rate_b_hz - delay_s, 0.0, seed=11)
    result = tdoa_lag(
        make_capture(a, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
        make_capture(b, rate_b_hz, start_time_ns=EPOCH_NS + start_offset_ns),
        max_lag_s=1e-3,
    )
    assert result.lag_s == pytest.approx(delay_s, abs=20e-9)


@pytest.mark.parametrize("rate_ppm", [150.0, -400.0])
def test_lag_across_far_apart_sample_rates_resamples_first(rate_ppm: float) -> None:
    # Beyond a sample of drift the series would need too many terms: b is resampled.
    count = 47 * 512
    rate_b_hz = SAMPLE_RATE_HZ * (1 + rate_ppm * 1e-6)
    assert abs(rate_ppm) * 1e-6 * count / 2 > MAX_SERIES_DRIFT_SAMPLES
    delay_s = 1.7e-4
    a = multitone(np.arange(count) / SAMPLE_RATE_HZ, 0.0, seed=13)
    b = multitone(np.arange(count) / rate_b_hz - delay_s, 0.0, seed=13)
    result = tdoa_lag(
        make_capture(a, SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
        make_capture(b, rate_b_hz, start_time_ns=EPOCH_NS),
        max_lag_s=1e-3,
    )
    assert result.lag_s == pytest.approx(delay_s, abs=20e-9)


@pytest.mark.parametrize("rate_ppm", [-43.0, 20.0, 150.0, -400.0])
def test_resampling_matches_the_signal_at_the_new_instants(rate_ppm: float) -> None:
    # Small drifts take the Taylor series, large ones the chirp-z transform.
    to_rate_hz = SAMPLE_RATE_HZ * (1 + rate_ppm * 1e-6)
    samples = multitone(np.arange(24_064) / SAMPLE_RATE_HZ, 0.0, seed=12)
    resampled = resample_to_rate(samples, SAMPLE_RATE_HZ, to_rate_hz)
    expected = multitone(np.arange(len(resampled)) / to_rate_hz, 0.0, seed=12)
    assert len(resampled) == int(24_064 * to_rate_hz / SAMPLE_RATE_HZ)
    # The periodic interpolant rings only near the ends of the record.
    interior = slice(1_000, -1_000)
    assert np.max(np.abs(resampled[interior] - expected[interior])) < 2e-3


def test_capture_start_time_keeps_nanoseconds() -> None:
    rng = np.random.default_rng(3)
    for offset_ns in rng.integers(0, 10**9, 20):
        start_ns = EPOCH_NS + int(offset_ns)
        capture = make_capture(np.zeros(5_000, np.complex64), 12_001.135, start_time_ns=start_ns)
        assert capture_start_time_ns(capture, reference_ns=EPOCH_NS) == pytest.approx(
            int(offset_ns), abs=1.0
        )


def test_ambiguity_search_rejects_bad_arguments() -> None:
    x = np.ones(1_000, np.complex64)
    with pytest.raises(ValueError, match="below half the sample rate"):
        cross_ambiguity_peak(x, x, SAMPLE_RATE_HZ, 5, max_frequency_offset_hz=7_000.0)
    with pytest.raises(ValueError, match="must be positive"):
        cross_ambiguity_peak(x, x, SAMPLE_RATE_HZ, 5, max_frequency_offset_hz=0.0)
    with pytest.raises(ValueError, match="too short"):
        cross_ambiguity_peak(x[:40], x[:40], SAMPLE_RATE_HZ, 5)


@pytest.mark.parametrize("decimation", [1, 3, 4, 30, 64, 65, 250])
def test_lag_block_sums_round_as_one_lag_at_a_time(decimation: int) -> None:
    """The column-wise block sums add in numpy's pairwise order: bit for bit the per-lag
    ``sum(axis=1)`` the search used (a rounding difference moves a lag by ~1e-4 sample)."""
    rng = np.random.default_rng(decimation)
    x = complex_white_noise(1.0, 20_011, rng)
    y = complex_white_noise(1.0, 20_014, rng)[3:]  # a view starting off the allocation
    max_lag = 7
    block_count = (len(x) - 2 * max_lag) // decimation
    used = block_count * decimation
    x_conj = np.conj(x[max_lag : max_lag + used])
    expected = np.stack(
        [
            (x_conj * y[max_lag + lag : max_lag + lag + used])
            .reshape(block_count, decimation)
            .sum(axis=1)
            for lag in range(-max_lag, max_lag + 1)
        ]
    )
    assert np.array_equal(lag_block_sums(x, y, max_lag, decimation, block_count), expected)


def raised_cosine_noise(
    count: int, symbol_rate_hz: float, rng: np.random.Generator
) -> npt.NDArray[np.complex64]:
    """Unit-power noise shaped like a root-raised-cosine modem's spectrum (rolloff 0.35):
    flat over +-0.325 symbol rates, falling smoothly to 0 at +-0.675. Periodic."""
    frequencies_hz = np.abs(scipy.fft.fftfreq(count, d=1.0 / SAMPLE_RATE_HZ))
    flat_hz, zero_hz = 0.325 * symbol_rate_hz, 0.675 * symbol_rate_hz
    power = np.clip((zero_hz - frequencies_hz) / (zero_hz - flat_hz), 0.0, 1.0)
    power = 0.5 - 0.5 * np.cos(np.pi * power)
    spectrum = (rng.normal(size=count) + 1j * rng.normal(size=count)) * np.sqrt(power)
    samples = scipy.fft.ifft(spectrum)
    return (samples / np.sqrt(np.mean(np.abs(samples) ** 2))).astype(np.complex64)


@pytest.mark.parametrize(("rate_ppm", "symbol_rate_hz"), [(25.0, 8_000.0), (-20.0, 4_000.0)])
def test_converter_offset_is_found_across_sample_rates_over_5_s(
    rate_ppm: float, symbol_rate_hz: float
) -> None:
    # Converters 2 kHz apart, b's clock 20-25 ppm off a's: over 5 s b walks 0.6-0.75
    # samples either side of a's centre. The coarse search must read b's spectrum as
    # recorded: walked by linear interpolation, b's band edges fade where the walk nears
    # half a sample (gain |1 - 2 u| at Nyquist), and that tilt of a smooth modem
    # spectrum pulled the offset towards 0 (742 and 1799 Hz were found), beyond the
    # +-100 Hz the cross-ambiguity search then covers.
    rng = np.random.default_rng(31)
    count = 60_000
    offset_hz = 2_000.0
    rate_b_hz = SAMPLE_RATE_HZ * (1 + rate_ppm * 1e-6)
    delay_samples = 2.5
    signal = raised_cosine_noise(count, symbol_rate_hz, rng)
    # b: the signal offset_hz higher, delay_samples later, read at b's own instants.
    heard = shift_frequency(fractional_delay(signal, delay_samples), offset_hz, SAMPLE_RATE_HZ)
    b = resample_to_rate(heard, SAMPLE_RATE_HZ, rate_b_hz)
    result = tdoa_lag(
        make_capture(with_noise(signal, 5.0, rng), SAMPLE_RATE_HZ, start_time_ns=EPOCH_NS),
        make_capture(with_noise(b, 5.0, rng), rate_b_hz, start_time_ns=EPOCH_NS),
        max_lag_s=1e-3,
        max_frequency_offset_hz=4_500.0,
    )
    assert result.frequency_offset_hz == pytest.approx(offset_hz, abs=0.5)
    assert result.lag_s * SAMPLE_RATE_HZ == pytest.approx(delay_samples, abs=0.05)
    assert result.is_reliable
