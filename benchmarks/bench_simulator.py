"""How many simultaneous 12 kHz IQ streams one simulator process sustains in real time.

The simulator runs in this process (all seven receivers, 16 channels each); the
clients run in a child process (one asyncio loop, raw websockets) so their
parsing does not steal the simulator's event loop. For each stream count the
clients complete the KiwiSDR set-up, then count frames for a fixed window. A
level is "sustained" when every stream received at least 97 % of the frames
real time asks for (fs / 512 per second) and no frame arrived more than 0.5 s
after the end of the block it carries. Loopback only; bounded in count and time.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_simulator.py [--window-s 4] [--max-streams 112]

Also reports the cost of the pure model, render_receiver_iq, per 512-sample block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from heimdall.simulator.network import network_in_thread
from heimdall.simulator.physics import render_receiver_iq
from heimdall.simulator.scenario import load_scenario

CHANNELS_PER_RECEIVER = 16
GPS_UTC_OFFSET_S = 18
GPS_EPOCH_UNIX_S = 315_964_800
MAX_LATENESS_S = 0.5
MIN_FRAME_RATIO = 0.97


async def _one_stream(url: str, freq_khz: float, window_s: float, results: list[dict]) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        await ws.send("SET auth t=kiwi p=")
        for command in (
            "SET AR OK in=12000 out=44100",
            f"SET mod=iq low_cut=-5000 high_cut=5000 freq={freq_khz:.3f}",
            "SET agc=0 hang=0 thresh=-100 slope=6 decay=1000 manGain=50",
            "SET keepalive",
        ):
            await ws.send(command)
        sample_rate_hz = 0.0
        frames = 0
        worst_lateness_s = 0.0
        started: float | None = None
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if frame[:3] == b"MSG" and b"sample_rate=" in frame:
                sample_rate_hz = float(frame.split(b"sample_rate=")[1])
            if frame[:3] != b"SND":
                continue
            now = time.time()
            if started is None:
                started = now
            elif now - started > window_s:
                break
            frames += 1
            gps_s = (
                int.from_bytes(frame[12:16], "little")
                + int.from_bytes(frame[16:20], "little") * 1e-9
            )
            now_gps_s = (now + GPS_UTC_OFFSET_S - GPS_EPOCH_UNIX_S) % 604_800
            block_end_s = gps_s + 512 / (sample_rate_hz or 12000.0)
            worst_lateness_s = max(worst_lateness_s, now_gps_s - block_end_s)
            if frames % 20 == 0:
                await ws.send("SET keepalive")
        results.append(
            {
                "frames": frames,
                "expected": window_s * (sample_rate_hz or 12000.0) / 512,
                "lateness_s": worst_lateness_s,
            }
        )


async def _client_main(urls: list[str], freq_khz: float, window_s: float) -> None:
    results: list[dict] = []
    await asyncio.gather(*(_one_stream(url, freq_khz, window_s, results) for url in urls))
    print(json.dumps(results))


def _measure_level(urls: list[str], freq_khz: float, window_s: float) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, __file__, "--client", json.dumps(urls), str(freq_khz), str(window_s)],
        capture_output=True,
        text=True,
        timeout=window_s + 60,
        check=True,
    )
    results = json.loads(child.stdout)
    ratios = [r["frames"] / r["expected"] for r in results]
    return {
        "streams": len(results),
        "min_frame_ratio": min(ratios),
        "worst_lateness_s": max(r["lateness_s"] for r in results),
    }


def bench_render() -> float:
    scenario = load_scenario()
    start_ns = time.time_ns()
    blocks = 400
    began = time.perf_counter()
    for index in range(blocks):
        render_receiver_iq(scenario, "torino", start_ns + index * 42_666_000, 512)
    return (time.perf_counter() - began) / blocks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window-s", type=float, default=4.0)
    parser.add_argument("--max-streams", type=int, default=7 * CHANNELS_PER_RECEIVER)
    args = parser.parse_args()

    per_block_s = bench_render()
    print(f"render_receiver_iq: {per_block_s * 1e3:.3f} ms per 512-sample block (wideband)")
    print(f"  -> one core could render {512 / 12_000 / per_block_s:.0f} streams in real time")

    scenario = load_scenario()
    wide = [rx.model_copy(update={"rx_chans": CHANNELS_PER_RECEIVER}) for rx in scenario.receivers]
    scenario = scenario.model_copy(update={"receivers": wide})
    freq_khz = scenario.transmitter.frequency_hz / 1e3
    best = 0
    with network_in_thread(scenario, ephemeral=True) as network:
        base_urls = [network.url(rx.id) for rx in scenario.receivers]
        count = 8
        while count <= args.max_streams:
            urls = [f"{base_urls[i % len(base_urls)]}/{i}/SND" for i in range(count)]
            level = _measure_level(urls, freq_khz, args.window_s)
            sustained = (
                level["min_frame_ratio"] >= MIN_FRAME_RATIO
                and level["worst_lateness_s"] <= MAX_LATENESS_S
            )
            print(
                f"{count:4d} streams: min frames/expected {level['min_frame_ratio']:.3f}, "
                f"worst lateness {level['worst_lateness_s'] * 1e3:7.1f} ms "
                f"-> {'sustained' if sustained else 'NOT sustained'}"
            )
            if not sustained:
                break
            best = count
            # Steps of 1.5x: fine enough to locate the limit, few enough to stay short.
            count = min(count * 3 // 2, args.max_streams) if count < args.max_streams else count + 1
    print(
        f"simultaneous 12 kHz IQ streams sustained in real time: {best}"
        f"{' (the configured maximum)' if best == args.max_streams else ''}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        asyncio.run(_client_main(json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
    else:
        main()
