"""The ``heimdall`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from heimdall.core.settings import get_settings

app = typer.Typer(help="Heimdall: locate radio transmitters with a network of receivers.")
#: Output into a pipe or a file (grep, a script) is not cut to rich's default 80 columns:
#: its tables keep whole rows. A terminal, or COLUMNS, sets its own width.
PIPED_WIDTH = 200
console = (
    Console() if sys.stdout.isatty() or "COLUMNS" in os.environ else Console(width=PIPED_WIDTH)
)


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
    known_source: str | None = typer.Option(
        None, "--known-source", help="Id of the known transmitter being recorded"
    ),
) -> None:
    """Record from every receiver at once, with a live progress bar and the measurements."""
    from heimdall.cli.acquire import run_acquisition

    task_id = run_acquisition(
        console, frequency, duration, station or None, description, known_source
    )
    raise typer.Exit(0 if task_id else 1)


@app.command("import")
def import_command(
    files: list[Path] = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="kiwirecorder IQ .wav files (YYYYMMDDTHHMMSSZ_<Hz>_<station>_iq.wav) and/or "
        "SigMF pairs (.sigmf-meta with its .sigmf-data)",
    ),
    positions: list[Path] = typer.Option(
        None,
        "--positions",
        "-p",
        exists=True,
        help="Receiver positions: YAML, CSV or kiwirecorder gnss_pos/<station>.txt files, "
        "or a directory of them (repeatable)",
    ),
    known_source: str | None = typer.Option(
        None, "--known-source", help="Id of the known transmitter recorded"
    ),
    description: str | None = typer.Option(None, "--description"),
) -> None:
    """Import recordings made elsewhere as one acquisition: measured, stored, localized."""
    from heimdall.cli.imports import run_import

    task_id = run_import(console, files, positions or [], known_source, description)
    raise typer.Exit(0 if task_id else 1)


@app.command("locate")
def locate_command(
    task_id: str = typer.Argument(..., help="A successful acquisition's task id"),
) -> None:
    """Where the transmitter of an acquisition is, with its 95 % ellipse."""
    from heimdall.cli.acquire import locate

    raise typer.Exit(locate(console, task_id))


@app.command()
def review(
    approve: str | None = typer.Option(
        None, "--approve", help="Approve this session (its task id, or the id's first characters)"
    ),
    reject: str | None = typer.Option(
        None, "--reject", help="Reject this session (its task id, or the id's first characters)"
    ),
    comment: str | None = typer.Option(None, "--comment", help="Why (stored with the decision)"),
    reviewer: str | None = typer.Option(
        None, "--reviewer", envvar="USER", help="Who decides (default: $USER)"
    ),
    show_all: bool = typer.Option(False, "--all", help="List every session, not only pending"),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
) -> None:
    """List sessions awaiting review, or approve / reject one."""
    from heimdall.cli import operator

    if approve and reject:
        console.print("[red]--approve and --reject together: choose one[/]")
        raise typer.Exit(2)
    if approve or reject:
        decision = "approve" if approve else "reject"
        raise typer.Exit(
            operator.decide(console, approve or reject or "", decision, comment, reviewer)
        )
    raise typer.Exit(operator.show_review_queue(console, show_all=show_all, limit=limit))


@app.command()
def train(
    frequency_min: float | None = typer.Option(None, "--frequency-min", help="MHz"),
    frequency_max: float | None = typer.Option(None, "--frequency-max", help="MHz"),
    folds: int = typer.Option(5, "--folds", min=2, max=10, help="Cross-validation folds"),
    never_activate: bool = typer.Option(
        False, "--no-activate", help="Keep the new model inactive even if it is better"
    ),
    wait: bool = typer.Option(False, "--wait", help="Follow the job until it ends"),
) -> None:
    """Fit the calibration from approved sessions of known sources."""
    from heimdall.cli import operator

    body = {
        "frequency_min_mhz": frequency_min,
        "frequency_max_mhz": frequency_max,
        "folds": folds,
        "activate": "never" if never_activate else "auto",
    }
    request = {k: v for k, v in body.items() if v is not None}
    raise typer.Exit(operator.train(console, request, wait=wait))


@app.command()
def models(
    activate: str | None = typer.Option(None, "--activate", help="Activate this model id"),
    rollback: bool = typer.Option(False, "--rollback", help="Back to the previous version"),
) -> None:
    """The calibration models; activate one or roll back."""
    from heimdall.cli import operator

    if activate:
        raise typer.Exit(operator.activate_model(console, activate))
    if rollback:
        raise typer.Exit(operator.rollback_model(console))
    raise typer.Exit(operator.show_models(console))


sources_app = typer.Typer(help="Known transmitters (ground truth for training).")
app.add_typer(sources_app, name="sources")


@sources_app.callback(invoke_without_command=True)
def sources(ctx: typer.Context) -> None:
    """List the known sources (or `heimdall sources add ...`)."""
    from heimdall.cli import operator

    if ctx.invoked_subcommand is None:
        raise typer.Exit(operator.show_sources(console))


@sources_app.command("add")
def sources_add(
    name: str = typer.Option(..., "--name"),
    latitude: float = typer.Option(..., "--lat", help="Degrees north"),
    longitude: float = typer.Option(..., "--lon", help="Degrees east"),
    frequency: float = typer.Option(..., "--frequency", "-f", help="MHz"),
    altitude: float = typer.Option(0.0, "--alt", help="Metres above the ellipsoid"),
    eirp: float | None = typer.Option(None, "--eirp", help="dBm, if known"),
    modulation: str | None = typer.Option(None, "--modulation"),
    description: str | None = typer.Option(None, "--description"),
) -> None:
    """Register a transmitter whose position is known."""
    from heimdall.cli import operator

    fields = {
        "name": name,
        "latitude": latitude,
        "longitude": longitude,
        "altitude_m": altitude,
        "frequency_mhz": frequency,
        "eirp_dbm": eirp,
        "modulation": modulation,
        "description": description,
    }
    raise typer.Exit(operator.add_source(console, fields))


@app.command()
def sim(
    scenario: Path = typer.Option(None, "--scenario", help="Scenario YAML (default: built-in)"),
    control_port: int = typer.Option(None, "--control-port", help="Loopback control API port"),
    stations: Path = typer.Option(
        None,
        "--stations",
        help="Station registry to serve (ports and protocols); default HEIMDALL_STATIONS_FILE",
    ),
    record_to: Path = typer.Option(
        None,
        "--record-to",
        file_okay=False,
        help="Record the scenario's KiwiSDRs once into this directory as kiwirecorder IQ "
        "WAV files (+ gnss_pos/<station>.txt) and exit, instead of serving",
    ),
    duration: float = typer.Option(5.0, "--duration", min=0.1, help="Seconds to --record-to"),
) -> None:
    """Run the simulated receiver network, one port per receiver, each in its registry protocol.

    The default registry serves the seven north-west Italy sites as KiwiSDRs;
    ``--stations stations-simulated-openwebrx.yaml`` (in heimdall/data) serves
    them as OpenWebRX receivers; ``--scenario scenario-hf-europe.yaml`` serves six
    HF KiwiSDRs over central Europe.
    """
    import logging

    from heimdall.simulator.network import run_network

    settings = get_settings()
    if record_to is not None:
        raise typer.Exit(
            _record_scenario(
                _packaged(scenario) if scenario else settings.scenario_file,
                _packaged(stations) if stations else settings.stations_file,
                record_to,
                duration,
            )
        )
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    run_network(
        _packaged(scenario) if scenario else settings.scenario_file,
        host=settings.bind_host,  # 0.0.0.0 in a container, so the workers reach it
        control_port=control_port or settings.simulator_control_port,
        stations_file=_packaged(stations) if stations else settings.stations_file,
    )


def _record_scenario(
    scenario_file: Path, stations_file: Path, directory: Path, duration_s: float
) -> int:
    from heimdall.simulator.kiwirecorder import record_scenario
    from heimdall.simulator.scenario import load_scenario

    written = record_scenario(
        load_scenario(scenario_file, stations_file), directory, duration_s=duration_s
    )
    for recording in written:
        console.print(f"{recording.station}: {recording.wav}")
    console.print(
        f"{len(written)} kiwirecorder recordings in {directory}; import them with "
        f"`heimdall import {directory}/*.wav --positions {directory}/gnss_pos`"
    )
    return 0 if written else 1


def _packaged(path: Path) -> Path:
    """A path as given, or the file of that name shipped in heimdall/data."""
    from heimdall.core.settings import PACKAGE_DATA

    return path if path.exists() or path.is_absolute() else PACKAGE_DATA / path


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
