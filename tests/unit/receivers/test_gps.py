"""GPS time of week -> UTC: known answers and the week rollover."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heimdall.receivers.gps import (
    SECONDS_PER_WEEK,
    gps_time_of_week_to_utc_ns,
    gps_week_from_utc_ns,
)

NS = 1_000_000_000


def utc_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * NS


def test_gps_epoch_is_week_zero() -> None:
    # 1980-01-06 00:00:00 UTC with no leap seconds yet is GPS week 0, tow 0.
    assert gps_week_from_utc_ns(utc_ns(1980, 1, 6), gps_utc_offset_s=0) == 0
    assert int(gps_time_of_week_to_utc_ns(0, 0, utc_ns(1980, 1, 7), 0)[0]) == utc_ns(1980, 1, 6)


def test_known_week_numbers() -> None:
    # The 2019-04-06 rollover of the 10-bit week counter was the end of week 2047.
    assert gps_week_from_utc_ns(utc_ns(2019, 4, 7, 12)) == 2048
    assert gps_week_from_utc_ns(utc_ns(2024, 1, 1)) == 2295


def test_known_answer_with_leap_seconds() -> None:
    # 2024-01-01T00:00:00Z = GPS week 2295; the week began Sunday 2023-12-31 00:00:00 GPS,
    # which is 2023-12-30T23:59:42Z. New year is 18 s + 1 day into the week in GPS time.
    tow_s = 24 * 3600 + 18
    host = utc_ns(2024, 1, 1, 0, 5)
    assert int(gps_time_of_week_to_utc_ns(tow_s, 250, host)[0]) == utc_ns(2024, 1, 1) + 250


@pytest.mark.parametrize("host_offset_s", [-3600, -2, 2, 3600, 3 * 86400])
def test_week_rollover_either_side_of_the_host_clock(host_offset_s: int) -> None:
    # Stamps from the last second of week 2294 and the first of week 2295.
    boundary = utc_ns(2023, 12, 30, 23, 59, 42)  # start of GPS week 2295 in UTC
    tow_s = np.array([SECONDS_PER_WEEK - 1, 0, 1])
    tow_ns = np.array([500_000_000, 0, 0])
    times = gps_time_of_week_to_utc_ns(tow_s, tow_ns, boundary + host_offset_s * NS)
    expected = [boundary - NS // 2, boundary, boundary + NS]
    np.testing.assert_array_equal(times, expected)


@given(
    truth_s=st.integers(min_value=1_300_000_000, max_value=2_000_000_000),
    truth_ns=st.integers(min_value=0, max_value=NS - 1),
    host_error_s=st.integers(min_value=-3 * 86400, max_value=3 * 86400),
)
def test_round_trip_within_half_a_week_of_host_error(
    truth_s: int, truth_ns: int, host_error_s: int
) -> None:
    truth = truth_s * NS + truth_ns
    gps_s = truth_s - 315_964_800 + 18
    tow_s = gps_s % SECONDS_PER_WEEK
    result = gps_time_of_week_to_utc_ns(tow_s, truth_ns, truth + host_error_s * NS)
    assert result.dtype == np.int64
    assert int(result[0]) == truth
