"""The ``heimdall`` command."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from heimdall.core.settings import get_settings

app = typer.Typer(help="Heimdall: locate radio transmitters with a network of receivers.")
console = Console()


@app.command()
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once the stack is ready."),
    timeout_s: float = typer.Option(120.0, "--timeout", help="Seconds to wait for readiness."),
) -> None:
    """Start object storage, migrate, start simulator, services and worker; wait until ready."""
    from heimdall.cli.supervisor import StartupError, Supervisor, read_state, service_urls

    settings = get_settings()
    if read_state(settings) is not None:
        console.print("[yellow]a Heimdall stack is already running[/] (heimdall down stops it)")
        raise typer.Exit(1)
    if detach:
        raise typer.Exit(_up_detached(timeout_s))
    supervisor = Supervisor(settings, log=lambda m: console.print(f"[dim]{m}[/]"))
    try:
        supervisor.start(ready_timeout_s=timeout_s)
    except StartupError as exc:
        console.print(f"[red]heimdall up failed:[/] {exc}")
        raise typer.Exit(1) from None
    _print_urls(service_urls(settings))
    console.print("[green]Heimdall is ready.[/] Ctrl-C or `heimdall down` stops it.")
    raise typer.Exit(supervisor.wait())


def _up_detached(timeout_s: float) -> int:
    from heimdall.cli.supervisor import read_state, service_urls

    settings = get_settings()
    state_dir = settings.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "supervisor.log"
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "heimdall", "up", "--timeout", str(timeout_s)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            console.print(f"[red]heimdall up failed[/] (exit {child.returncode}):")
            console.print(_tail(log_path))
            return 1
        if read_state(settings) is not None:
            _print_urls(service_urls(settings))
            console.print(
                "[green]Heimdall is ready[/] in the background; `heimdall down` stops it."
            )
            return 0
        time.sleep(0.5)
    console.print("[red]heimdall up did not become ready in time[/]")
    return 1


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _print_urls(urls: dict[str, str]) -> None:
    table = Table(title="Heimdall services")
    table.add_column("service")
    table.add_column("URL")
    for name, url in urls.items():
        table.add_row(name, url)
    console.print(table)


@app.command()
def down() -> None:
    """Stop a stack started by `heimdall up`."""
    from heimdall.cli.supervisor import stop_running_stack

    if stop_running_stack(get_settings()):
        console.print("Heimdall stopped.")
    else:
        console.print("No Heimdall stack was running.")


@app.command()
def status(
    task_id: str | None = typer.Argument(
        None, help="An acquisition's task id; omit for the stack."
    ),
) -> None:
    """Each component of the stack and whether it is ready, or one acquisition's state."""
    if task_id is not None:
        from heimdall.cli.acquire import show_status

        raise typer.Exit(show_status(console, task_id))
    raise typer.Exit(_stack_status())


def _stack_status() -> int:
    from heimdall.cli.supervisor import ready_report

    table = Table(title="Heimdall status")
    table.add_column("component")
    table.add_column("where")
    table.add_column("ready")
    all_ready = True
    for name, (where, ready) in ready_report(get_settings()).items():
        all_ready &= ready
        table.add_row(name, where, "[green]yes[/]" if ready else "[red]no[/]")
    console.print(table)
    return 0 if all_ready else 1


@app.command()
def demo(
    frequency: float = typer.Option(145.5, "--frequency", help="Transmitter frequency in MHz"),
    duration: float = typer.Option(5.0, "--duration", help="Seconds to record"),
) -> None:
    """Bring the stack up, place a simulated transmitter, record it from every receiver."""
    from heimdall.cli.acquire import locate, place_transmitter, run_acquisition
    from heimdall.cli.supervisor import read_state

    settings = get_settings()
    if read_state(settings) is None and _up_detached(timeout_s=180.0) != 0:
        raise typer.Exit(1)
    status_code = _stack_status()
    if status_code != 0:
        raise typer.Exit(status_code)
    place_transmitter(console, settings, frequency_hz=frequency * 1e6)
    task_id = run_acquisition(console, frequency, duration, None, "make demo")
    if task_id is None:
        raise typer.Exit(1)
    raise typer.Exit(locate(console, task_id, wait=True))


@app.command()
def acquire(
    frequency: float = typer.Option(..., "--frequency", "-f", help="Frequency in MHz"),
    duration: float = typer.Option(5.0, "--duration", "-d", help="Seconds to record (<= 300)"),
    station: list[str] = typer.Option(None, "--station", "-s", help="Station id (repeatable)"),
    description: str | None = typer.Option(None, "--description"),
) -> None:
    """Record from every receiver at once, with a live progress bar and the measurements."""
    from heimdall.cli.acquire import run_acquisition

    task_id = run_acquisition(console, frequency, duration, station or None, description)
    raise typer.Exit(0 if task_id else 1)


@app.command("locate")
def locate_command(
    task_id: str = typer.Argument(..., help="A successful acquisition's task id"),
) -> None:
    """Where the transmitter of an acquisition is, with its 95 % ellipse."""
    from heimdall.cli.acquire import locate

    raise typer.Exit(locate(console, task_id))


@app.command()
def sim(
    scenario: Path = typer.Option(None, "--scenario", help="Scenario YAML (default: built-in)"),
    control_port: int = typer.Option(None, "--control-port", help="Loopback control API port"),
) -> None:
    """Run the simulated receiver network (KiwiSDR protocol, one port per receiver)."""
    import logging

    from heimdall.simulator.network import run_network

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    run_network(
        scenario or settings.scenario_file,
        control_port=control_port or settings.simulator_control_port,
        stations_file=settings.stations_file,
    )


@app.command()
def worker(
    role: str = typer.Argument(
        ..., help="acquisition (records many acquisitions per process) or compute"
    ),
) -> None:
    """Run one Celery worker process of the given kind until stopped."""
    from heimdall.core.worker import ROLES, run_worker

    if role not in ROLES:
        console.print(f"[red]unknown worker kind {role!r}[/]; one of: {', '.join(ROLES)}")
        raise typer.Exit(2)
    run_worker(role)


@app.command()
def migrate() -> None:
    """Apply database migrations and seed the station registry."""
    from heimdall.core.migrate import migrate_and_seed

    count = migrate_and_seed()
    console.print(f"database at head; {count} stations in the registry")


if __name__ == "__main__":
    app()
