"""The impairments of ``impairments.py`` as functions of absolute time (issue 15).

Everything here is deterministic in (scenario seed, receiver, absolute time or link),
like the rest of the simulator: a capture rendered in one call and the server's
block-by-block rendering see the same GPS solutions, fading and converter drift.
Slow quantities (fading gains, converter drift) are evaluated on absolute time with
the whole-second part kept in integers, as ``physics._phase_cycles`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from heimdall.core.constants import NS_PER_S
from heimdall.simulator.impairments import Converter, GpsTiming, Interference, Multipath

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

SEED_TAG_SOLUTION = 0x534F4C
SEED_TAG_BAD_STAMP = 0x424144
SEED_TAG_MULTIPATH = 0x4D5054
SEED_TAG_CONVERTER = 0x434E56
SEED_TAG_INTERFERER = 0x494E54
SEED_TAG_IMPULSE = 0x494D50
SEED_TAG_OBSTRUCTION = 0x4F4253

#: ``last_gps_solution`` of a block stamped from a stale solution (KiwiSDR: 254).
GPS_STATUS_STALE = 254
#: The highest count of seconds since the last solution a fresh block reports.
GPS_STATUS_MAX_FRESH = 253
#: Sum-of-sinusoids components per fading tap (Jakes-like Doppler spectrum).
FADING_COMPONENTS = 8
#: Fading gains are evaluated every this many samples and interpolated (they are slow).
FADING_GRID_SAMPLES = 64
INTERFERER_EPOCH_S = 10


def _seconds_mod(base_time_ns: int, offsets_s: FloatArray, period_s: float) -> FloatArray:
    """(base + offset) modulo ``period_s``, exact at any absolute time."""
    period_ns = max(round(period_s * NS_PER_S), 1)
    return ((base_time_ns % period_ns) / NS_PER_S + offsets_s) % (period_ns / NS_PER_S)


def _cycles(frequency_hz: float, base_time_ns: int, offsets_s: FloatArray) -> FloatArray:
    whole_s, remainder_ns = divmod(base_time_ns, NS_PER_S)
    return (frequency_hz % 1.0) * whole_s % 1.0 + frequency_hz * (
        remainder_ns / NS_PER_S + offsets_s
    )


#: A transmitter position is quantised to this many degrees (~1 m) and metres before it
#: seeds a link's draws (shadowing, taps, obstruction): a position that went through
#: JSON keeps its link.
POSITION_DEGREES = 1e-5
POSITION_M = 1.0


def quantised_position(lat_lon_alt: tuple[float, float, float]) -> list[int]:
    """Seed words of a position (see ``POSITION_DEGREES``)."""
    latitude, longitude, altitude_m = lat_lon_alt
    return [
        round(latitude / POSITION_DEGREES) % 2**32,
        round(longitude / POSITION_DEGREES) % 2**32,
        round(altitude_m / POSITION_M) % 2**32,
    ]


def _link_rng(
    seed: int, tag: int, receiver_hash: int, position: tuple[float, float, float]
) -> np.random.Generator:
    return np.random.default_rng([seed, tag, receiver_hash, *quantised_position(position)])


# --- GPS timing -------------------------------------------------------------------


def _solution_knot_ns(
    seed: int, receiver_hash: int, epoch: int, sigma_ns: float
) -> tuple[float, float, float]:
    """The timing error at a solution epoch's start, whether it is stale, its drift sign."""
    rng = np.random.default_rng([seed, SEED_TAG_SOLUTION, receiver_hash, epoch % 2**63])
    error_ns, stale_draw = float(rng.normal(0.0, sigma_ns)), float(rng.random())
    return error_ns, stale_draw, 1.0 if rng.random() < 0.5 else -1.0


