"""kiwirecorder IQ WAV files (``kiwirecorder.py -m iq --kiwi-wav``): read, write and name them.

Layout: ``RIFF``/``WAVE``, a ``fmt `` chunk (PCM, 2 channels = I and Q, 16 bit, the
receiver's sample rate as a whole number: nominal, the true rate comes from the stamps),
then for every block the receiver sent a ``kiwi`` chunk of 10 bytes
(``last_gps_solution`` u8, reserved u8, GPS seconds of week u32 LE, nanoseconds u32 LE:
the time of the block's first sample) followed by a ``data`` chunk of its IQ pairs
(int16 LE, usually 512 pairs). A 2-channel 16-bit WAV without ``kiwi`` chunks is IQ
without time. The name carries what the file does not:
``YYYYMMDDTHHMMSSZ_<frequency Hz>_<station>_iq.wav``.

Everything that makes a file unreadable raises :class:`KiwiWavError` with one sentence
saying what and where (byte offsets, block numbers).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

import numpy as np
import numpy.typing as npt

from heimdall.core.constants import NS_PER_S
from heimdall.receivers.capture import GPS_STATUS_NO_GPS, SAMPLES_PER_BLOCK, IQCapture
from heimdall.receivers.gps import (
    GPS_UTC_OFFSET_S,
    SECONDS_PER_WEEK,
    gps_time_of_week_from_utc_ns,
)
from heimdall.receivers.kiwisdr.client import block_times_ns
from heimdall.receivers.kiwisdr.protocol import INT16_FULL_SCALE

DRIVER_NAME = "kiwirecorder"
KIWI_CHUNK_BYTES = 10
IQ_PAIR_BYTES = 4
#: ``last_gps_solution`` from this value up: no usable fix (254 too old, 255 no GPS clock).
GPS_STATUS_NO_FIX = 254
#: Header sample rates accepted (a KiwiSDR records IQ at 12 or 20.25 kHz).
SAMPLE_RATE_RANGE_HZ = (1_000, 200_000)
#: Stamps stepping backwards more often than this share of steps (and at least twice)
#: are out of order: a corrupt stamp here and there steps back once or twice.
MAX_BACKWARD_SHARE = 0.01
WAVE_FORMAT_PCM = 1

_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")
_KIWI = struct.Struct("<BBII")
_NAME = re.compile(r"^(?P<time>\d{8}T\d{6}Z)_(?P<frequency>\d+)_(?P<station>.+)_iq\.wav$")
_NS_PER_WEEK = SECONDS_PER_WEEK * NS_PER_S


class KiwiWavError(ValueError):
    """The file is not a readable kiwirecorder IQ WAV; the message says why."""


@dataclass(frozen=True, slots=True)
class KiwiWavName:
    """What a kiwirecorder file name says: when (UTC, whole seconds), where it was tuned, who."""

    start_time: datetime
    frequency_hz: float
    station: str


def parse_kiwi_wav_name(filename: str) -> KiwiWavName:
    """Start time, frequency and station from ``YYYYMMDDTHHMMSSZ_<Hz>_<station>_iq.wav``.

    >>> parse_kiwi_wav_name("20240601T120000Z_7100000_DF0KL-2_iq.wav")
    KiwiWavName(start_time=datetime.datetime(2024, 6, 1, 12, 0, tzinfo=datetime.timezone.utc), frequency_hz=7100000.0, station='DF0KL-2')
    """
    base = PurePosixPath(filename.replace("\\", "/")).name
    match = _NAME.match(base)
    if match is None:
        raise KiwiWavError(
            f"file name {base!r} is not kiwirecorder's "
            "YYYYMMDDTHHMMSSZ_<frequency Hz>_<station>_iq.wav"
        )
    try:
        start = datetime.strptime(match["time"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise KiwiWavError(f"file name {base!r} has an impossible time: {exc}") from exc
    frequency_hz = float(match["frequency"])
    if frequency_hz <= 0:
        raise KiwiWavError(f"file name {base!r} has a frequency of 0 Hz")
    return KiwiWavName(start, frequency_hz, match["station"])


def kiwi_wav_name(start_time: datetime, frequency_hz: float, station: str) -> str:
    """The file name kiwirecorder gives a recording.

    >>> kiwi_wav_name(datetime(2024, 6, 1, 12, 0, 0, 750000, tzinfo=UTC), 7.1e6, "DF0KL")
    '20240601T120000Z_7100000_DF0KL_iq.wav'
    """
    return f"{start_time.astimezone(UTC):%Y%m%dT%H%M%SZ}_{round(frequency_hz)}_{station}_iq.wav"


@dataclass(frozen=True, slots=True)
class KiwiWav:
    """The content of a kiwirecorder IQ WAV, as stored (no time scale applied yet).

    ``gps_*`` hold one entry per block of a file with ``kiwi`` chunks, and are empty for
    a plain WAV (IQ without time).
    """

    nominal_sample_rate_hz: int
    samples: npt.NDArray[np.complex64]
    block_start_index: npt.NDArray[np.int64]
    gps_status: npt.NDArray[np.uint8]
    gps_tow_s: npt.NDArray[np.int64]
    gps_tow_ns: npt.NDArray[np.int64]

    @property
    def timed(self) -> bool:
        return len(self.gps_status) > 0


def _format(data: bytes, offset: int, size: int) -> int:
    """The ``fmt `` chunk's sample rate, after checking it is 2-channel 16-bit PCM."""
    if size < _FMT.size:
        raise KiwiWavError(f"wrong chunk size: fmt chunk of {size} bytes (at least 16 expected)")
    tag, channels, rate_hz, _, align, bits = _FMT.unpack_from(data, offset)
    if tag != WAVE_FORMAT_PCM or channels != 2 or bits != 16 or align != IQ_PAIR_BYTES:
        raise KiwiWavError(
            f"a WAV of the wrong format: format tag {tag}, {channels} channel(s), {bits}-bit "
            "(a kiwirecorder IQ file is PCM, 2 channels I/Q, 16-bit)"
        )
    low, high = SAMPLE_RATE_RANGE_HZ
    if not low <= rate_hz <= high:
        raise KiwiWavError(f"impossible sample rate {rate_hz} Hz in the fmt chunk")
    return int(rate_hz)


