"""Issue 15 study: the ORACLE FLOOR that multipath (and GPS) put under a TDOA fix.

An oracle, not an estimator: it reads the simulator's truth (each link's tapped delay line
and fading, each receiver's GPS stamp errors, the true transmitter position and height),
which no deployment has. What it computes is the error an ideal correlator of the
signal's band over the window still leaves (noise-free, the clocks and carriers known):
a figure above issue 15's target means no estimator of that kind meets it at that window;
a figure below says how much room the service's estimator has left. Not a strict bound:
another spectral weighting of the same echoes errs differently (by as much, see
``--check``), and weights read from the data could beat per-receiver ones.

For the accuracy benchmark's own scenarios (``bench_accuracy``'s draws: the same hidden
network, realistic world and random stream, replayed without rendering; FM/wideband at
>= 10 dB, the issue's headline row):

1. **Each pair's multipath error.** The service correlates a star of N-1 pairs against the
   strongest receiver (``localization.pairs``), over the reference's central window
   (``localization.windows.central_window``). For a pair (reference a, other b) the
   expected cross-spectrum over the window is ``|S(f)|^2 e^{-j 2 pi f (d_b - d_a)} M(f)``,
   ``S`` the transmitted envelope's spectrum over the window, ``d`` the direct paths'
   delays and ``M(f) = <conj(G_a(f, t)) G_b(f, t)>_t``, ``G(f, t) = sum_k g_k(t)
   e^{-j 2 pi (f_tx + f) tau_k}`` the link's channel (``channel.link_taps`` /
   ``tap_gains``: the simulator's own taps and fading), averaged over the window with the
   envelope's power as weight. The lag error is where ``|sum_f |S(f)|^2 M(f)
   e^{j 2 pi f delta}|`` peaks (``dsp.tdoa._newton_peak``): the group delay of the
   time-averaged channel pair, weighted by the signal's spectrum. Noise is left out.
2. **Each receiver's per-capture GPS error** (a second, separate variant). The receiver's
   stamps as the simulator draws them (block jitter, GPS solution error, stale and bad
   stamps; ``physics.reported_block_times_ns``), fitted as the service fits them
   (``receivers.gps_stamps.fit_stamps``), read at the window's centre, minus the fixed
   timing bias (a calibrated deployment removes it). A capture whose stamps the fit
   rejects is left out of that variant, as the service leaves it out.
3. **The fix.** Perfect arrival-time differences (slant range / c) plus those errors, the
   transmitter's true height given, solved by nonlinear least squares in the map plane
   from the truth (``scipy.optimize.least_squares``) with the repository's residuals
   (``localization.tdoa.tdoa_normalised_residuals``) and ranges (``localization.geodesy``),
   and by one linearised step. Weights: *equal* (the star's covariance as
   ``pair_whitening`` builds it), or *receiver sigma*: each receiver's RMS error over the
   run, what a perfectly fitted calibration knows. Started at the truth, it finds the
   minimum nearest to it: never a wrong crossing.

A fourth variant adds one draw of each link's noise at its Cramer-Rao sigma (link-budget
SNR, the window's keyed samples and RMS bandwidth): not a floor, a scale for the noise.

Receivers used: GPS-timed (``has_gps``), link-budget SNR >= ``--min-snr-db`` (obstructed
and beyond-horizon links drop out), at least 3 for a fix.

``--check N`` first compares step 1, on N pairs rendered noise-free through the simulator
(multipath the only impairment), with an ideal correlator (all receivers at 12 kHz, no LO
error) and with the service's own ``tdoa_lag`` (the receivers' real clocks and LOs).
``--located N`` also prints the floor over its best and its worst N fixes (the benchmark
takes its percentiles over the fixes it locates). ``--against-service N`` renders the
first N chosen scenarios as the benchmark does (its known sessions and fitted calibration
too), locates them with the service at 3 s and sets its fixes and pairs beside the
floor's, also at the height ``localize`` assumes and with the fitted clock offsets' errors
(~5 min for 120).

Run: PYTHONPATH=src python benchmarks/study_multipath_floor.py [--scenarios 640] [--seed 1]
[--windows 2 3 4 5] [--check 30] [--located 326] [--against-service 120] (~5 min for
640 at four windows).
Prints Markdown; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import numpy.typing as npt
import scipy.fft
from bench_accuracy import (
    BenchScenario,
    calibrations_for,
    hidden_network,
    known_session_cases,
    known_sessions,
    make_scenarios,
)
from scipy.optimize import least_squares
from scipy.stats import binom

from heimdall.core.constants import NS_PER_S, SPEED_OF_LIGHT_M_PER_S
from heimdall.dsp.signals import make_capture
from heimdall.dsp.tdoa import _newton_peak, tdoa_lag
from heimdall.localization import localize
from heimdall.localization.geodesy import LocalFrame, slant_ranges_m
from heimdall.localization.pairs import UNUSABLE_SIGMA_S
from heimdall.localization.tdoa import pair_whitening, tdoa_normalised_residuals
from heimdall.localization.windows import central_window
from heimdall.receivers.capture import IQCapture
from heimdall.receivers.gps_stamps import fit_stamps
from heimdall.simulator import channel
from heimdall.simulator.impairments import ImpairmentKind, ablated, realistic_world
from heimdall.simulator.physics import (
    SAMPLES_PER_BLOCK,
    announced_sample_rate_hz,
    block_times_ns,
    gps_status_of_blocks,
    link_budget,
    render_receiver_iq,
    reported_block_times_ns,
    stable_id_hash,
)
from heimdall.simulator.scenario import ReceiverSettings, Scenario, load_scenario
from heimdall.simulator.waveforms import transmitted_baseband
from heimdall.training.evaluation import error_m
from heimdall.training.simulated import (
    CAPTURE_S,
    MAX_START_SKEW_S,
    pipeline_observations,
    receivers_of,
)

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

#: The envelope's power spectrum is summed into this many bands before it weights the
#: channel (the channel's response varies over ~1 / 20 us = 50 kHz, the bands are 47 Hz).
SPECTRUM_BANDS = 256
#: Carrier lines the service notches out of the cross-spectrum (``dsp.tdoa.carrier``).
CARRIER_NOTCH_HZ = 30.0
#: Not a floor: one draw of each link's noise at its Cramer-Rao sigma on top, for scale.
NOISY = "multipath + GPS + noise draw"
VARIANTS = ("multipath", "GPS", "multipath + GPS", NOISY)


@dataclass
class Link:
    """One GPS-timed receiver of a scenario, with what the oracle needs of it."""

    settings: ReceiverSettings
    snr_db: float
    delay_s: float  # the direct path's (slant range / c)
    start_ns: int  # true start of its 5 s capture
    taps: tuple[channel.Tap, ...]


def replayed_cases(
    count: int, seed: int, known: int
) -> tuple[list[BenchScenario], list[FloatArray]]:
    """``bench_accuracy.run``'s realistic scenarios and each receiver's start skew.

    The benchmark's random stream, drawn in the same order without rendering: the hidden
    network, the known sessions' scenarios and their 7 start skews each
    (``training.simulated.recorded_session``), the scenarios, then their skews.
    """
    rng = np.random.default_rng(seed)
    network = hidden_network(load_scenario(), rng)
    network = realistic_world(network, np.random.default_rng([seed, 15]))
    known_session_cases(network, known, rng)
    for _ in range(known):
        rng.uniform(0.0, MAX_START_SKEW_S, len(network.receivers))
    cases = make_scenarios(network, count, rng)
    skews = [
        np.array([rng.uniform(0.0, MAX_START_SKEW_S) for _ in network.receivers]) for _ in cases
    ]
    return cases, skews


def capture_blocks(sample_rate_hz: float) -> int:
    return int(np.ceil(CAPTURE_S * sample_rate_hz / SAMPLES_PER_BLOCK))


def stamp_capture(scenario: Scenario, link: Link) -> IQCapture:
    """A sample-less capture carrying the receiver's stamps, as ``fit_stamps`` reads them."""
    settings = link.settings
    blocks = capture_blocks(settings.sample_rate_hz)
    true_ns = block_times_ns(link.start_ns, blocks, settings.sample_rate_hz)
    capture = make_capture(
        np.zeros(blocks * SAMPLES_PER_BLOCK, np.complex64),
        announced_sample_rate_hz(settings),
        start_time_ns=link.start_ns,
    )
    return replace(
        capture,
        block_time_ns=reported_block_times_ns(scenario, settings, true_ns),
        block_gps_status=gps_status_of_blocks(scenario, settings, true_ns),
    )