def gps_stamp_errors(
    seed: int, receiver_hash: int, gps: GpsTiming, true_block_time_ns: npt.NDArray[np.int64]
) -> tuple[FloatArray, npt.NDArray[np.uint8]]:
    """Each block's stamp error (ns) from the solution model, and its ``last_gps_solution``.

    Between solutions the error runs linearly from one solution's error to the next's
    (a receiver interpolating its stamps); a stale solution reports 254 and its stamps
    drift away from the truth at ``stale_drift_ns_per_s``; a bad stamp is off by up to
    ``bad_stamp_us``.
    """
    interval_ns = round(gps.solution_interval_s * NS_PER_S)
    times = np.asarray(true_block_time_ns, dtype=np.int64)
    epochs = times // interval_ns
    since_ns = (times - epochs * interval_ns).astype(np.float64)
    errors = np.zeros(len(times))
    status = np.minimum(since_ns // NS_PER_S, GPS_STATUS_MAX_FRESH).astype(np.uint8)
    knots: dict[int, tuple[float, float, float]] = {}
    for epoch in np.unique(epochs).tolist():
        for e in (epoch, epoch + 1):
            if e not in knots:
                knots[e] = _solution_knot_ns(seed, receiver_hash, e, gps.solution_sigma_ns)
        in_epoch = epochs == epoch
        start, stale_draw, sign = knots[epoch]
        end = knots[epoch + 1][0]
        fraction = since_ns[in_epoch] / interval_ns
        errors[in_epoch] = start + (end - start) * fraction
        if stale_draw < gps.stale_probability:
            errors[in_epoch] = (
                start + sign * gps.stale_drift_ns_per_s * since_ns[in_epoch] / NS_PER_S
            )
            status[in_epoch] = GPS_STATUS_STALE
    if gps.bad_stamp_probability > 0:
        for k, t in enumerate(times.tolist()):
            rng = np.random.default_rng([seed, SEED_TAG_BAD_STAMP, receiver_hash, t])
            if rng.random() < gps.bad_stamp_probability:
                errors[k] += (
                    rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 1.0) * gps.bad_stamp_us * 1e3
                )
    return errors, status


# --- Multipath ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tap:
    """One path: excess delay, mean power (the taps' total is 1) and its fading."""

    delay_s: float
    power: float
    specular: complex  # the constant (line-of-sight) part of the amplitude
    diffuse: float  # RMS amplitude of the fading part
    doppler_hz: tuple[float, ...]
    phases_cycles: tuple[float, ...]


@lru_cache(maxsize=4096)
def link_taps(
    seed: int, receiver_hash: int, position: tuple[float, float, float], multipath: Multipath
) -> tuple[Tap, ...]:
    """The tapped delay line of one link (direct path first); fixed per link."""
    rng = _link_rng(seed, SEED_TAG_MULTIPATH, receiver_hash, position)
    delays_s = [0.0] + sorted(
        float(d) * 1e-6
        for d in rng.uniform(
            min(1.0, multipath.delay_spread_us), multipath.delay_spread_us, multipath.echoes
        )
    )
    powers = [1.0] + [
        10 ** (float(p) / 10) for p in rng.uniform(*multipath.echo_power_db, multipath.echoes)
    ]
    return taps_of(delays_s, powers, multipath.rician_k_db, multipath.fading_hz, rng)


def taps_of(
    delays_s: list[float],
    powers: list[float],
    rician_k_db: float | None,
    fading_hz: float,
    rng: np.random.Generator,
) -> tuple[Tap, ...]:
    """The taps of paths at ``delays_s`` with relative ``powers`` (direct path first,
    normalised to a total of 1): the direct path Rician with ``rician_k_db`` (Rayleigh
    when None), the echoes Rayleigh, each fading over ``FADING_COMPONENTS`` Doppler
    components up to ``fading_hz``; the phases drawn from ``rng``."""
    total = sum(powers)
    taps = []
    for k, (delay_s, power) in enumerate(zip(delays_s, powers, strict=True)):
        amplitude = np.sqrt(power / total)
        if k == 0 and rician_k_db is not None:
            k_factor = 10 ** (rician_k_db / 10)
            specular = (
                amplitude * np.sqrt(k_factor / (k_factor + 1)) * np.exp(2j * np.pi * rng.random())
            )
            diffuse = amplitude / np.sqrt(k_factor + 1)
        else:
            specular, diffuse = 0j, amplitude
        angles = rng.uniform(0.0, 2 * np.pi, FADING_COMPONENTS)
        taps.append(
            Tap(
                delay_s=delay_s,
                power=power / total,
                specular=complex(specular),
                diffuse=float(diffuse),
                doppler_hz=tuple(float(fading_hz * np.cos(a)) for a in angles),
                phases_cycles=tuple(float(p) for p in rng.random(FADING_COMPONENTS)),
            )
        )
    return tuple(taps)


def tap_gains(taps: tuple[Tap, ...], base_time_ns: int, offsets_s: FloatArray) -> ComplexArray:
    """Complex gain of every tap at every sample, shape ``(taps, samples)``."""
    grid = offsets_s[::FADING_GRID_SAMPLES]
    if grid[-1] != offsets_s[-1]:
        grid = np.append(grid, offsets_s[-1])
    gains = np.empty((len(taps), len(offsets_s)), dtype=np.complex128)
    for row, tap in enumerate(taps):
        diffuse = np.zeros(len(grid), dtype=np.complex128)
        for doppler_hz, phase in zip(tap.doppler_hz, tap.phases_cycles, strict=True):
            diffuse += np.exp(2j * np.pi * (_cycles(doppler_hz, base_time_ns, grid) + phase))
        coarse = tap.specular + tap.diffuse * diffuse / np.sqrt(FADING_COMPONENTS)
        gains[row] = np.interp(offsets_s, grid, coarse.real) + 1j * np.interp(
            offsets_s, grid, coarse.imag
        )
    return gains