def _check_stamps(
    status: npt.NDArray[np.uint8],
    seconds: npt.NDArray[np.int64],
    nanoseconds: npt.NDArray[np.int64],
) -> None:
    out_of_range = np.flatnonzero((seconds >= SECONDS_PER_WEEK) | (nanoseconds >= NS_PER_S))
    if out_of_range.size:
        k = int(out_of_range[0])
        raise KiwiWavError(
            f"GPS stamp out of range in block {k}: gpssec={seconds[k]}, gpsnsec={nanoseconds[k]}"
        )
    fixed = np.flatnonzero(status < GPS_STATUS_NO_FIX)
    if fixed.size == 0:
        raise KiwiWavError(
            f"no valid GPS fix: all {len(status)} blocks have last_gps_solution 254 or 255 "
            "(no GPS solution), so the file has no time to import"
        )
    stamps_ns = seconds[fixed] * NS_PER_S + nanoseconds[fixed]
    steps_ns = np.diff(stamps_ns)
    steps_ns[steps_ns < -_NS_PER_WEEK // 2] += _NS_PER_WEEK  # the GPS week rolled over
    backward = np.flatnonzero(steps_ns < 0)
    if backward.size > max(2, MAX_BACKWARD_SHARE * steps_ns.size):
        a, b = int(fixed[backward[0]]), int(fixed[backward[0] + 1])
        raise KiwiWavError(
            f"non-monotonic GPS stamps: {backward.size} of {steps_ns.size} steps go backwards "
            f"(first from block {a} to block {b}, {-steps_ns[backward[0]] / 1e6:.3f} ms back)"
        )


def read_kiwi_wav(data: bytes) -> KiwiWav:
    """Parse a kiwirecorder IQ WAV (or a plain 2-channel 16-bit WAV) held in memory.

    Samples are scaled as the KiwiSDR client scales them (int16 / 32768), so a
    recording written by :func:`encode_kiwi_wav` reads back sample for sample.
    """
    size = len(data)
    if size == 0:
        raise KiwiWavError("empty file (0 bytes)")
    if size < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise KiwiWavError(f"not a WAV file: it starts with {bytes(data[:12])!r}, not RIFF....WAVE")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = riff_size + 8
    if end > size:
        raise KiwiWavError(f"truncated: the RIFF header announces {end} bytes, the file has {size}")
    view = memoryview(data)
    rate_hz: int | None = None
    pieces: list[memoryview] = []
    stamps: list[tuple[int, int, int, int]] = []
    pending: tuple[int, int, int, int] | None = None
    offset = 12
    while offset < end:
        if end - offset < _CHUNK.size:
            raise KiwiWavError(f"truncated: {end - offset} stray bytes at byte {offset}")
        chunk_id, chunk_size = _CHUNK.unpack_from(data, offset)
        body = offset + _CHUNK.size
        name = chunk_id.decode("latin-1")
        if chunk_size > end - body:
            raise KiwiWavError(
                f"truncated: the {name!r} chunk at byte {offset} announces {chunk_size} bytes, "
                f"{end - body} remain"
            )
        if chunk_id == b"fmt ":
            rate_hz = _format(data, body, chunk_size)
        elif chunk_id in (b"kiwi", b"data") and rate_hz is None:
            raise KiwiWavError(f"the {name!r} chunk at byte {offset} comes before any fmt chunk")
        elif chunk_id == b"kiwi":
            if chunk_size != KIWI_CHUNK_BYTES:
                raise KiwiWavError(
                    f"wrong chunk size: kiwi chunk of {chunk_size} bytes at byte {offset} "
                    f"({KIWI_CHUNK_BYTES} expected)"
                )
            if pending is not None:
                raise KiwiWavError(f"kiwi chunk at byte {offset} follows a kiwi chunk, not data")
            if pieces and not stamps:
                raise KiwiWavError(f"kiwi chunk at byte {offset} after data chunks without one")
            pending = _KIWI.unpack_from(data, body)
        elif chunk_id == b"data":
            if chunk_size == 0 or chunk_size % IQ_PAIR_BYTES:
                raise KiwiWavError(
                    f"wrong chunk size: data chunk of {chunk_size} bytes at byte {offset} "
                    f"is not whole IQ pairs ({IQ_PAIR_BYTES} bytes each)"
                )
            if pending is None and stamps:
                raise KiwiWavError(f"data chunk at byte {offset} has no kiwi chunk before it")
            if pending is not None:
                stamps.append(pending)
                pending = None
            pieces.append(view[body : body + chunk_size])
        offset = body + chunk_size + (chunk_size & 1)  # RIFF pads chunks to even sizes
    if pending is not None:
        raise KiwiWavError("truncated: the last kiwi chunk has no data chunk after it")
    if rate_hz is None:
        raise KiwiWavError("no fmt chunk: not a WAV file")
    if not pieces:
        raise KiwiWavError("no IQ samples: the file has no data chunk")
    interleaved = np.frombuffer(b"".join(pieces), dtype="<i2")
    samples = (interleaved.astype(np.float32) / np.float32(INT16_FULL_SCALE)).view(np.complex64)
    if stamps:
        table = np.asarray(stamps, dtype=np.int64)
        status, seconds, nanoseconds = table[:, 0].astype(np.uint8), table[:, 2], table[:, 3]
        _check_stamps(status, seconds, nanoseconds)
        lengths = np.asarray([len(p) // IQ_PAIR_BYTES for p in pieces], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    else:
        status = np.empty(0, dtype=np.uint8)
        seconds = nanoseconds = np.empty(0, dtype=np.int64)
        starts = np.arange(0, len(samples), SAMPLES_PER_BLOCK, dtype=np.int64)
    return KiwiWav(rate_hz, samples, starts, status, seconds, nanoseconds)


def capture_from_kiwi_wav(
    wav: KiwiWav,
    name: KiwiWavName,
    *,
    station_id: str,
    source_file: str = "",
    gps_utc_offset_s: int = GPS_UTC_OFFSET_S,
) -> IQCapture:
    """The file as the capture a live KiwiSDR recording would have given.

    Stamps are converted with the GPS week of the name's start time (the recording
    host's clock, seconds from the truth), each to the instant nearest it, so a file
    that runs across the Sunday 00:00 GPS week boundary keeps its order. A plain WAV
    gets no-GPS blocks (status 255) timed from the name. The sample rate is the
    header's nominal one: fitting the true rate from the stamps is the importer's
    (``imports.timing``). No S-meter is recorded: RSSI is NaN (power stays in dBFS).
    """
    host_ns = round(name.start_time.timestamp()) * NS_PER_S
    rate_hz = float(wav.nominal_sample_rate_hz)
    blocks = len(wav.block_start_index)
    if wav.timed:
        status, seconds, nanoseconds = wav.gps_status, wav.gps_tow_s, wav.gps_tow_ns
    else:
        status = np.full(blocks, GPS_STATUS_NO_GPS, dtype=np.uint8)
        seconds = nanoseconds = np.zeros(blocks, dtype=np.int64)
    times_ns = block_times_ns(seconds, nanoseconds, status, rate_hz, host_ns, gps_utc_offset_s)
    return IQCapture(
        station_id=station_id,
        center_frequency_hz=name.frequency_hz,
        sample_rate_hz=rate_hz,
        samples=wav.samples,
        block_start_index=wav.block_start_index,
        block_time_ns=times_ns,
        block_gps_status=status,
        rssi_dbm=np.full(blocks, np.nan, dtype=np.float32),
        start_time=datetime.fromtimestamp(int(times_ns[0]) / NS_PER_S, tz=UTC),
        driver=DRIVER_NAME,
        driver_version=f"IQ WAV {source_file}".strip(),
        metadata={
            "source_file": source_file,
            "station": name.station,
            "nominal_sample_rate_hz": wav.nominal_sample_rate_hz,
            "gps_utc_offset_s": gps_utc_offset_s,
        },
    )


def _int16_iq(samples: npt.NDArray[np.complex64]) -> npt.NDArray[np.int16]:
    interleaved = samples.view(np.float32).astype(np.float64) * INT16_FULL_SCALE
    return np.clip(np.rint(interleaved), -32768, 32767).astype("<i2")


def encode_kiwi_wav(capture: IQCapture, gps_utc_offset_s: int = GPS_UTC_OFFSET_S) -> bytes:
    """The capture as kiwirecorder writes it: a ``kiwi`` and a ``data`` chunk per block.

    A capture without GPS time becomes a plain 2-channel WAV (IQ without time). The
    header holds the whole-number part of the sample rate, as kiwirecorder's does.
    Samples are quantised as the KiwiSDR sends them (1.0 = 32768), so a live capture
    round-trips exactly.
    """
    words = _int16_iq(capture.samples)
    rate_hz = int(capture.sample_rate_hz)
    fmt = _FMT.pack(WAVE_FORMAT_PCM, 2, rate_hz, rate_hz * IQ_PAIR_BYTES, IQ_PAIR_BYTES, 16)
    parts = [_CHUNK.pack(b"fmt ", len(fmt)), fmt]
    if capture.has_gps_time:
        seconds, nanoseconds = gps_time_of_week_from_utc_ns(capture.block_time_ns, gps_utc_offset_s)
        bounds = np.append(capture.block_start_index, len(capture.samples))
        for k in range(len(capture.block_start_index)):
            block = words[2 * bounds[k] : 2 * bounds[k + 1]].tobytes()
            status = int(capture.block_gps_status[k])
            parts += [
                _CHUNK.pack(b"kiwi", KIWI_CHUNK_BYTES),
                _KIWI.pack(status, 0, int(seconds[k]), int(nanoseconds[k])),
                _CHUNK.pack(b"data", len(block)),
                block,
            ]
    else:
        block = words.tobytes()
        parts += [_CHUNK.pack(b"data", len(block)), block]
    body = b"".join(parts)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body
