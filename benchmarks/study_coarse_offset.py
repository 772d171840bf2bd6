"""Study: why a 5 s TDOA window loses pairs a 2 s window keeps (the coarse carrier offset).

Renders the accuracy benchmark's scenarios (``bench_accuracy``'s draws: the same network,
realistic world and random stream, its known sessions rendered only to keep the stream
in step), correlates each with the service's pairs at two window lengths, and prints

* usable pairs per window and the scenarios where the longer one has fewer;
* every pair whose carrier offset differs by > 50 Hz between the windows, with the
  simulator's true offset (the converters' difference) and each window's quality;
* per window, the correlated pairs whose offset is > 100 Hz from that truth (beyond the
  fine search's reach: the coarse search was wrong, or the link too weak to tell).

``--dump FILE`` pickles those pairs' windows (both captures) for a closer look.

Run: PYTHONPATH=src python benchmarks/study_coarse_offset.py [--scenarios 60] [--seed 4]
[--windows 2 5]. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import pickle
import time
from typing import Any

import numpy as np
from bench_accuracy import (
    KNOWN_FIRST_START_NS,
    KNOWN_SNR_LEVELS_DB,
    hidden_network,
    make_scenarios,
)

import heimdall.localization.pairs as pairs_module
from heimdall.simulator.impairments import realistic_world
from heimdall.simulator.scenario import Modulation, Scenario, load_scenario
from heimdall.training.simulated import recorded_session

OFFSET_DISAGREEMENT_HZ = 50.0
#: Beyond the fine search's reach: the coarse offset was wrong.
WRONG_OFFSET_HZ = 100.0


def _true_offset_hz(scenario: Scenario, a_id: str, b_id: str) -> float:
    """Carrier of b minus carrier of a from the converters alone (the LOs add < 30 Hz)."""
    by_id = {r.id: r for r in scenario.receivers}
    return (
        by_id[a_id].impairments.converter.converter_offset_hz
        - by_id[b_id].impairments.converter.converter_offset_hz
    )


def _pairs_at(recordings: list[Any], window_s: float) -> dict[tuple[str, str], dict[str, Any]]:
    """Every pair the service correlates at ``window_s``: its offset, quality, usability
    and the two windows, keyed (other, partner)."""
    calls: list[tuple[Any, list[Any]]] = []
    found: dict[tuple[str, str], dict[str, Any]] = {}
    reference_lags = pairs_module.reference_lags
    make_pair = pairs_module._pair

    def recording_lags(reference: Any, partners: list[Any], max_lags_s: list[float]) -> Any:
        calls.append((reference.capture, partners))
        return reference_lags(reference, partners, max_lags_s)

    def recording_pair(other: Any, partner: Any, lag: Any) -> Any:
        result = make_pair(other, partner, lag)
        reference_capture, partners = calls[-1]
        index = sum(1 for key in found if found[key]["call"] == len(calls) - 1)
        found[(other.station.id, partner.station.id)] = {
            "call": len(calls) - 1,
            "offset_hz": None if isinstance(lag, str) else lag.frequency_offset_hz,
            "quality_db": None if isinstance(lag, str) else lag.quality_db,
            "usable": result.usable,
            "weaker_snr_db": min(other.snr_db, partner.snr_db),
            "a": reference_capture,
            "b": partners[index] if index < len(partners) else None,
        }
        return result

    pairs_module.reference_lags = recording_lags
    pairs_module._pair = recording_pair
    try:
        observations = pairs_module.tdoa_observations_from_recordings(recordings, window_s=window_s)
    finally:
        pairs_module.reference_lags = reference_lags
        pairs_module._pair = make_pair
    usable = sum(o.sigma_s < pairs_module.UNUSABLE_SIGMA_S for o in observations)
    for value in found.values():
        value["observations_usable"] = usable
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=60)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--known-sessions", type=int, default=40)
    parser.add_argument("--windows", type=float, nargs=2, default=(2.0, 5.0))
    parser.add_argument("--dump", default="")
    arguments = parser.parse_args()
    short_s, long_s = arguments.windows
    # Everything in the lag process's half would escape the patched functions above.
    pairs_module.MIN_PARTNERS_TO_SPLIT = 1_000
    started_s = time.perf_counter()
    rng = np.random.default_rng(arguments.seed)
    network = realistic_world(
        hidden_network(load_scenario(), rng), np.random.default_rng([arguments.seed, 15])
    )
    known = make_scenarios(
        network,
        arguments.known_sessions,
        rng,
        snr_levels_db=KNOWN_SNR_LEVELS_DB,
        modulation_weights={Modulation.nfm: 0.5, Modulation.wideband: 0.5},
        first_start_ns=KNOWN_FIRST_START_NS,
        seed_offset=1_000_000,
    )
    for case in known:  # rendered only to draw what the benchmark draws
        recorded_session(case.scenario, case.start_time_ns, rng)
    totals = {short_s: 0, long_s: 0}
    wrong = {short_s: 0, long_s: 0}
    wrong_usable = {short_s: 0, long_s: 0}
    snrs_db: dict[tuple[float, bool], list[float]] = {
        (w, off): [] for w in (short_s, long_s) for off in (False, True)
    }
    correlated = {short_s: 0, long_s: 0}
    worse = []
    dumped = []
    for index, case in enumerate(make_scenarios(network, arguments.scenarios, rng)):
        _, recordings = recorded_session(case.scenario, case.start_time_ns, rng)
        if case.modulation == "carrier":
            continue
        short = _pairs_at(recordings, short_s)
        long = _pairs_at(recordings, long_s)
        usable_short = next(iter(short.values()))["observations_usable"] if short else 0
        usable_long = next(iter(long.values()))["observations_usable"] if long else 0
        totals[short_s] += usable_short
        totals[long_s] += usable_long
        if usable_long < usable_short:
            worse.append(index)
        for window_s, found in ((short_s, short), (long_s, long)):
            for key, pair in found.items():
                if pair["offset_hz"] is not None:
                    correlated[window_s] += 1
                    truth_hz = _true_offset_hz(case.scenario, key[1], key[0])
                    off = abs(pair["offset_hz"] - truth_hz) > WRONG_OFFSET_HZ
                    wrong[window_s] += off
                    wrong_usable[window_s] += off and pair["usable"]
                    snrs_db[(window_s, off)].append(pair["weaker_snr_db"])
        for key in sorted(set(short) & set(long)):
            s, g = short[key], long[key]
            if s["offset_hz"] is None or g["offset_hz"] is None:
                continue
            if abs(s["offset_hz"] - g["offset_hz"]) > OFFSET_DISAGREEMENT_HZ:
                truth_hz = _true_offset_hz(case.scenario, key[1], key[0])
                print(
                    f"scenario {index:3d} {case.modulation:8s} {case.snr_db:4.0f} dB "
                    f"{key[0]}-{key[1]}: true {truth_hz:7.0f} Hz; "
                    f"{short_s:g} s {s['offset_hz']:7.0f} Hz {s['quality_db']:5.1f} dB "
                    f"{'usable' if s['usable'] else 'unusable'}; "
                    f"{long_s:g} s {g['offset_hz']:7.0f} Hz {g['quality_db']:5.1f} dB "
                    f"{'usable' if g['usable'] else 'unusable'}",
                    flush=True,
                )
                dumped.append(
                    {
                        "scenario": index,
                        "pair": key,
                        "modulation": case.modulation,
                        "truth_hz": truth_hz,
                        "short": {k: v for k, v in s.items() if k != "call"},
                        "long": {k: v for k, v in g.items() if k != "call"},
                    }
                )
    print(
        f"usable pairs: {totals[short_s]} at {short_s:g} s, {totals[long_s]} at {long_s:g} s; "
        f"{len(worse)} scenarios with fewer at {long_s:g} s: {worse}"
    )
    for window_s in (short_s, long_s):
        print(
            f"{window_s:g} s: {wrong[window_s]} of {correlated[window_s]} correlated pairs "
            f"with an offset > {WRONG_OFFSET_HZ:g} Hz from the converters' difference "
            f"({wrong_usable[window_s]} of them usable); weaker receiver's SNR, median: "
            f"{np.median(snrs_db[(window_s, True)]):.1f} dB for those, "
            f"{np.median(snrs_db[(window_s, False)]):.1f} dB for the others"
        )
    print(f"(run time {time.perf_counter() - started_s:.0f} s)")
    if arguments.dump:
        with open(arguments.dump, "wb") as file:
            pickle.dump(dumped, file)


if __name__ == "__main__":
    main()