# --- Converter LO -------------------------------------------------------------------


def converter_cycles(
    seed: int, receiver_hash: int, converter: Converter, base_time_ns: int, offsets_s: FloatArray
) -> tuple[FloatArray, float]:
    """Phase (cycles) the converter's LO takes off the signal, and its offset (Hz) at the start.

    The offset is ``converter_offset_hz + drift_hz sin(2 pi t / period + psi)``; its
    phase is the integral, evaluated on absolute time.
    """
    psi = float(np.random.default_rng([seed, SEED_TAG_CONVERTER, receiver_hash]).random())
    cycles = _cycles(converter.converter_offset_hz, base_time_ns, offsets_s)
    offset_hz = converter.converter_offset_hz
    if converter.drift_hz > 0:
        period_s = converter.drift_period_s
        angle = 2 * np.pi * (_seconds_mod(base_time_ns, offsets_s, period_s) / period_s + psi)
        cycles = cycles - converter.drift_hz * period_s / (2 * np.pi) * np.cos(angle)
        offset_hz += converter.drift_hz * float(np.sin(angle[0]))
    return cycles, offset_hz


# --- Interference and impulses ------------------------------------------------------


def interference(
    seed: int,
    receiver_hash: int,
    settings: Interference,
    base_time_ns: int,
    offsets_s: FloatArray,
    sample_rate_hz: float,
    noise_power_fs: float,
) -> ComplexArray | None:
    """A second signal (slow-FM carrier) and impulsive noise in the passband, or None."""
    total = np.zeros(len(offsets_s), dtype=np.complex128)
    present = False
    if settings.interferer_probability > 0:
        epoch_ns = INTERFERER_EPOCH_S * NS_PER_S
        epochs = (base_time_ns + np.round(offsets_s * NS_PER_S).astype(np.int64)) // epoch_ns
        for epoch in np.unique(epochs).tolist():
            rng = np.random.default_rng([seed, SEED_TAG_INTERFERER, receiver_hash, epoch])
            if rng.random() >= settings.interferer_probability:
                continue
            present = True
            mask = epochs == epoch
            frequency_hz = float(round(rng.uniform(-0.4, 0.4) * sample_rate_hz))
            rate_hz = float(rng.choice([1.0, 2.0, 4.0]))
            deviation_hz = float(rng.uniform(200.0, 1_500.0))
            amplitude = np.sqrt(
                noise_power_fs * 10 ** (rng.uniform(*settings.interferer_snr_db) / 10)
            )
            t = offsets_s[mask]
            phase = 2 * np.pi * _cycles(
                frequency_hz, base_time_ns, t
            ) + deviation_hz / rate_hz * np.sin(
                2 * np.pi * rate_hz * _seconds_mod(base_time_ns, t, 1.0 / rate_hz)
            )
            total[mask] += amplitude * np.exp(1j * phase)
    if settings.impulses_per_s > 0:
        rng = np.random.default_rng([seed, SEED_TAG_IMPULSE, receiver_hash, base_time_ns % 2**63])
        duration_s = float(offsets_s[-1] - offsets_s[0]) + 1.0 / sample_rate_hz
        count = int(rng.poisson(settings.impulses_per_s * duration_s))
        amplitude = np.sqrt(noise_power_fs * 10 ** (settings.impulse_snr_db / 10))
        for position in rng.integers(0, len(offsets_s), count).tolist():
            shape = amplitude * np.exp(-np.arange(4) / 1.5) * np.exp(2j * np.pi * rng.random())
            stop = min(position + 4, len(offsets_s))
            total[position:stop] += shape[: stop - position]
            present = True
    return total if present else None


def obstruction_loss_db(
    seed: int,
    receiver_hash: int,
    position: tuple[float, float, float],
    probability: float,
    loss_db: float,
) -> float:
    """Extra loss of an obstructed link (a receiver that does not hear it), else 0."""
    if probability <= 0:
        return 0.0
    rng = _link_rng(seed, SEED_TAG_OBSTRUCTION, receiver_hash, position)
    return loss_db if rng.random() < probability else 0.0
