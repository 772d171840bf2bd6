"""Run every simulated receiver (one port each) and the control API in one asyncio process.

Three ways in:

* ``running_network(...)`` — async context manager, inside the caller's event loop
  (tests use ``ephemeral=True`` to get free ports);
* ``network_in_thread(...)`` — the same in a background thread with its own loop,
  for synchronous code;
* ``run_network(...)`` — blocking, for the ``heimdall sim`` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from websockets.asyncio.server import Server, serve

from heimdall.simulator.control import create_control_app
from heimdall.simulator.openwebrx_server import OpenWebRXReceiverServer
from heimdall.simulator.scenario import DEFAULT_SCENARIO_FILE, Scenario, load_scenario
from heimdall.simulator.server import KiwiReceiverServer, ServerOptions, SimulationState

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_CONTROL_PORT = 8070
# Clients only send short text commands; anything bigger is not a KiwiSDR client.
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024
HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class RunningNetwork:
    """Where a running simulator listens, and its live state."""

    state: SimulationState
    host: str
    ports: dict[str, int]
    control_port: int | None

    def url(self, receiver_id: str) -> str:
        """The address a registry gives for the receiver (its protocol's scheme)."""
        scheme = "http" if self.state.receiver(receiver_id).protocol == "openwebrx" else "ws"
        return f"{scheme}://{self.host}:{self.ports[receiver_id]}"

    @property
    def control_url(self) -> str | None:
        if self.control_port is None:
            return None
        return f"http://{self.host}:{self.control_port}"


def _resolve_ports(
    scenario: Scenario,
    ports: Mapping[str, int] | None,
    base_port: int | None,
    ephemeral: bool,
) -> dict[str, int]:
    resolved = {}
    for index, receiver in enumerate(scenario.receivers):
        if ephemeral:
            port = 0
        elif ports is not None and receiver.id in ports:
            port = ports[receiver.id]
        elif base_port is not None:
            port = base_port + index
        elif receiver.port is not None:
            port = receiver.port
        else:
            raise ValueError(f"receiver {receiver.id!r} has no port; give base_port or ports")
        resolved[receiver.id] = port
    return resolved


async def _start_control_api(
    state: SimulationState, host: str, port: int, receiver_ports: dict[str, int]
) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    app = create_control_app(state, receiver_ports)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise the bind error
        await asyncio.sleep(0.01)
    bound_port = int(server.servers[0].sockets[0].getsockname()[1])
    return server, task, bound_port


@contextlib.asynccontextmanager
async def running_network(
    scenario: Scenario,
    host: str = DEFAULT_HOST,
    *,
    ports: Mapping[str, int] | None = None,
    base_port: int | None = None,
    control_port: int | None = None,
    options: ServerOptions | None = None,
    ephemeral: bool = False,
) -> AsyncIterator[RunningNetwork]:
    """Serve the scenario's receivers (and the control API if control_port is given).

    Ports: ``ports`` per receiver id, else ``base_port + index``, else the
    registry's port; ``ephemeral=True`` lets the OS pick free ports (control too,
    when control_port is 0).
    """
    state = SimulationState(scenario=scenario, options=options or ServerOptions())
    wanted = _resolve_ports(scenario, ports, base_port, ephemeral)
    servers: list[Server] = []
    bound: dict[str, int] = {}
    control: tuple[uvicorn.Server, asyncio.Task[None], int] | None = None
    try:
        for receiver_id, port in wanted.items():
            receiver_server: KiwiReceiverServer | OpenWebRXReceiverServer
            if scenario.receiver(receiver_id).protocol == "openwebrx":
                receiver_server = OpenWebRXReceiverServer(state, receiver_id)
            else:
                receiver_server = KiwiReceiverServer(state, receiver_id)
            server = await serve(
                receiver_server.handle,
                host,
                port,
                process_request=receiver_server.process_request,
                open_timeout=HANDSHAKE_TIMEOUT_S,
                ping_interval=None,  # a KiwiSDR relies on the client's keepalives
                max_size=MAX_CLIENT_MESSAGE_BYTES,
                compression=None,
            )
            servers.append(server)
            bound[receiver_id] = int(next(iter(server.sockets)).getsockname()[1])
        if control_port is not None:
            control = await _start_control_api(state, host, control_port, bound)
        yield RunningNetwork(
            state=state,
            host=host,
            ports=bound,
            control_port=control[2] if control is not None else None,
        )
    finally:
        state.shutting_down.set()
        if control is not None:
            control[0].should_exit = True
            await control[1]
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()


@contextlib.contextmanager
def network_in_thread(scenario: Scenario, **network_options: Any) -> Iterator[RunningNetwork]:
    """``running_network`` (same keyword options) in a background thread with its own loop."""
    started = threading.Event()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    result: list[RunningNetwork] = []
    errors: list[BaseException] = []

    async def main() -> None:
        nonlocal stop, loop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            async with running_network(scenario, **network_options) as network:
                result.append(network)
                started.set()
                await stop.wait()
        except BaseException as error:
            errors.append(error)
            started.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="kiwi-simulator")
    thread.start()
    started.wait()
    try:
        if errors:
            raise errors[0]
        yield result[0]
    finally:
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join()


def run_network(
    scenario_path: Path | str = DEFAULT_SCENARIO_FILE,
    host: str = DEFAULT_HOST,
    base_port: int | None = None,
    control_port: int | None = DEFAULT_CONTROL_PORT,
    options: ServerOptions | None = None,
    stations_file: Path | None = None,
) -> None:
    """Run the simulator until interrupted (the ``heimdall sim`` command).

    With no base_port each receiver listens on its registry port (8073..8079).
    """
    scenario = load_scenario(scenario_path, stations_file)

    async def forever() -> None:
        async with running_network(
            scenario, host, base_port=base_port, control_port=control_port, options=options
        ) as network:
            for receiver_id in network.ports:
                protocol = scenario.receiver(receiver_id).protocol
                logger.info(
                    "simulated %s receiver %s on %s",
                    protocol,
                    receiver_id,
                    network.url(receiver_id),
                )
            if network.control_url:
                logger.info("simulator control API on %s", network.control_url)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(forever())
