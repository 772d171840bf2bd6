"""Half of a large star's pairs in the lag process: the same lags; a lag process that is
busy, fails or dies costs time, not the localization; it never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from heimdall.core.call_process import CallProcessUnavailable
from heimdall.dsp.signals import (
    broadband_burst,
    complex_white_noise,
    fractional_delay,
    make_capture,
)
from heimdall.dsp.tdoa import tdoa_lags
from heimdall.localization import Receiver, TdoaObservation, lag_process, pairs
from heimdall.localization.pairs import TimedRecording, tdoa_observations_from_recordings
from tests.support.asgi import service_client

SAMPLE_RATE_HZ = 12_000.0
DELAYS = {"a": 0.0, "b": 0.35, "c": -0.2, "d": 0.7, "e": 1.3, "f": -0.9, "g": 0.1}


def _seven_receivers() -> list[TimedRecording]:
    rng = np.random.default_rng(11)
    samples = 512 * 47
    burst = broadband_burst(samples + 2_000, rng)
    start_ns = 1_700_000_000 * 10**9
    return [
        TimedRecording(
            station=Receiver(
                id=rid, latitude=45.0 + 0.03 * k, longitude=7.0 + 0.05 * (k % 3), altitude_m=0.0
            ),
            capture=make_capture(
                (
                    fractional_delay(burst, delay)[1_000:][:samples]
                    + complex_white_noise(0.01, samples, rng)
                ).astype(np.complex64),
                SAMPLE_RATE_HZ,
                station_id=rid,
                start_time_ns=start_ns,
            ),
            snr_db=30.0 - k,
            occupied_bandwidth_hz=5_000.0,
        )
        for k, (rid, delay) in enumerate(DELAYS.items())
    ]


def _lags_and_sigmas_s(observations: list[TdoaObservation]) -> list[tuple[float, float]]:
    return [(o.time_difference_s, o.sigma_s) for o in observations]


class Counting:
    """The real lag process, with what is sent to it counted."""

    def __init__(self) -> None:
        self.partners_sent = 0

    def send(self, function, reference, partners):  # type: ignore[no-untyped-def]
        self.partners_sent += len(partners)
        return lag_process.lag_process().send(function, reference, partners)


def test_half_the_star_in_the_lag_process_gives_the_same_lags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recordings = _seven_receivers()
    counting = Counting()
    monkeypatch.setattr(pairs, "lag_process", lambda: counting)
    split = tdoa_observations_from_recordings(recordings, window_s=2.0)
    assert counting.partners_sent == 3  # of the reference's 6 partners
    monkeypatch.setattr(pairs, "MIN_PARTNERS_TO_SPLIT", 100)
    alone = tdoa_observations_from_recordings(recordings, window_s=2.0)
    assert counting.partners_sent == 3
    assert [(p.receiver_i, p.receiver_j) for p in split] == [(rid, "a") for rid in "bcdefg"]
    # Batches of 3 and of 6 rows may round an FFT row differently: float rounding only.
    np.testing.assert_allclose(_lags_and_sigmas_s(split), _lags_and_sigmas_s(alone), atol=1e-10)
    for pair in split:
        expected_s = DELAYS[pair.receiver_i] / SAMPLE_RATE_HZ
        assert pair.time_difference_s == pytest.approx(expected_s, abs=0.02 / SAMPLE_RATE_HZ)


def test_a_lag_process_that_dies_costs_time_not_the_pairs() -> None:
    recordings = _seven_receivers()
    expected = tdoa_observations_from_recordings(recordings, window_s=2.0)
    child = lag_process.lag_process()
    os.kill(child.pid, signal.SIGKILL)  # mid-way between two localizations
    deadline = time.monotonic() + 10
    while child.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(CallProcessUnavailable):
        child.send(abs, -1)()
    got = tdoa_observations_from_recordings(recordings, window_s=2.0)
    np.testing.assert_allclose(_lags_and_sigmas_s(got), _lags_and_sigmas_s(expected), atol=1e-10)
    # The next localization has a new one, and its answers come back.
    assert lag_process.lag_process().pid != child.pid
    assert lag_process.lag_process().send(abs, -2)() == 2


def test_an_error_in_the_lag_process_is_raised_to_the_caller() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        lag_process.lag_process().send(int, "not a number")()
    assert lag_process.lag_process().send(int, "7")() == 7  # still serving


def test_a_busy_lag_process_leaves_the_work_to_the_caller() -> None:
    child = lag_process.lag_process()
    first = child.send(time.sleep, 0.2)
    with pytest.raises(CallProcessUnavailable, match="busy"):
        child.send(abs, -1)
    assert first() is None
    assert child.send(abs, -3)() == 3


def test_a_call_that_does_not_pickle_leaves_the_lag_process_free() -> None:
    child = lag_process.lag_process()
    with pytest.raises(Exception, match="pickle"):
        child.send(lambda: 1)
    assert child.send(abs, -5)() == 5  # not "busy"


def _fails_in_the_caller(*args, **kwargs):  # type: ignore[no-untyped-def]
    """``tdoa_lags`` in the lag process (it is sent by reference), an error here."""
    main = sys.modules["__main__"]
    if getattr(main.__spec__, "name", None) != "heimdall.core.call_process":
        raise RuntimeError("the local half failed")
    return tdoa_lags(*args, **kwargs)


def test_a_failing_local_half_still_reads_the_lag_process_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recordings = _seven_receivers()
    monkeypatch.setattr(pairs, "tdoa_lags", _fails_in_the_caller)
    with pytest.raises(RuntimeError, match="local half"):
        tdoa_observations_from_recordings(recordings, window_s=2.0)
    monkeypatch.undo()
    assert lag_process.lag_process().send(abs, -6)() == 6  # not "busy"


def test_the_lag_process_ends_with_the_process_it_serves() -> None:
    # A worker child killed outright never stops it: its end of the pipe closes.
    code = (
        "import os\n"
        "from heimdall.localization.lag_process import lag_process\n"
        "child = lag_process()\n"
        "assert child.send(abs, -1)() == 1\n"
        "print(child.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    child = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose: init reaps it
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_the_inference_service_keeps_a_lag_process_while_it_runs() -> None:
    lag_process.stop_lag_process()
    assert _lag_children() == []
    async with service_client("inference"):
        (started,) = _lag_children()  # its start-up began it, before any localization
        assert lag_process.lag_process().pid == started
        assert lag_process.lag_process().send(abs, -4)() == 4
    assert not _alive(started)


def _lag_children() -> list[int]:
    """This process's children running ``heimdall.core.call_process``."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().split(") ", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"call_process" in command:
            children.append(int(entry))
    return children
