"""The physical model: link budget, thermal noise, propagation delay and rendered IQ.

``render_receiver_iq`` is the pure core of the simulator: scenario + receiver +
absolute start time + sample count -> the complex samples that receiver records,
and the truth behind them. The protocol server streams exactly this, and the
localization benchmarks call it directly, with no network.

Model (see docs/simulator.md for the derivation):

* received power  P_rx = EIRP - PL(d) + G_rx                       [dBm]
* noise power     N    = -174 + 10 log10(fs) + NF                  [dBm]
* received IQ     x(t) = g (A s(t - d/c) exp(j 2 pi ((f_tx - f_lo) t - f_tx d/c)) + w(t))
  with f_lo = f_tuned (1 + ppm 1e-6), A^2 = P_rx in full-scale units, w ~ CN(0, N),
  g^2 = the receiver's hidden chain gain error (``gain_offset_db``).
* digital scale   power [dBm] = 10 log10(mean |x|^2) + full_scale_dbm (the receiver's
  own when it has one, else the scenario's)
* block stamps    reported = true + timing_bias_ns + GPS jitter
* delay           d / c over the straight line (line of sight), or, with a ground wave
                  (``Propagation.ground_wave``), over the geodesic plus the ground
                  wave's excess group delay, drawn per link (``ground_wave_excess_s``)

Issue 15's impairments (``impairments.py``, evaluated in ``channel.py``) extend it per
receiver: GPS solution errors, stale and bad stamps; a tapped delay line per link; a
drifting converter LO; an announced sample rate off the true one; a second signal and
impulsive noise; obstructed links; and per scenario correlated shadowing between nearby
receivers and a 4/3-Earth radio horizon.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pyproj import Geod, Transformer

from heimdall.core.constants import (
    BOLTZMANN_DBM_PER_HZ,
    EARTH_MEAN_RADIUS_M,
    NS_PER_S,
    SPEED_OF_LIGHT_M_PER_S,
)
from heimdall.simulator import channel
from heimdall.simulator.scenario import (
    GroundWave,
    PropagationModel,
    ReceiverSettings,
    Scenario,
    Transmitter,
)
from heimdall.simulator.waveforms import transmitted_baseband

SAMPLES_PER_BLOCK = 512
# A fix is taken every few seconds: last_gps_solution counts 0..GPS_FIX_INTERVAL_S-1
# (without the GPS impairment; with it, seconds since the current solution).
GPS_FIX_INTERVAL_S = 4
GPS_STATUS_NO_GPS = 255
# A receiver without GPS timestamps blocks with its free-running host clock:
# a fixed offset per receiver drawn with this standard deviation.
NO_GPS_CLOCK_OFFSET_SIGMA_NS = 5_000_000.0

SEED_TAG_NOISE = 0x4E4F49
SEED_TAG_SHADOW = 0x534844
SEED_TAG_GPS = 0x475053
SEED_TAG_GROUND = 0x47524E

# Geodetic (lon, lat, ellipsoidal height) to Earth-centred Cartesian, both WGS84.
_TO_ECEF = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
_GEOD = Geod(ellps="WGS84")


def free_space_path_loss_db(distance_m: float, frequency_hz: float) -> float:
    """Friis free-space path loss, 20 log10(4 pi d f / c).

    Example:
        >>> round(free_space_path_loss_db(1000.0, 145e6), 2)
        75.68
    """
    return float(20.0 * np.log10(4.0 * np.pi * distance_m * frequency_hz / SPEED_OF_LIGHT_M_PER_S))


def thermal_noise_dbm(bandwidth_hz: float, noise_figure_db: float) -> float:
    """kTB + NF at 290 K.

    Example:
        >>> round(thermal_noise_dbm(12000.0, 8.0), 2)
        -125.21
    """
    return float(BOLTZMANN_DBM_PER_HZ + 10.0 * np.log10(bandwidth_hz) + noise_figure_db)


def slant_range_m(
    from_lat_lon_alt: tuple[float, float, float], to_lat_lon_alt: tuple[float, float, float]
) -> float:
    """Line-of-sight distance: the straight line between the two points (WGS84, ECEF).

    A VHF/UHF wave travels the chord, not the ground arc with the height difference on
    top; over 150 km the two differ by ~20 ns of travel time, which calibration would
    otherwise learn as clock offsets.

    Example:
        >>> round(slant_range_m((45.0, 7.0, 0.0), (45.0, 7.0, 1000.0)), 6)
        1000.0
    """
    x1, y1, z1 = _TO_ECEF.transform(from_lat_lon_alt[1], from_lat_lon_alt[0], from_lat_lon_alt[2])
    x2, y2, z2 = _TO_ECEF.transform(to_lat_lon_alt[1], to_lat_lon_alt[0], to_lat_lon_alt[2])
    return float(np.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2 + (z2 - z1) ** 2))


def surface_distance_m(
    from_lat_lon_alt: tuple[float, float, float], to_lat_lon_alt: tuple[float, float, float]
) -> float:
    """Ground-wave path: the geodesic on the WGS84 ellipsoid (heights left out).

    Example:
        >>> round(surface_distance_m((0.0, 0.0, 0.0), (0.0, 1.0, 500.0)), 3)
        111319.491
    """
    _, _, distance_m = _GEOD.inv(
        from_lat_lon_alt[1], from_lat_lon_alt[0], to_lat_lon_alt[1], to_lat_lon_alt[0]
    )
    return float(distance_m)


def stable_id_hash(receiver_id: str) -> int:
    """A process-independent integer for a receiver id (Python's hash() is salted)."""
    return zlib.crc32(receiver_id.encode("utf-8"))


#: Transmitter positions are quantised to this many degrees (~1 m) and metres before
#: seeding a link's shadowing, so a position that went through JSON keeps its shadow.
SHADOWING_POSITION_DEGREES = channel.POSITION_DEGREES
SHADOWING_POSITION_M = channel.POSITION_M


@lru_cache(maxsize=4096)
def shadowing_db(
    seed: int,
    receiver_id: str,
    transmitter_lat_lon_alt: tuple[float, float, float],
    sigma_db: float,
) -> float:
    """Log-normal shadowing of one link: fixed for a (seed, receiver, transmitter position).

    Shadowing belongs to the path, not to the receiver: a transmitter that moves sees
    other terrain, so a calibration cannot mistake it for the receiver's gain. Today the
    links are independent draws (white in the transmitter position); a spatially
    correlated field (issue 15: nearby transmitters share their shadows over a
    decorrelation distance) replaces this function's draw and nothing else.

    Example:
        >>> here = shadowing_db(1, "torino", (45.0, 8.0, 300.0), 4.0)
        >>> here == shadowing_db(1, "torino", (45.0, 8.0, 300.0), 4.0)
        True
        >>> here == shadowing_db(1, "torino", (45.1, 8.0, 300.0), 4.0)  # moved 11 km
        False
    """
    if sigma_db == 0.0:
        return 0.0
    position = channel.quantised_position(transmitter_lat_lon_alt)
    rng = np.random.default_rng([seed, SEED_TAG_SHADOW, stable_id_hash(receiver_id), *position])
    return float(rng.normal(0.0, sigma_db))


def _ecef_m(lat_lon_alt: tuple[float, float, float]) -> npt.NDArray[np.float64]:
    return np.array(_TO_ECEF.transform(lat_lon_alt[1], lat_lon_alt[0], lat_lon_alt[2]))


@lru_cache(maxsize=4096)
def correlated_shadowing_db(
    seed: int,
    receivers: tuple[tuple[str, tuple[float, float, float]], ...],
    transmitter_lat_lon_alt: tuple[float, float, float],
    sigma_db: float,
    correlation_m: float,
) -> dict[str, float]:
    """Shadowing of every link to one transmitter, correlated between nearby receivers.

    Covariance ``sigma^2 exp(-|r_i - r_j| / correlation_m)``: two receivers on one hill
    see the transmitter through much the same terrain. Seeded by the transmitter's
    (quantised) position, like ``shadowing_db``.
    """
    ids = [receiver_id for receiver_id, _ in receivers]
    positions = np.array([_ecef_m(position) for _, position in receivers])
    distances_m = np.linalg.norm(positions[:, np.newaxis] - positions[np.newaxis], axis=-1)
    covariance = sigma_db**2 * np.exp(-distances_m / correlation_m)
    lower = np.linalg.cholesky(covariance + 1e-9 * np.eye(len(ids)))
    position = channel.quantised_position(transmitter_lat_lon_alt)
    rng = np.random.default_rng([seed, SEED_TAG_SHADOW, 0xC0, *position])
    values = lower @ rng.standard_normal(len(ids))
    return {receiver_id: float(v) for receiver_id, v in zip(ids, values, strict=True)}


def radio_horizon_m(height_a_m: float, height_b_m: float, earth_radius_factor: float) -> float:
    """Smooth-Earth line-of-sight limit between two heights: sqrt(2 k R h1) + sqrt(2 k R h2).

    Example:
        >>> round(radio_horizon_m(300.0, 500.0, 4.0 / 3.0) / 1e3, 1)
        163.6
    """
    radius_m = earth_radius_factor * EARTH_MEAN_RADIUS_M
    return float(
        np.sqrt(2 * radius_m * max(height_a_m, 1.0)) + np.sqrt(2 * radius_m * max(height_b_m, 1.0))
    )


def beyond_horizon_loss_db(
    scenario: Scenario, receiver: ReceiverSettings, distance_m: float
) -> float:
    """Diffraction loss of a link past the radio horizon (0 within it, or when off)."""
    propagation = scenario.propagation
    if not propagation.radio_horizon:
        return 0.0
    horizon_m = radio_horizon_m(
        scenario.transmitter.altitude_m,
        receiver.require_position()[2],
        propagation.earth_radius_factor,
    )
    if distance_m <= horizon_m:
        return 0.0
    return (
        propagation.beyond_horizon_db
        + propagation.beyond_horizon_db_per_km * (distance_m - horizon_m) / 1e3
    )


@lru_cache(maxsize=4096)
def ground_wave_excess_s(
    seed: int,
    receiver_id: str,
    transmitter_lat_lon_alt: tuple[float, float, float],
    distance_m: float,
    ground_wave: GroundWave,
) -> float:
    """A link's ground-wave group delay beyond light time, seconds (``GroundWave``).

    Like shadowing, the per-link part belongs to the path: fixed for a (seed, receiver,
    transmitter position), drawn afresh when the transmitter moves.

    Example:
        >>> model = GroundWave(excess_delay_ns_per_km=30.0, excess_delay_sigma_ns_per_km=0.0)
        >>> round(ground_wave_excess_s(1, "graz", (48.0, 13.0, 0.0), 200e3, model) * 1e6, 6)
        6.0
    """
    position = channel.quantised_position(transmitter_lat_lon_alt)
    rng = np.random.default_rng([seed, SEED_TAG_GROUND, stable_id_hash(receiver_id), *position])
    rate_ns_per_km = ground_wave.excess_delay_ns_per_km + rng.normal(
        0.0, ground_wave.excess_delay_sigma_ns_per_km
    )
    return float(rate_ns_per_km * distance_m * 1e-12)


@dataclass(frozen=True, slots=True)
class LinkBudget:
    """Distance, delay and power levels of the transmitter at one receiver.

    ``signal_power_dbm`` and ``noise_power_dbm`` are at the receiver's input (antenna
    gain included); the receiver's hidden ``gain_offset_db`` scales both after that, so
    what its readings say is ``measured_signal_power_dbm``.
    """

    receiver_id: str
    distance_m: float
    delay_s: float
    path_loss_db: float
    signal_power_dbm: float
    noise_power_dbm: float
    shadowing_db: float = 0.0
    gain_offset_db: float = 0.0

    @property
    def snr_db(self) -> float:
        return self.signal_power_dbm - self.noise_power_dbm

    @property
    def measured_signal_power_dbm(self) -> float:
        return self.signal_power_dbm + self.gain_offset_db

    @property
    def measured_noise_power_dbm(self) -> float:
        return self.noise_power_dbm + self.gain_offset_db


def link_budget(scenario: Scenario, receiver: ReceiverSettings) -> LinkBudget:
    """Path loss, received signal power and noise power for one receiver."""
    transmitter = scenario.transmitter
    propagation = scenario.propagation
    transmitter_position = (transmitter.latitude, transmitter.longitude, transmitter.altitude_m)
    path_m = (slant_range_m if propagation.ground_wave is None else surface_distance_m)(
        transmitter_position, receiver.require_position()
    )
    distance_m = max(path_m, 1.0)  # keep the loss finite for a transmitter on the antenna
    delay_s = distance_m / SPEED_OF_LIGHT_M_PER_S
    if propagation.ground_wave is not None:
        delay_s += ground_wave_excess_s(
            scenario.seed, receiver.id, transmitter_position, distance_m, propagation.ground_wave
        )
    shadow_db = 0.0
    if propagation.model is PropagationModel.free_space:
        loss_db = free_space_path_loss_db(distance_m, transmitter.frequency_hz)
    else:
        reference_m = propagation.reference_distance_m
        if propagation.shadowing_correlation_m > 0 and propagation.shadowing_sigma_db > 0:
            shadow_db = correlated_shadowing_db(
                scenario.seed,
                tuple((r.id, r.require_position()) for r in scenario.receivers),
                transmitter_position,
                propagation.shadowing_sigma_db,
                propagation.shadowing_correlation_m,
            )[receiver.id]
        else:
            shadow_db = shadowing_db(
                scenario.seed, receiver.id, transmitter_position, propagation.shadowing_sigma_db
            )
        loss_db = (
            free_space_path_loss_db(reference_m, transmitter.frequency_hz)
            + 10.0 * propagation.path_loss_exponent * np.log10(distance_m / reference_m)
            + shadow_db
        )
    loss_db += beyond_horizon_loss_db(scenario, receiver, distance_m)
    impairments = receiver.impairments
    loss_db += channel.obstruction_loss_db(
        scenario.seed,
        stable_id_hash(receiver.id),
        transmitter_position,
        impairments.obstruction_probability,
        impairments.obstruction_loss_db,
    )
    return LinkBudget(
        receiver_id=receiver.id,
        distance_m=distance_m,
        delay_s=delay_s,
        path_loss_db=float(loss_db),
        signal_power_dbm=float(transmitter.eirp_dbm - loss_db + receiver.antenna_gain_dbi),
        noise_power_dbm=float(thermal_noise_dbm(receiver.sample_rate_hz, receiver.noise_figure_db)),
        shadowing_db=float(shadow_db),
        gain_offset_db=receiver.gain_offset_db,
    )


def local_oscillator_hz(receiver: ReceiverSettings, tuned_frequency_hz: float) -> float:
    return tuned_frequency_hz * (1.0 + receiver.lo_error_ppm * 1e-6)


def _phase_cycles(
    frequency_hz: float, base_time_ns: int, offset_s: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """frequency * (base + offset) in cycles, exact enough at any absolute time.

    Whole seconds of the base are multiplied only by the fractional part of the
    frequency (whole cycles do not matter), which keeps float64 precise.
    """
    whole_s, remainder_ns = divmod(base_time_ns, NS_PER_S)
    cycles_from_whole = (frequency_hz % 1.0) * whole_s % 1.0
    return cycles_from_whole + frequency_hz * (remainder_ns / NS_PER_S + offset_s)


@lru_cache(maxsize=1024)
def _clock_offset_ns(seed: int, receiver_id: str) -> float:
    rng = np.random.default_rng([seed, SEED_TAG_GPS, stable_id_hash(receiver_id)])
    return float(rng.normal(0.0, NO_GPS_CLOCK_OFFSET_SIGMA_NS))


def block_times_ns(
    start_time_ns: int, n_blocks: int, sample_rate_hz: float
) -> npt.NDArray[np.int64]:
    """True UTC time of the first sample of each 512-sample block."""
    block_offsets_ns = np.arange(n_blocks, dtype=np.float64) * SAMPLES_PER_BLOCK * 1e9
    return start_time_ns + np.round(block_offsets_ns / sample_rate_hz).astype(np.int64)


def reported_block_times_ns(
    scenario: Scenario, receiver: ReceiverSettings, true_block_time_ns: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """What the receiver stamps on each block: truth + its fixed timing bias + GPS jitter
    (+ the free-running clock's offset without GPS).

    The jitter of a block depends only on (seed, receiver, block time), so it is
    reproducible whichever window is rendered.
    """
    receiver_hash = stable_id_hash(receiver.id)
    jitter = np.array(
        [
            np.random.default_rng([scenario.seed, SEED_TAG_GPS, receiver_hash, int(t)]).normal()
            for t in true_block_time_ns
        ],
        dtype=np.float64,
    )
    errors_ns = jitter * receiver.gps_jitter_ns + receiver.timing_bias_ns
    if _gps_impaired(receiver):
        errors_ns = (
            errors_ns
            + channel.gps_stamp_errors(
                scenario.seed, receiver_hash, receiver.impairments.gps, true_block_time_ns
            )[0]
        )
    reported = true_block_time_ns + np.round(errors_ns).astype(np.int64)
    if not receiver.has_gps:
        reported += round(_clock_offset_ns(scenario.seed, receiver.id))
    return reported


def _gps_impaired(receiver: ReceiverSettings) -> bool:
    gps = receiver.impairments.gps
    return bool(gps.solution_sigma_ns or gps.stale_probability or gps.bad_stamp_probability)


def gps_status_of_blocks(
    scenario: Scenario, receiver: ReceiverSettings, true_block_time_ns: npt.NDArray[np.int64]
) -> npt.NDArray[np.uint8]:
    """``last_gps_solution`` of each block: seconds since the fix, 254 stale, 255 no GPS."""
    times = np.asarray(true_block_time_ns, dtype=np.int64)
    if not receiver.has_gps:
        return np.full(len(times), GPS_STATUS_NO_GPS, dtype=np.uint8)
    if _gps_impaired(receiver):
        return channel.gps_stamp_errors(
            scenario.seed, stable_id_hash(receiver.id), receiver.impairments.gps, times
        )[1]
    return ((times // NS_PER_S) % GPS_FIX_INTERVAL_S).astype(np.uint8)


def announced_sample_rate_hz(receiver: ReceiverSettings) -> float:
    """The sample rate the receiver announces: the true one, or a few ppm off it."""
    return receiver.sample_rate_hz * (1.0 + receiver.impairments.announced_rate_error_ppm * 1e-6)


@dataclass(frozen=True, slots=True)
class ReceiverTruth:
    """What really happened at one receiver for a rendered window."""

    receiver_id: str
    distance_m: float
    delay_s: float
    path_loss_db: float
    signal_power_dbm: float  # at the receiver input, while the transmitter is keyed
    noise_power_dbm: float  # in the receiver bandwidth (= sample rate)
    snr_db: float
    gain_offset_db: float  # the chain's hidden gain error: samples are scaled by it
    frequency_offset_hz: float  # where the carrier lands in the baseband
    in_passband: bool
    sample_rate_hz: float
    block_time_ns: npt.NDArray[np.int64]  # true time of each block's first sample
    reported_block_time_ns: npt.NDArray[np.int64]  # with GPS jitter / clock error
    gps_status: npt.NDArray[np.uint8]  # last_gps_solution per block (254 stale, 255 none)
    announced_sample_rate_hz: float  # what the receiver says it samples at
    multipath_taps: tuple[channel.Tap, ...] = ()  # the link's taps, direct path first


@dataclass(frozen=True, slots=True)
class RenderedIQ:
    samples: npt.NDArray[np.complex64]  # full scale = magnitude 1.0
    truth: ReceiverTruth


def render_receiver_iq(
    scenario: Scenario,
    receiver: ReceiverSettings | str,
    start_time_ns: int,
    n_samples: int,
    tuned_frequency_hz: float | None = None,
    *,
    include_noise: bool = True,
    include_signal: bool = True,
) -> RenderedIQ:
    """The IQ one receiver records from start_time_ns (UTC ns) for n_samples samples.

    Sample n is taken at start_time_ns + n / sample_rate_hz (true time). The
    receiver is tuned to ``tuned_frequency_hz`` (default: the transmitter's), and
    hears the transmitter only if its baseband offset lies inside +-fs/2.
    Noise is seeded by (seed, receiver, start time): the same call always returns
    the same samples.

    Example:
        >>> from heimdall.simulator.scenario import load_scenario
        >>> scenario = load_scenario()
        >>> iq = render_receiver_iq(scenario, "torino", 1_700_000_000_000_000_000, 1024)
        >>> iq.samples.dtype, iq.samples.shape, len(iq.truth.block_time_ns)
        (dtype('complex64'), (1024,), 2)
    """
    if isinstance(receiver, str):
        receiver = scenario.receiver(receiver)
    transmitter: Transmitter = scenario.transmitter
    if tuned_frequency_hz is None:
        tuned_frequency_hz = transmitter.frequency_hz
    budget = link_budget(scenario, receiver)
    full_scale_dbm = scenario.full_scale_dbm_of(receiver)
    sample_rate_hz = receiver.sample_rate_hz
    offset_hz = transmitter.frequency_hz - local_oscillator_hz(receiver, tuned_frequency_hz)
    in_passband = abs(offset_hz) < sample_rate_hz / 2.0

    sample_offset_s = np.arange(n_samples, dtype=np.float64) / sample_rate_hz
    samples = np.zeros(n_samples, dtype=np.complex128)
    impairments = receiver.impairments
    receiver_hash = stable_id_hash(receiver.id)
    converter_cycles: npt.NDArray[np.float64] | float = 0.0
    if impairments.converter.converter_offset_hz or impairments.converter.drift_hz:
        converter_cycles, converter_hz = channel.converter_cycles(
            scenario.seed, receiver_hash, impairments.converter, start_time_ns, sample_offset_s
        )
        offset_hz -= converter_hz
        in_passband = abs(offset_hz) < sample_rate_hz / 2.0
    taps: tuple[channel.Tap, ...] = ()
    if impairments.multipath.echoes:
        taps = channel.link_taps(
            scenario.seed,
            receiver_hash,
            (transmitter.latitude, transmitter.longitude, transmitter.altitude_m),
            impairments.multipath,
        )
    if include_signal and in_passband:
        amplitude = 10.0 ** ((budget.measured_signal_power_dbm - full_scale_dbm) / 20.0)
        carrier_cycles = (
            _phase_cycles(
                transmitter.frequency_hz - local_oscillator_hz(receiver, tuned_frequency_hz),
                start_time_ns,
                sample_offset_s,
            )
            - converter_cycles
        )
        paths = taps or (channel.Tap(0.0, 1.0, 1 + 0j, 0.0, (), ()),)
        gains = channel.tap_gains(taps, start_time_ns, sample_offset_s) if taps else None
        for row, tap in enumerate(paths):
            delay_s = budget.delay_s + tap.delay_s
            envelope = transmitted_baseband(
                transmitter, scenario.seed, start_time_ns, sample_offset_s - delay_s
            )
            path = envelope * np.exp(
                2j * np.pi * (carrier_cycles - transmitter.frequency_hz * delay_s)
            )
            samples += amplitude * (path if gains is None else gains[row] * path)
    noise_power_fs = 10.0 ** ((budget.measured_noise_power_dbm - full_scale_dbm) / 10.0)
    interfering = channel.interference(
        scenario.seed,
        receiver_hash,
        impairments.interference,
        start_time_ns,
        sample_offset_s,
        sample_rate_hz,
        noise_power_fs,
    )
    if interfering is not None and include_noise:
        samples += interfering
    if include_noise:
        rng = np.random.default_rng(
            [scenario.seed, SEED_TAG_NOISE, stable_id_hash(receiver.id), start_time_ns]
        )
        noise = rng.standard_normal((2, n_samples))
        samples += np.sqrt(noise_power_fs / 2.0) * (noise[0] + 1j * noise[1])

    n_blocks = -(-n_samples // SAMPLES_PER_BLOCK)
    true_times = block_times_ns(start_time_ns, n_blocks, sample_rate_hz)
    truth = ReceiverTruth(
        receiver_id=receiver.id,
        distance_m=budget.distance_m,
        delay_s=budget.delay_s,
        path_loss_db=budget.path_loss_db,
        signal_power_dbm=budget.signal_power_dbm,
        noise_power_dbm=budget.noise_power_dbm,
        snr_db=budget.snr_db,
        gain_offset_db=budget.gain_offset_db,
        frequency_offset_hz=offset_hz,
        in_passband=in_passband,
        sample_rate_hz=sample_rate_hz,
        block_time_ns=true_times,
        reported_block_time_ns=reported_block_times_ns(scenario, receiver, true_times),
        gps_status=gps_status_of_blocks(scenario, receiver, true_times),
        announced_sample_rate_hz=announced_sample_rate_hz(receiver),
        multipath_taps=taps,
    )
    return RenderedIQ(samples=samples.astype(np.complex64), truth=truth)


def power_dbm(samples: npt.NDArray[np.complexfloating], full_scale_dbm: float) -> float:
    """Mean power of IQ samples (full scale 1.0) in dBm under the fixed receiver gain.

    Example:
        >>> import numpy as np
        >>> power_dbm(np.full(8, 0.1 + 0j), -40.0)
        -60.0
    """
    mean_power = float(np.mean(np.abs(samples) ** 2))
    return float(10.0 * np.log10(max(mean_power, 1e-30)) + full_scale_dbm)
