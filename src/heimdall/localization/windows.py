"""Cutting GPS-timed recordings into the windows a TDOA pair correlates.

Whole blocks only (each block carries its own GPS stamp), at lengths whose FFT is fast,
and cut so that every partner of the reference covers the reference's window: then every
pair correlates the same prepared cut of the reference (``dsp.tdoa.PreparedCapture``).
"""

from __future__ import annotations

import math
from dataclasses import replace as dataclass_replace

import numpy as np
import scipy.fft

from heimdall.dsp.tdoa import capture_start_time_ns
from heimdall.receivers.capture import IQCapture


def _fast_block_count(blocks: int, samples_per_block: int) -> int:
    """The first block count from ``blocks`` on whose sample count is a fast FFT length."""
    while scipy.fft.next_fast_len(blocks * samples_per_block) != blocks * samples_per_block:
        blocks += 1
    return blocks


def central_window(capture: IQCapture, duration_s: float) -> IQCapture:
    """The whole blocks of the capture's central ``duration_s`` (all of it if shorter).

    The block count is rounded up to one whose length factors into small primes (2 s
    at 12 kHz: 48 blocks, not 47 = a prime), the length at which a partner far off in
    sample rate is resampled (``dsp.tdoa.resample_to_rate``).
    """
    blocks = len(capture.block_start_index)
    block_length = capture.samples_per_block
    wanted = _fast_block_count(
        max(1, math.ceil(duration_s * capture.sample_rate_hz / block_length)), block_length
    )
    if wanted >= blocks:
        return capture
    return _blocks(capture, (blocks - wanted) // 2, wanted)


#: A partner covering less than this share of the reference's central window does not
#: shrink the span the others share (it is correlated over its own overlap instead):
#: one recording started late, or at another time, must not cut every pair short.
COMMON_SPAN_MIN_SHARE = 0.9


def _fast_block_count_below(blocks: int, samples_per_block: int) -> int:
    """The largest block count up to ``blocks`` whose sample count is a fast FFT length."""
    while blocks > 1 and scipy.fft.next_fast_len(blocks * samples_per_block) != (
        blocks * samples_per_block
    ):
        blocks -= 1
    return blocks


def common_window(reference: IQCapture, partners: list[IQCapture], duration_s: float) -> IQCapture:
    """``central_window`` of the reference, cut to the whole blocks every partner covers.

    The receivers start up to tens of milliseconds apart, and a 2 s window is a whole 2 s
    capture: each partner would overlap a different span of the reference, and each pair
    would cut, transform and carrier-fit the reference again. Cut to the span they all
    cover, every pair correlates this one window whole (``PreparedCapture`` shares its
    FFTs, drift moments and carrier fit). It costs the pairs the late starts' share of
    the overlap (~2 % of 2 s). Partners covering under ``COMMON_SPAN_MIN_SHARE`` of the
    central window keep their own (shorter) overlap and do not shrink the others'.
    The block count is rounded down to a fast FFT length, as ``central_window`` rounds up.
    """
    window = central_window(reference, duration_s)
    reference_ns = int(window.block_time_ns[0])
    window_start_ns = capture_start_time_ns(window, reference_ns)
    window_end_ns = window_start_ns + len(window.samples) * 1e9 / window.sample_rate_hz
    first_ns, last_ns = window_start_ns, window_end_ns
    for partner in partners:
        try:
            start_ns = capture_start_time_ns(partner, reference_ns)
        except ValueError:  # no GPS time: its own pair says why
            continue
        end_ns = start_ns + len(partner.samples) * 1e9 / partner.sample_rate_hz
        covered_ns = min(end_ns, window_end_ns) - max(start_ns, window_start_ns)
        if covered_ns >= COMMON_SPAN_MIN_SHARE * (window_end_ns - window_start_ns):
            first_ns, last_ns = max(first_ns, start_ns), min(last_ns, end_ns)
    if first_ns <= window_start_ns and last_ns >= window_end_ns:
        return window
    # Window blocks whose every sample lies in [first_ns, last_ns), one sample to spare
    # each side for the partners' sub-sample start offsets and clock rates.
    period_ns = 1e9 / window.sample_rate_hz
    sample_starts_ns = window_start_ns + window.block_start_index * period_ns
    sample_ends_ns = np.append(sample_starts_ns[1:], window_end_ns)
    inside = np.flatnonzero(
        (sample_starts_ns >= first_ns + period_ns) & (sample_ends_ns <= last_ns - period_ns)
    )
    if len(inside) == 0:
        return window
    count = _fast_block_count_below(len(inside), window.samples_per_block)
    # Centred in the covered blocks, which are consecutive.
    return _blocks(window, int(inside[0]) + (len(inside) - count) // 2, count)


def window_covering(capture: IQCapture, window: IQCapture) -> IQCapture:
    """The whole blocks of ``capture`` that cover ``window``'s GPS time span, plus one each side.

    Cut this way, every partner of the reference window overlaps all of it, so
    ``tdoa_lag`` correlates the same cut of the reference in every pair (and reuses its
    FFTs and carrier fit). The spare blocks absorb the partners' start offsets and
    rate differences; the count is rounded up to a fast FFT length.
    """
    reference_ns = int(window.block_time_ns[0])
    offset_ns = capture_start_time_ns(capture, reference_ns) - capture_start_time_ns(
        window, reference_ns
    )
    block_length = capture.samples_per_block
    block_s = block_length / capture.sample_rate_hz
    # Block k of capture starts offset + k * block_s after the window's first sample.
    first = max(0, math.floor(-offset_ns / 1e9 / block_s) - 1)
    window_end_s = len(window.samples) / window.sample_rate_hz
    stop = math.ceil((window_end_s - offset_ns / 1e9) / block_s) + 1
    blocks = len(capture.block_start_index)
    wanted = _fast_block_count(max(1, stop - first), block_length)
    if wanted >= blocks:
        return capture
    first = min(first, blocks - wanted)
    return _blocks(capture, first, wanted)


def _blocks(capture: IQCapture, first: int, count: int) -> IQCapture:
    """Blocks ``first`` .. ``first + count`` of the capture, with their metadata."""
    blocks = len(capture.block_start_index)
    last = first + count
    start = int(capture.block_start_index[first])
    stop = int(capture.block_start_index[last]) if last < blocks else len(capture.samples)
    return dataclass_replace(
        capture,
        samples=capture.samples[start:stop],
        block_start_index=capture.block_start_index[first:last] - start,
        block_time_ns=capture.block_time_ns[first:last],
        block_gps_status=capture.block_gps_status[first:last],
        rssi_dbm=capture.rssi_dbm[first:last],
    )
