"""CPU cost of the KiwiSDR client per 12 kHz IQ stream.

The simulator (all seven receivers) runs in a child process started with
multiprocessing, so only the client's work is counted here: this process
records N streams at once with ``heimdall.receivers.kiwisdr.record_iq`` and
reports its own CPU time (``time.process_time``: user + system, all threads)
per stream-second of IQ recorded. Loopback only; bounded in count and time.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_client.py [--duration-s 4] [--streams 7 14]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import time
from multiprocessing.queues import Queue

from heimdall.receivers.capture import IQCapture
from heimdall.receivers.kiwisdr import StationEndpoint, record_iq
from heimdall.simulator.scenario import DEFAULT_SCENARIO_FILE, load_scenario

#: Enough channels per receiver for the largest stream count asked for.
CHANNELS_PER_RECEIVER = 16
MAX_STREAMS = 7 * CHANNELS_PER_RECEIVER
MAX_DURATION_S = 30.0
STARTUP_TIMEOUT_S = 30.0


def serve_simulator(
    ports_out: Queue[dict[str, int]], stop: multiprocessing.synchronize.Event
) -> None:
    """Child process: the simulated network on ephemeral loopback ports until ``stop``."""
    from heimdall.simulator.network import running_network

    scenario = load_scenario(DEFAULT_SCENARIO_FILE)
    receivers = [
        r.model_copy(update={"rx_chans": CHANNELS_PER_RECEIVER}) for r in scenario.receivers
    ]
    scenario = scenario.model_copy(update={"receivers": receivers})

    async def main() -> None:
        async with running_network(scenario, ephemeral=True) as network:
            ports_out.put(dict(network.ports))
            # Wait for the cross-process event in a thread: the simulator's loop keeps running.
            await asyncio.to_thread(stop.wait)

    asyncio.run(main())


async def record_streams(
    ports: dict[str, int], stream_count: int, frequency_hz: float, duration_s: float
) -> list[IQCapture]:
    """``stream_count`` simultaneous recordings, spread round-robin over the receivers."""
    receiver_ids = sorted(ports)
    stations = [receiver_ids[index % len(receiver_ids)] for index in range(stream_count)]
    endpoints = [StationEndpoint(rx, f"ws://127.0.0.1:{ports[rx]}") for rx in stations]
    return list(
        await asyncio.gather(
            *(
                record_iq(endpoint, frequency_hz=frequency_hz, duration_s=duration_s)
                for endpoint in endpoints
            )
        )
    )


def measure(ports: dict[str, int], stream_count: int, duration_s: float) -> None:
    frequency_hz = load_scenario(DEFAULT_SCENARIO_FILE).transmitter.frequency_hz
    cpu_start_s, wall_start_s = time.process_time(), time.perf_counter()
    captures = asyncio.run(record_streams(ports, stream_count, frequency_hz, duration_s))
    cpu_s = time.process_time() - cpu_start_s
    wall_s = time.perf_counter() - wall_start_s
    stream_seconds = sum(capture.duration_s for capture in captures)
    print(
        f"{stream_count:3d} streams x {duration_s:g} s: client CPU {cpu_s:.2f} s in {wall_s:.2f} s"
        f" wall -> {1e3 * cpu_s / stream_seconds:.1f} ms CPU per stream-second"
        f" ({100 * cpu_s / stream_seconds:.2f} % of a core per stream)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=4.0)
    parser.add_argument("--streams", type=int, nargs="+", default=[7, 14])
    args = parser.parse_args()
    if not 0 < args.duration_s <= MAX_DURATION_S:
        parser.error(f"--duration-s must be in (0, {MAX_DURATION_S:g}]")
    if any(not 0 < count <= MAX_STREAMS for count in args.streams):
        parser.error(f"--streams must each be in 1..{MAX_STREAMS}")

    context = multiprocessing.get_context("spawn")
    ports_queue: Queue[dict[str, int]] = context.Queue()
    stop = context.Event()
    simulator = context.Process(target=serve_simulator, args=(ports_queue, stop), daemon=True)
    simulator.start()
    try:
        ports = ports_queue.get(timeout=STARTUP_TIMEOUT_S)
        for stream_count in args.streams:
            measure(ports, stream_count, args.duration_s)
    finally:
        stop.set()
        simulator.join(timeout=10.0)
        if simulator.is_alive():
            simulator.terminate()  # our own child only
            simulator.join()


if __name__ == "__main__":
    main()