def gps_error_s(scenario: Scenario, link: Link, centre_ns: float) -> float | None:
    """The fitted clock's error at ``centre_ns`` minus the fixed bias; None if unusable."""
    capture = stamp_capture(scenario, link)
    fit = fit_stamps(capture)
    if not fit.usable or fit.sample_rate_hz is None or fit.first_sample_ns is None:
        return None
    true_rate_hz = link.settings.sample_rate_hz
    index = (centre_ns - link.start_ns) * true_rate_hz / NS_PER_S
    fitted_ns = (
        int(capture.block_time_ns[0]) + fit.first_sample_ns + index * NS_PER_S / fit.sample_rate_hz
    )
    true_ns = link.start_ns + index * NS_PER_S / true_rate_hz
    return float(fitted_ns - true_ns - link.settings.timing_bias_ns) * 1e-9


def link_of(case: BenchScenario, settings: ReceiverSettings, skew_s: float) -> Link:
    scenario = case.scenario
    transmitter = scenario.transmitter
    position = (transmitter.latitude, transmitter.longitude, transmitter.altitude_m)
    budget = link_budget(scenario, settings)
    multipath = settings.impairments.multipath
    taps = (
        channel.link_taps(scenario.seed, stable_id_hash(settings.id), position, multipath)
        if multipath.echoes
        else (channel.Tap(0.0, 1.0, 1 + 0j, 0.0, (), ()),)
    )
    start_ns = case.start_time_ns + int(skew_s * NS_PER_S)
    return Link(settings, budget.snr_db, budget.delay_s, start_ns, taps)


