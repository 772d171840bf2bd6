"""Run the whole platform as local processes: ``heimdall up`` / ``heimdall down``.

The supervisor starts object storage (when local and not running), applies
migrations, then starts the receiver simulator, the five services and the
worker as child processes, waits until every one is ready, and stops them all,
newest first, on Ctrl-C, SIGTERM or ``heimdall down``. Nothing is left half
running: if one component fails to come up, everything started is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from heimdall.core.seaweed import endpoint_host_port, is_local_endpoint, port_open, start_seaweed
from heimdall.core.settings import Settings
from heimdall.services.registry import service_specs

STOP_GRACE_S = 10.0


class StartupError(RuntimeError):
    pass


@dataclass
class Component:
    name: str
    command: list[str]
    ports: list[int]
    ready_url: str | None = None
    ready_check: Callable[[], bool] | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def is_ready(self) -> bool:
        if self.ready_check is not None:
            return self.ready_check()
        if self.ready_url is None:
            return True
        try:
            return httpx.get(self.ready_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def worker_command(role: str) -> list[str]:
    # The worker resolves its queue names from its own settings, so a worker started
    # with another HEIMDALL_QUEUE_PREFIX serves that deployment.
    return python_module("heimdall", "worker", role)


def worker_answers(
    role: str = "acquisition", timeout_s: float = 3.0, queue_prefix: str | None = None
) -> bool:
    """A ping sent to a queue only this kind of worker consumes comes back.

    ``queue_prefix`` names another deployment's queues (default: this process's).
    """
    from heimdall.core.celery_app import queue_name
    from heimdall.core.tasks import ping
    from heimdall.core.worker import ROLES

    base = ROLES[role].ping_queue
    queue = queue_name(base) if queue_prefix is None else f"{queue_prefix}{base}"
    sent = None
    try:
        # A ping no worker took within the timeout expires, not answered by the next worker.
        sent = ping.apply_async(queue=queue, routing_key=queue, expires=timeout_s)
        return bool(sent.get(timeout=timeout_s)["pong"])
    except Exception:  # no worker, broker down, or backend down: not ready
        return False
    finally:
        if sent is not None:
            # Stop waiting for it now: left to the garbage collector, the unsubscription
            # ran at interpreter exit, when Redis's client can no longer import, and
            # printed a traceback after `heimdall status` on a stopped stack.
            with contextlib.suppress(Exception):
                sent.backend.remove_pending_result(sent)


def plan_components(settings: Settings) -> list[Component]:
    """Every process `heimdall up` runs, in start order."""
    components: list[Component] = []
    if settings.simulator_enabled:
        components.append(simulator_component(settings))
    for spec in service_specs(settings):
        components.append(
            Component(
                name=spec.name,
                command=python_module(
                    "uvicorn",
                    spec.asgi_app,
                    "--host",
                    settings.bind_host,
                    "--port",
                    str(spec.port),
                    "--log-level",
                    "warning",
                ),
                ports=[spec.port],
                ready_url=f"http://{settings.bind_host}:{spec.port}/ready",
            )
        )
    multiproc_dir = (settings.state_dir / "prometheus").resolve()
    # Two kinds of worker, so that a long recording never delays a localization.
    # The acquisition worker serves /metrics for both (one multiprocess directory).
    for role, ports in (
        ("acquisition", [settings.worker_metrics_port] if settings.worker_metrics_port else []),
        ("compute", []),
    ):
        env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
        if not ports:
            env["HEIMDALL_WORKER_METRICS_PORT"] = "0"  # one port per host: the first serves
        components.append(
            Component(
                name=f"{role}-worker",
                command=worker_command(role),
                ports=ports,
                ready_check=lambda role=role: worker_answers(role),  # type: ignore[misc]
                env=env,
            )
        )
    return components


def simulator_component(settings: Settings) -> Component:
    from heimdall.stations.service import load_registry_file

    ports = [settings.simulator_control_port]
    for station in load_registry_file(settings.stations_file):
        port = httpx.URL(station.url).port
        if station.protocol == "kiwisdr" and port is not None:
            ports.append(port)
    return Component(
        name="receiver-simulator",
        command=python_module("heimdall", "sim", "--scenario", str(settings.scenario_file)),
        ports=ports,
        ready_url=f"http://127.0.0.1:{settings.simulator_control_port}/health",
    )


def ports_in_use(components: list[Component], host: str) -> list[str]:
    return [
        f"port {port} ({component.name}) is already in use"
        for component in components
        for port in component.ports
        if port_open(host, port, timeout_s=0.2)
    ]


class Supervisor:
    def __init__(self, settings: Settings, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.log = log
        self.state_dir = settings.state_dir.resolve()
        self.components = plan_components(settings)
        self.seaweed: subprocess.Popen[bytes] | None = None
        self._stopping = False

    # --- start ---------------------------------------------------------------
    def start(self, ready_timeout_s: float = 120.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        busy = ports_in_use(self.components, self.settings.bind_host)
        if busy:
            raise StartupError("; ".join(busy))
        try:
            self._start_object_store()
            self._migrate()
            self._reset_metrics_dir()
            for component in self.components:
                self._spawn(component)
            self._wait_ready(ready_timeout_s)
            self._write_state()
        except BaseException:
            self.stop()
            raise

    def _start_object_store(self) -> None:
        from heimdall.core.storage import ObjectStore

        host, port = endpoint_host_port(self.settings)
        if not port_open(host, port) and is_local_endpoint(self.settings):
            if not self.settings.s3_autostart:
                raise StartupError(f"object storage not answering at {self.settings.s3_endpoint}")
            self.log(f"starting SeaweedFS on {host}:{port}")
            self.seaweed = start_seaweed(self.settings, self.state_dir)
        store = ObjectStore(self.settings)
        deadline = time.monotonic() + 60
        while True:
            try:
                store.ensure_buckets()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise StartupError(f"object storage not usable: {exc}") from exc
                time.sleep(0.5)

    def _migrate(self) -> None:
        from heimdall.core.migrate import migrate_and_seed

        migrate_and_seed(self.settings)

    def _reset_metrics_dir(self) -> None:
        # Multiprocess metric files from a previous run would be summed in.
        metrics_dir = self.state_dir / "prometheus"
        metrics_dir.mkdir(exist_ok=True)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()

    def _spawn(self, component: Component) -> None:
        log_path = self.state_dir / f"{component.name}.log"
        env = {**os.environ, **component.env}
        with open(log_path, "ab") as log_file:
            component.process = subprocess.Popen(
                component.command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(self.components)
        while pending:
            for component in list(pending):
                assert component.process is not None
                code = component.process.poll()
                if code is not None:
                    raise StartupError(
                        f"{component.name} exited with code {code}; "
                        f"see {self.state_dir / (component.name + '.log')}"
                    )
                if component.is_ready():
                    pending.remove(component)
                    self.log(f"{component.name} ready")
            if pending and time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                raise StartupError(f"not ready within {timeout_s:.0f} s: {names}")
            time.sleep(0.5)

    def _write_state(self) -> None:
        state = {
            "supervisor_pid": os.getpid(),
            "children": {c.name: c.process.pid for c in self.components if c.process},
            "seaweedfs_pid": self.seaweed.pid if self.seaweed else None,
        }
        (self.state_dir / "supervisor.json").write_text(json.dumps(state, indent=2))

    # --- run and stop ----------------------------------------------------------
    def wait(self) -> int:
        """Block until a child dies or we are told to stop; return an exit code."""
        stop_requested = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stop_requested
            stop_requested = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            while not stop_requested:
                for component in self.components:
                    if component.process and component.process.poll() is not None:
                        self.log(f"{component.name} exited unexpectedly; stopping the stack")
                        return 1
                time.sleep(0.5)
            return 0
        finally:
            self.stop()

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        processes = [(c.name, c.process) for c in reversed(self.components) if c.process]
        if self.seaweed:
            processes.append(("seaweedfs", self.seaweed))
        for _, process in processes:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"{name} did not stop in time; killing it")
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        (self.state_dir / "supervisor.json").unlink(missing_ok=True)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def read_state(settings: Settings) -> dict[str, object] | None:
    path = settings.state_dir.resolve() / "supervisor.json"
    if not path.exists():
        return None
    data: dict[str, object] = json.loads(path.read_text())
    return data


def stop_running_stack(settings: Settings, timeout_s: float = 30.0) -> bool:
    """Ask a running supervisor to stop (SIGTERM) and wait; False if none was running."""
    state = read_state(settings)
    if state is None:
        return False
    pid = int(str(state["supervisor_pid"]))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        (settings.state_dir.resolve() / "supervisor.json").unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return True


def ready_report(settings: Settings) -> dict[str, tuple[str, bool]]:
    """Each component: (where, ready?)."""
    report: dict[str, tuple[str, bool]] = {}
    for component in plan_components(settings):
        where = component.ready_url or "broker queue"
        report[component.name] = (where, component.is_ready())
    host, port = endpoint_host_port(settings)
    report["object storage"] = (settings.s3_endpoint, port_open(host, port))
    return report


def service_urls(settings: Settings) -> dict[str, str]:
    return {
        spec.name: f"http://{settings.bind_host}:{spec.port}" for spec in service_specs(settings)
    }
