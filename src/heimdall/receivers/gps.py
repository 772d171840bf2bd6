"""GPS time of week -> absolute UTC, for receivers that stamp blocks in GPS time.

A KiwiSDR stamps each sample block with GPS *time of week* (seconds and
nanoseconds since the start of the current GPS week). The week number itself is
not sent, so it comes from the host clock: of all instants with that time of
week, the one nearest to the host clock is the right one. That choice also
handles a recording that straddles the Sunday 00:00 GPS week boundary, and is
right as long as the host clock is within half a week (3.5 days) of the truth.

GPS time runs ahead of UTC by the accumulated leap seconds (18 s since
2017-01-01). The offset is a parameter: a future leap second only changes the
caller's setting.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from heimdall.core.constants import NS_PER_S

#: 1980-01-06T00:00:00 UTC, the GPS epoch, in seconds since the Unix epoch.
GPS_EPOCH_UNIX_S = 315_964_800
SECONDS_PER_WEEK = 604_800
#: GPS - UTC in seconds, valid since 2017-01-01 (no leap second announced since).
GPS_UTC_OFFSET_S = 18

_NS_PER_WEEK = SECONDS_PER_WEEK * NS_PER_S


def gps_ns_from_utc_ns(utc_ns: int, gps_utc_offset_s: int = GPS_UTC_OFFSET_S) -> int:
    """Nanoseconds since the GPS epoch (GPS time scale) for a UTC Unix time in ns.

    >>> gps_ns_from_utc_ns(315_964_800 * 10**9, gps_utc_offset_s=0)
    0
    """
    return utc_ns - GPS_EPOCH_UNIX_S * NS_PER_S + gps_utc_offset_s * NS_PER_S


def gps_week_from_utc_ns(utc_ns: int, gps_utc_offset_s: int = GPS_UTC_OFFSET_S) -> int:
    """GPS week number (not wrapped at 1024) containing the UTC Unix time ``utc_ns``.

    >>> gps_week_from_utc_ns(1_700_000_000 * 10**9)  # 2023-11-14
    2288
    """
    return gps_ns_from_utc_ns(utc_ns, gps_utc_offset_s) // _NS_PER_WEEK


def gps_time_of_week_from_utc_ns(
    utc_ns: npt.ArrayLike, gps_utc_offset_s: int = GPS_UTC_OFFSET_S
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(GPS seconds of week, nanoseconds) of UTC Unix instants in ns: what a receiver stamps.

    The inverse of :func:`gps_time_of_week_to_utc_ns` (the week number is dropped).

    >>> seconds, nanoseconds = gps_time_of_week_from_utc_ns(1_700_000_000 * 10**9 + 5)
    >>> int(seconds[0]), int(nanoseconds[0])
    (252818, 5)
    """
    utc = np.atleast_1d(np.asarray(utc_ns, dtype=np.int64))
    gps_ns = utc - GPS_EPOCH_UNIX_S * NS_PER_S + gps_utc_offset_s * NS_PER_S
    seconds, nanoseconds = np.divmod(gps_ns % _NS_PER_WEEK, NS_PER_S)
    return seconds.astype(np.int64), nanoseconds.astype(np.int64)


def gps_time_of_week_to_utc_ns(
    time_of_week_s: npt.ArrayLike,
    time_of_week_ns: npt.ArrayLike,
    host_utc_ns: int,
    gps_utc_offset_s: int = GPS_UTC_OFFSET_S,
) -> npt.NDArray[np.int64]:
    """Absolute UTC Unix time in ns for GPS time-of-week stamps, week taken from the host.

    Args:
        time_of_week_s: whole GPS seconds of week (0..604799), scalar or array.
        time_of_week_ns: nanoseconds within that second, same shape.
        host_utc_ns: the host's UTC clock (Unix ns) around the time of the stamps;
            must be within 3.5 days of the truth.
        gps_utc_offset_s: GPS - UTC leap seconds.

    Returns:
        int64 array, UTC nanoseconds since the Unix epoch.

    Each stamp is placed in the GPS week that puts it nearest to the host clock,
    so stamps just before Sunday 00:00 GPS read against a host clock just after it
    land in the previous week, and the other way round.

    >>> host = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z = GPS week 2288, tow 252818 s
    >>> int(gps_time_of_week_to_utc_ns(252_818, 5, host)[0])
    1700000000000000005
    """
    tow_ns = np.asarray(time_of_week_s, dtype=np.int64) * NS_PER_S + np.asarray(
        time_of_week_ns, dtype=np.int64
    )
    host_gps_ns = gps_ns_from_utc_ns(host_utc_ns, gps_utc_offset_s)
    host_week = host_gps_ns // _NS_PER_WEEK
    gps_ns = host_week * _NS_PER_WEEK + tow_ns
    # Move each stamp by whole weeks to the instant nearest the host clock.
    offset_from_host_ns = gps_ns - host_gps_ns
    gps_ns = gps_ns - np.round(offset_from_host_ns / _NS_PER_WEEK).astype(np.int64) * _NS_PER_WEEK
    utc_ns = gps_ns + GPS_EPOCH_UNIX_S * NS_PER_S - gps_utc_offset_s * NS_PER_S
    return np.atleast_1d(utc_ns).astype(np.int64)