def links_of(case: BenchScenario, skews_s: FloatArray, min_snr_db: float) -> list[Link]:
    """The scenario's GPS-timed links at or above ``min_snr_db``, strongest first."""
    links = [
        link_of(case, settings, float(skew_s))
        for settings, skew_s in zip(case.scenario.receivers, skews_s, strict=True)
    ]
    links = [link for link in links if link.settings.has_gps and link.snr_db >= min_snr_db]
    return sorted(links, key=lambda link: link.snr_db, reverse=True)


def reference_window(reference: Link, window_s: float) -> tuple[int, int]:
    """True start (ns) and sample count of the reference's central window."""
    rate_hz = reference.settings.sample_rate_hz
    blocks = capture_blocks(rate_hz)
    capture = make_capture(
        np.zeros(blocks * SAMPLES_PER_BLOCK, np.complex64),
        rate_hz,
        start_time_ns=reference.start_ns,
    )
    window = central_window(capture, window_s)
    return int(window.block_time_ns[0]), len(window.samples)


def channel_rows(
    link: Link, f_tx_hz: float, band_hz: FloatArray, start_ns: int, offsets_s: FloatArray
) -> tuple[ComplexArray, ComplexArray]:
    """Each tap's gain over the window ``(taps, samples)`` and response ``(taps, bands)``."""
    taps = link.taps
    if taps[0].doppler_hz:
        gains = channel.tap_gains(taps, start_ns, offsets_s)
    else:
        gains = np.ones((1, len(offsets_s)), dtype=np.complex128)
    delays_s = np.array([tap.delay_s for tap in taps])
    response = np.exp(-2j * np.pi * np.outer(delays_s, f_tx_hz + band_hz))
    return gains, response


def envelope_weights(
    scenario: Scenario, start_ns: int, count: int, rate_hz: float
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """The envelope's power over time (sums to 1), its band powers, band centres (Hz) and
    the share of the window it is keyed (its mean power: unit power while keyed)."""
    offsets_s = np.arange(count) / rate_hz
    envelope = transmitted_baseband(scenario.transmitter, scenario.seed, start_ns, offsets_s)
    power_t = np.abs(envelope) ** 2
    spectrum = np.abs(scipy.fft.fft(envelope)) ** 2
    frequencies_hz = scipy.fft.fftfreq(count, 1.0 / rate_hz)
    spectrum[np.abs(frequencies_hz) < CARRIER_NOTCH_HZ] = 0.0
    edges = np.linspace(-rate_hz / 2, rate_hz / 2, SPECTRUM_BANDS + 1)
    band = np.clip(np.digitize(frequencies_hz, edges) - 1, 0, SPECTRUM_BANDS - 1)
    band_power = np.bincount(band, weights=spectrum, minlength=SPECTRUM_BANDS).astype(np.float64)
    weights_t = np.asarray(power_t / power_t.sum(), dtype=np.float64)
    return weights_t, band_power, 0.5 * (edges[1:] + edges[:-1]), float(power_t.mean())


def _peak_s(spectrum: ComplexArray, band_hz: FloatArray, rate_hz: float) -> float:
    """Where ``|sum_f spectrum(f) e^{j 2 pi f delta}|`` peaks near 0, seconds."""
    lag = _newton_peak(spectrum, 0.0, band_hz / rate_hz)
    if lag is None:  # not concave on Newton's way: a fine grid over +-1 sample
        grid = np.linspace(-1.0, 1.0, 4001)
        values = np.abs(np.exp(2j * np.pi * np.outer(grid, band_hz / rate_hz)) @ spectrum)
        lag = float(grid[int(np.argmax(values))])
    return lag / rate_hz


def multipath_errors_s(
    scenario: Scenario, links: list[Link], window_s: float
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """The multipath lag error of each other link against the reference (``links[0]``),
    each link's own (against an echo-free link), each link's arrival-time sigma in its
    noise (Cramer-Rao, as ``bench_accuracy.pipeline_bound``: ``1 / (2 pi B_rms
    sqrt(2 N SNR))``, N the keyed samples), seconds, and the window's centre (ns)."""
    reference = links[0]
    rate_hz = reference.settings.sample_rate_hz
    start_ns, count = reference_window(reference, window_s)
    weights_t, band_power, band_hz, keyed_share = envelope_weights(
        scenario, start_ns, count, rate_hz
    )
    offsets_s = np.arange(count) / rate_hz
    f_tx_hz = scenario.transmitter.frequency_hz
    rows = [channel_rows(link, f_tx_hz, band_hz, start_ns, offsets_s) for link in links]
    ideal = (np.ones((1, count), dtype=np.complex128), np.ones((1, len(band_hz)), complex))

    def error_s(
        a: tuple[ComplexArray, ComplexArray], b: tuple[ComplexArray, ComplexArray]
    ) -> float:
        (gains_a, response_a), (gains_b, response_b) = a, b
        # <conj(g_a,j) g_b,k>_t with the envelope's power as weight, then per band.
        mixed = (np.conj(gains_a) * weights_t) @ gains_b.T
        cross = np.einsum("jf,jk,kf->f", np.conj(response_a), mixed, response_b)
        return _peak_s(band_power * cross, band_hz, rate_hz)

    pairs = np.array([error_s(rows[0], b) for b in rows[1:]])
    own = np.array([error_s(ideal, b) for b in rows])
    centroid_hz = np.sum(band_hz * band_power) / np.sum(band_power)
    rms_hz = np.sqrt(np.sum((band_hz - centroid_hz) ** 2 * band_power) / np.sum(band_power))
    keyed = count * keyed_share
    snrs = 10 ** (np.array([link.snr_db for link in links]) / 10)
    noise = 1.0 / (2 * np.pi * rms_hz * np.sqrt(2 * keyed * snrs))
    return pairs, own, noise, start_ns + 0.5 * count * 1e9 / rate_hz


def star_whitening(sigmas_s: FloatArray) -> FloatArray:
    """Whitening of the star's pairs (others against ``sigmas_s[0]``'s receiver) for
    independent per-receiver errors: covariance ``s_0^2 + diag(s_i^2)``. With equal
    sigmas it is ``localization.tdoa.pair_whitening``'s (checked in ``fix_errors_m``)."""
    sigmas_m = SPEED_OF_LIGHT_M_PER_S * np.asarray(sigmas_s, dtype=np.float64)
    covariance = sigmas_m[0] ** 2 + np.diag(sigmas_m[1:] ** 2)
    lower = np.linalg.cholesky(covariance)
    return np.asarray(np.linalg.inv(lower), dtype=np.float64)


def fix_errors_m(
    case: BenchScenario,
    links: list[Link],
    pair_errors_s: FloatArray,
    sigmas_s: FloatArray,
    assumed_altitude_m: float | None = None,
) -> tuple[float, float]:
    """Nonlinear and linearised least-squares fix errors (m) of the star with these errors
    (the transmitter's true height, or ``assumed_altitude_m``)."""
    transmitter = case.scenario.transmitter
    altitude_m = transmitter.altitude_m if assumed_altitude_m is None else assumed_altitude_m
    frame = LocalFrame(transmitter.latitude, transmitter.longitude, transmitter.altitude_m)
    positions = [link.settings.require_position() for link in links]
    east, north, up = frame.geodetic_to_enu(
        [p[0] for p in positions], [p[1] for p in positions], [p[2] for p in positions]
    )
    receivers_enu = np.column_stack([east, north, up])
    others = np.arange(1, len(links))
    first, second = others, np.zeros(len(others), dtype=np.intp)
    true_ranges = slant_ranges_m(
        frame.plane_to_enu(0.0, 0.0, transmitter.altitude_m), receivers_enu
    )
    observed_m = true_ranges[first] - true_ranges[second] + SPEED_OF_LIGHT_M_PER_S * pair_errors_s
    whitening = star_whitening(sigmas_s)
    if np.allclose(sigmas_s, sigmas_s[0]):
        pair_sigmas_m = np.full(len(others), np.sqrt(2) * SPEED_OF_LIGHT_M_PER_S * sigmas_s[0])
        repository = pair_whitening(first, second, pair_sigmas_m)
        assert np.allclose(repository.T @ repository, whitening.T @ whitening, rtol=1e-6)

    def residuals(xy: FloatArray) -> FloatArray:
        enu = frame.plane_to_enu(float(xy[0]), float(xy[1]), altitude_m)
        ranges = slant_ranges_m(enu, receivers_enu)
        return tdoa_normalised_residuals(ranges, first, second, observed_m, whitening)

    def jacobian(xy: FloatArray, step_m: float = 1.0) -> FloatArray:
        """Central differences over a metre (the default steps are too fine for PROJ)."""
        columns = []
        for axis in range(2):
            offset = np.zeros(2)
            offset[axis] = step_m
            columns.append((residuals(xy + offset) - residuals(xy - offset)) / (2 * step_m))
        return np.column_stack(columns)

    solved = least_squares(residuals, np.zeros(2), jac=jacobian, x_scale=1000.0)
    linear = -np.linalg.lstsq(jacobian(np.zeros(2)), residuals(np.zeros(2)), rcond=None)[0]
    return float(np.hypot(*solved.x)), float(np.hypot(*linear))


def median_interval(values: FloatArray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (binomial)."""
    ordered = np.sort(values)
    n = len(ordered)
    low = int(binom.ppf((1 - confidence) / 2, n, 0.5))
    high = int(binom.isf((1 - confidence) / 2, n, 0.5))
    return float(ordered[max(low - 1, 0)]), float(ordered[min(high, n - 1)])


def _ideal_lag_s(a: ComplexArray, b: ComplexArray, rate_hz: float) -> float:
    """The plain cross-correlation's peak (b behind a): no carrier or clock to find."""
    n = len(a)
    spectrum = np.conj(scipy.fft.fft(a, 2 * n)) * scipy.fft.fft(b, 2 * n)
    peak = int(np.argmax(np.abs(scipy.fft.ifft(spectrum))))
    peak = peak if peak < n else peak - 2 * n
    cycles = scipy.fft.fftfreq(2 * n)
    fraction = _newton_peak(spectrum * np.exp(2j * np.pi * cycles * peak), 0.0)
    return (peak + (fraction if fraction is not None else np.nan)) / rate_hz


def check(chosen: list[tuple[BenchScenario, FloatArray]], count: int, min_snr_db: float) -> None:
    """Step 1 against correlations of noise-free renderings, multipath the only impairment:
    an ideal correlator (every receiver sampling at 12 kHz, no LO error: nothing to find
    but the lag) and the service's ``tdoa_lag`` (the receivers' own clocks and LOs)."""
    print(f"Check of the oracle's pair errors (noise-free renderings, 3 s, {count} pairs):\n")
    print("| scenario | modulation | pair | oracle us | ideal correlator us | tdoa_lag us |")
    print("|---|---|---|---|---|---|")
    ideal_diffs: list[float] = []
    service_diffs: list[float] = []
    oracles: list[float] = []
    for case, skew in chosen:
        if len(ideal_diffs) >= count:
            break
        links = links_of(case, skew, min_snr_db)
        if len(links) < 2:
            continue
        world = ablated(case.scenario, ImpairmentKind.multipath)
        equal = world.model_copy(
            update={
                "receivers": [
                    r.model_copy(update={"sample_rate_hz": 12_000.0, "lo_error_ppm": 0.0})
                    for r in world.receivers
                ]
            }
        )
        errors = multipath_errors_s(world, links, 3.0)[0]
        start_ns, samples = reference_window(links[0], 3.0)
        reference = links[0].settings.id

        def rendered(
            scenario: Scenario, receiver_id: str, start_ns: int = start_ns, samples: int = samples
        ) -> npt.NDArray[np.complex64]:
            return render_receiver_iq(
                scenario, receiver_id, start_ns, samples, include_noise=False
            ).samples

        for link, error_s in list(zip(links[1:], errors, strict=True))[:3]:
            truth_s = link.delay_s - links[0].delay_s
            ideal_s = (
                _ideal_lag_s(
                    rendered(equal, reference).astype(np.complex128),
                    rendered(equal, link.settings.id).astype(np.complex128),
                    12_000.0,
                )
                - truth_s
            )
            captures = [
                make_capture(
                    rendered(world, r.settings.id),
                    r.settings.sample_rate_hz,
                    start_time_ns=start_ns,
                )
                for r in (links[0], link)
            ]
            service_s = tdoa_lag(captures[0], captures[1], max_lag_s=2e-3).lag_s - truth_s
            oracles.append(error_s)
            ideal_diffs.append(ideal_s - error_s)
            service_diffs.append(service_s - error_s)
            print(
                f"| {case.scenario.seed} | {case.modulation} | {link.settings.id}-{reference} "
                f"| {error_s * 1e6:+.3f} | {ideal_s * 1e6:+.3f} | {service_s * 1e6:+.3f} |"
            )
    oracle_us = np.array(oracles) * 1e6
    print(f"\nRMS pair error: oracle {np.sqrt(np.mean(oracle_us**2)):.3f} us", end="")
    for name, diffs in (("ideal correlator", ideal_diffs), ("tdoa_lag", service_diffs)):
        values_us = oracle_us + np.array(diffs) * 1e6
        print(f", {name} {np.sqrt(np.mean(values_us**2)):.3f} us", end="")
    print()
    for name, diffs in (("ideal correlator", ideal_diffs), ("tdoa_lag", service_diffs)):
        values = np.abs(np.array(diffs)) * 1e6
        print(
            f"\n|{name} - oracle|: median {np.median(values):.3f} us, "
            f"90 % {np.percentile(values, 90):.3f} us, max {values.max():.3f} us"
        )
    print()


def row(label: str, errors_m: list[tuple[float, bool]], scenarios: int) -> str:
    values = np.array([e for e, _ in errors_m]) / 1e3
    inside = np.array([e for e, i in errors_m if i]) / 1e3
    outside = np.array([e for e, i in errors_m if not i]) / 1e3
    q50, q68, q95 = np.percentile(values, [50, 68, 95])
    low, high = median_interval(values)
    hull = [
        f"{np.median(part):.2f} / {np.percentile(part, 95):.2f} ({len(part)})"
        for part in (inside, outside)
    ]
    return (
        f"| {label} | {len(values)} / {scenarios} | {q50:.2f} ({low:.2f}-{high:.2f}) | {q68:.2f} "
        f"| {q95:.2f} | {hull[0]} | {hull[1]} |"
    )


@dataclass
class Record:
    """One scenario at one window: its links and the oracle's errors (seconds)."""

    case: BenchScenario
    links: list[Link]
    multipath: FloatArray  # pair errors of the star against links[0]
    own: FloatArray  # each link's against an echo-free link
    gps: list[float | None]  # per link; None: its stamps are unusable
    timed_multipath: FloatArray  # pair errors of the star of the links with usable stamps
    noise_sigma: FloatArray  # per link, its Cramer-Rao arrival sigma
    noise: FloatArray  # per link, one draw of it


def rms_by_receiver(records: list[Record], kind: str) -> dict[str, float]:
    """Each receiver's RMS error over the records: what a perfect calibration fit knows."""
    values: dict[str, list[float]] = {}
    for record in records:
        errors = record.own if kind == "multipath" else record.gps
        for link, error in zip(record.links, errors, strict=True):
            if error is not None:
                values.setdefault(link.settings.id, []).append(float(error))
    return {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in values.items()}


WEIGHTS = ("equal", "receiver sigma")


class _Skews:
    """Stands in for the benchmark's generator where ``recorded_session`` draws the
    receivers' start skews: hands out the replayed ones, in order."""

    def __init__(self, skews_s: FloatArray) -> None:
        self._skews = iter(skews_s.tolist())

    def uniform(self, low: float, high: float) -> float:
        return float(next(self._skews))


def against_service(
    arguments: argparse.Namespace,
    chosen: list[tuple[BenchScenario, FloatArray]],
    records: list[Record],
    sigmas_s: dict[str, float],
) -> None:
    """The service's fixes and pairs (fitted calibration, ``--against-service`` of the
    chosen scenarios, rendered as ``bench_accuracy`` renders them) beside the floor's.

    Beside the floor (multipath + GPS, receiver sigma, true height) it solves the floor
    again at the height ``localize`` assumes (the median of the receivers used) and with
    the fitted calibration's clock-offset errors added (what the fit leaves of the biases).
    Each usable pair of the service is set against the oracle's error for that pair.
    """
    rng = np.random.default_rng(arguments.seed)
    network = realistic_world(
        hidden_network(load_scenario(), rng), np.random.default_rng([arguments.seed, 15])
    )
    started_s = time.perf_counter()
    sessions = known_sessions(network, arguments.known_sessions, rng)
    fitted = calibrations_for(network, sessions)[0]["fitted"]
    receivers = receivers_of(network)
    by_seed = {r.case.scenario.seed: r for r in records}
    biases_s = {r.id: r.timing_bias_ns * 1e-9 for r in network.receivers}
    offset_errors_s = {k: fitted.clock_offset_s(k) - v for k, v in biases_s.items()}
    columns = ("service", "floor", "floor, assumed height", "floor + fitted offsets")
    rows: list[tuple[BenchScenario, dict[str, float]]] = []
    pair_rows = []
    for case, skew in chosen[: arguments.against_service]:
        observations = pipeline_observations(
            case.scenario,
            case.start_time_ns,
            cast(np.random.Generator, _Skews(skew)),
            window_s=3.0,
        )
        result = localize(
            receivers,
            observations.powers,
            observations.pairs,
            fitted,
            method="tdoa",
            not_heard=observations.not_heard
            if all(p.unit == "dBm" for p in observations.powers)
            else [],
        )
        errors_m: dict[str, float] = {}
        if result.status == "ok" and result.latitude is not None:
            errors_m["service"] = error_m(result, case.latitude, case.longitude)
        # Each usable pair of the service against the oracle's error for that very pair.
        all_links = {
            settings.id: link_of(case, settings, float(k))
            for settings, k in zip(case.scenario.receivers, skew, strict=True)
        }
        for pair in observations.pairs:
            if pair.sigma_s >= UNUSABLE_SIGMA_S:
                continue
            other, partner = all_links[pair.receiver_i], all_links[pair.receiver_j]
            multipath, _, _, centre_ns = multipath_errors_s(case.scenario, [partner, other], 3.0)
            gps = [gps_error_s(case.scenario, link, centre_ns) for link in (other, partner)]
            if gps[0] is None or gps[1] is None:
                continue
            truth_s = other.delay_s - partner.delay_s
            truth_s += biases_s[other.settings.id] - biases_s[partner.settings.id]
            service_s = pair.time_difference_s - truth_s
            oracle_s = float(multipath[0]) + gps[0] - gps[1]
            offsets_s = offset_errors_s[other.settings.id] - offset_errors_s[partner.settings.id]
            weaker_db = min(other.snr_db, partner.snr_db)
            pair_rows.append((service_s, oracle_s, weaker_db, offsets_s))
        record = by_seed.get(case.scenario.seed)
        usable = [k for k, g in enumerate(record.gps) if g is not None] if record else []
        if record is not None and len(usable) >= 3:
            timed = [record.links[k] for k in usable]
            gps_s = np.array([record.gps[k] for k in usable], dtype=np.float64)
            errors = gps_s[1:] - gps_s[0] + record.timed_multipath
            weights = np.array([sigmas_s[link.settings.id] for link in timed])
            height_m = float(np.median([link.settings.require_position()[2] for link in timed]))
            offsets = np.array([offset_errors_s[link.settings.id] for link in timed])
            errors_m["floor"] = fix_errors_m(case, timed, errors, weights)[0]
            errors_m["floor, assumed height"] = fix_errors_m(
                case, timed, errors, weights, height_m
            )[0]
            errors_m["floor + fitted offsets"] = fix_errors_m(
                case, timed, errors + offsets[1:] - offsets[0], weights
            )[0]
        rows.append((case, errors_m))
    both = [(c, e) for c, e in rows if all(k in e for k in columns)]
    print(
        f"\nThe service beside the floor (3 s, fitted calibration; the first {len(rows)} of the "
        f"chosen scenarios, {len(both)} located by both; {time.perf_counter() - started_s:.0f} s)."
        " Median / 95 % km:\n"
    )
    print("| subset | fixes | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    subsets = (("all", None), ("inside hull", True), ("outside hull", False))
    for label, inside in subsets:
        part = [e for c, e in both if inside is None or c.inside_hull == inside]
        if part:
            cells = []
            for column in columns:
                values = np.array([e[column] for e in part]) / 1e3
                cells.append(f"{np.median(values):.2f} / {np.percentile(values, 95):.2f}")
            print(f"| {label} | {len(part)} | " + " | ".join(cells) + " |")
    print("\nWhere the service errs most beyond the floor (km):\n")
    print("| scenario | hull | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for c, e in sorted(both, key=lambda r: r[1]["service"] - r[1]["floor"], reverse=True)[:10]:
        hull = "in" if c.inside_hull else "out"
        cells = [f"{e[column] / 1e3:.2f}" for column in columns]
        print(f"| {c.scenario.seed} | {hull} | " + " | ".join(cells) + " |")
    table = np.array(pair_rows) * [1e6, 1e6, 1.0, 1e6]
    service_us, oracle_us, weaker_db, offsets_us = table.T
    excess_us = service_us - oracle_us
    print(
        f"\nThe service's usable pairs ({len(table)}), raw lags against light time and the true "
        f"biases: error RMS {np.sqrt(np.mean(service_us**2)):.2f} us; the oracle's (multipath + "
        f"GPS) for the same pairs {np.sqrt(np.mean(oracle_us**2)):.2f} us; the fitted clock "
        f"offsets' error on these pairs, RMS {np.sqrt(np.mean(offsets_us**2)):.2f} us.\n"
    )
    print("| weaker link SNR | pairs | service - oracle: median abs / RMS us |")
    print("|---|---|---|")
    for low, high in ((-99.0, 0.0), (0.0, 10.0), (10.0, 20.0), (20.0, 99.0)):
        mask = (weaker_db >= low) & (weaker_db < high)
        if mask.any():
            print(
                f"| {low:g} to {high:g} dB | {int(mask.sum())} "
                f"| {np.median(np.abs(excess_us[mask])):.2f} "
                f"/ {np.sqrt(np.mean(excess_us[mask] ** 2)):.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=640, help="bench_accuracy's count")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--known-sessions", type=int, default=40, help="as bench_accuracy")
    parser.add_argument("--windows", type=float, nargs="+", default=[2.0, 3.0, 4.0, 5.0])
    parser.add_argument("--min-snr-db", type=float, default=-10.0, help="link SNR to be used")
    parser.add_argument("--check", type=int, default=0, help="pairs to check against correlations")
    parser.add_argument(
        "--against-service",
        type=int,
        default=0,
        help="render this many of the chosen scenarios as bench_accuracy does and set the "
        "service's fixes and pairs (3 s, fitted calibration) beside the floor's",
    )
    parser.add_argument(
        "--located",
        type=int,
        default=0,
        help="fixes the benchmark located in this row: the floor's median over that many of "
        "its best and of its worst fixes is printed (the benchmark drops the others)",
    )
    arguments = parser.parse_args()
    started_s = time.perf_counter()
    cases, skews = replayed_cases(arguments.scenarios, arguments.seed, arguments.known_sessions)
    chosen = [
        (case, skew)
        for case, skew in zip(cases, skews, strict=True)
        if case.modulation != "carrier" and case.snr_db >= 10.0
    ]
    if arguments.check:
        check(chosen, arguments.check, arguments.min_snr_db)
    records: dict[float, list[Record]] = {w: [] for w in arguments.windows}
    for case, skew in chosen:
        links = links_of(case, skew, arguments.min_snr_db)
        if len(links) < 3:
            continue
        for window_s in arguments.windows:
            multipath, own, noise_sigma, centre_ns = multipath_errors_s(
                case.scenario, links, window_s
            )
            draws = np.random.default_rng(
                [arguments.seed, case.scenario.seed, round(10 * window_s)]
            )
            noise = noise_sigma * draws.standard_normal(len(links))
            gps = [gps_error_s(case.scenario, link, centre_ns) for link in links]
            timed = [link for link, g in zip(links, gps, strict=True) if g is not None]
            if len(timed) >= 2 and timed[0] is links[0]:
                positions = [links.index(link) - 1 for link in timed[1:]]
                timed_multipath = multipath[positions]
            elif len(timed) >= 2:  # the reference's stamps unusable: another star
                timed_multipath = multipath_errors_s(case.scenario, timed, window_s)[0]
            else:
                timed_multipath = np.zeros(0)
            records[window_s].append(
                Record(case, links, multipath, own, gps, timed_multipath, noise_sigma, noise)
            )
    results: dict[tuple[float, str, str], list[tuple[float, bool]]] = {}
    linear: dict[tuple[float, str, str], list[float]] = {}
    sigma_text = []
    for window_s, group in records.items():
        sigma_mp = rms_by_receiver(group, "multipath")
        sigma_gps = rms_by_receiver(group, "gps")
        sigma_text.append(
            f"- {window_s:g} s, each receiver's RMS multipath / GPS error (us): "
            + ", ".join(
                f"{k} {sigma_mp[k] * 1e6:.2f} / {sigma_gps.get(k, float('nan')) * 1e6:.2f}"
                for k in sorted(sigma_mp)
            )
        )
        for record in group:
            usable = [k for k, g in enumerate(record.gps) if g is not None]
            timed = [record.links[k] for k in usable]
            gps_s = np.array([record.gps[k] for k in usable], dtype=np.float64)
            noise_s, noise_sigma = record.noise[usable], record.noise_sigma[usable]
            for variant in VARIANTS:
                if variant == "multipath":
                    used, errors = record.links, record.multipath
                elif len(timed) < 3:
                    continue
                else:
                    used, errors = timed, gps_s[1:] - gps_s[0]
                    if variant != "GPS":
                        errors = errors + record.timed_multipath
                    if variant == NOISY:
                        errors = errors + noise_s[1:] - noise_s[0]
                ids = [link.settings.id for link in used]
                mp = np.array([sigma_mp[i] for i in ids])
                gp = np.array([sigma_gps[i] for i in ids]) if variant != "multipath" else 0 * mp
                if variant == "GPS":
                    mp = 0 * mp
                link_sigma = noise_sigma if variant == NOISY else 0 * mp
                for weights in WEIGHTS:
                    sigmas = np.sqrt(mp**2 + gp**2 + link_sigma**2)
                    if weights == "equal":
                        sigmas = np.full(len(ids), 1e-6)
                    exact_m, linear_m = fix_errors_m(record.case, used, errors, sigmas)
                    key = (window_s, variant, weights)
                    results.setdefault(key, []).append((exact_m, record.case.inside_hull))
                    linear.setdefault(key, []).append(linear_m)
    first = records[arguments.windows[0]]
    print(
        f"Oracle floor (simulator truth), realistic world, seed {arguments.seed}: "
        f"bench_accuracy's {arguments.scenarios} scenarios, {len(chosen)} FM/wideband >= 10 dB, "
        f"{len(first)} with >= 3 GPS-timed receivers at link SNR >= {arguments.min_snr_db:g} dB "
        f"(median {np.median([len(r.links) for r in first]):.0f} receivers). Star against the "
        "strongest receiver; nonlinear least squares from the truth, true height; weights equal "
        "or each receiver's RMS error over the run. Median with its 95 % order-statistic "
        "interval.\n"
    )
    print(
        "| window, errors, weights | fixes / scenarios | median km (95 % CI) | 68 % km | 95 % km "
        "| inside hull: median / 95 % km (fixes) | outside hull: median / 95 % km (fixes) "
        "| linearised median km |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for window_s in arguments.windows:
        for variant in VARIANTS:
            for weights in WEIGHTS:
                key = (window_s, variant, weights)
                if key in results:
                    label = f"{window_s:g} s, {variant}, {weights}"
                    print(
                        row(label, results[key], len(chosen))
                        + f" {np.median(linear[key]) / 1e3:.2f} |"
                    )
    print()
    for window_s, group in records.items():
        pairs = np.abs(np.concatenate([r.multipath for r in group])) * 1e6
        print(
            f"- {window_s:g} s: pair multipath |error| median {np.median(pairs):.2f} us, "
            f"68 % {np.percentile(pairs, 68):.2f}, 95 % {np.percentile(pairs, 95):.2f} "
            f"({len(pairs)} pairs)"
        )
    for window_s in arguments.windows:
        key = (window_s, "multipath + GPS", "receiver sigma")
        median_m = np.median([e for e, _ in results[key]])
        outside = [e for e, i in results[key] if not i]
        inside = [e for e, i in results[key] if i]
        print(
            f"- {window_s:g} s, multipath + GPS, receiver sigma: {sum(e < median_m for e in outside)}"
            f" of {len(outside)} outside-hull fixes below the row's median; inside-hull 75th "
            f"percentile {np.percentile(inside, 75) / 1e3:.2f} km"
        )
    if arguments.located:
        for window_s in arguments.windows:
            key = (window_s, "multipath + GPS", "receiver sigma")
            ordered = np.sort([e for e, _ in results[key]])
            n = min(arguments.located, len(ordered))
            print(
                f"- {window_s:g} s, multipath + GPS, receiver sigma, over {n} of "
                f"{len(ordered)} fixes: median {np.median(ordered[:n]) / 1e3:.2f} km (the best "
                f"{n}) to {np.median(ordered[-n:]) / 1e3:.2f} km (the worst {n}); 95 % "
                f"{np.percentile(ordered[:n], 95) / 1e3:.2f} to "
                f"{np.percentile(ordered[-n:], 95) / 1e3:.2f} km"
            )
    print("\n".join(sigma_text))
    if arguments.against_service and 3.0 in records:
        sigma_mp = rms_by_receiver(records[3.0], "multipath")
        sigma_gps = rms_by_receiver(records[3.0], "gps")
        sigmas = {k: float(np.hypot(v, sigma_gps.get(k, 0.0))) for k, v in sigma_mp.items()}
        against_service(arguments, chosen, records[3.0], sigmas)
    print(f"\n(run time {time.perf_counter() - started_s:.0f} s)")


if __name__ == "__main__":
    main()
