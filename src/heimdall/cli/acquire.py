"""`heimdall acquire` and `heimdall status TASK_ID`: the acquisition API from a terminal."""

from __future__ import annotations

import time
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from heimdall.cli.http import auth_headers, call, follow_progress, gateway
from heimdall.core.settings import Settings, get_settings


def api_base() -> str:
    return gateway("acquisition")


def run_acquisition(
    console: Console,
    frequency_mhz: float,
    duration_s: float,
    stations: list[str] | None,
    description: str | None,
    known_source_id: str | None = None,
) -> str | None:
    """Trigger, follow and show one acquisition; its task id if it succeeded."""
    body: dict[str, Any] = {"frequency_mhz": frequency_mhz, "duration_seconds": duration_s}
    if stations:
        body["stations"] = stations
    if known_source_id:
        body["known_source_id"] = known_source_id
    if description:
        body["description"] = description
    with httpx.Client(timeout=30) as client:
        accepted = call(
            console, client, "POST", f"{api_base()}/acquire", json=body, headers=auth_headers()
        )
        if accepted is None:
            return None
        task_id = str(accepted["task_id"])
        console.print(f"acquisition [bold]{task_id}[/] queued")
        state = follow(console, client, task_id)
        show_measurements(console, client, task_id)
        return task_id if state["state"] == "SUCCESS" else None


def follow(console: Console, client: httpx.Client, task_id: str) -> dict[str, Any]:
    state = follow_progress(console, lambda: client.get(f"{api_base()}/status/{task_id}").json())
    for error in state["errors"]:
        console.print(f"[yellow]{error['station_id']}:[/] {error['error']}")
    if state.get("error_message"):
        console.print(f"[red]{state['error_message']}[/]")
    console.print(f"final state: [bold]{state['state']}[/]")
    return state


def show_measurements(console: Console, client: httpx.Client, task_id: str) -> None:
    rows = client.get(f"{api_base()}/measurements/{task_id}").json()
    if not rows:
        return
    table = Table(title=f"Measurements of {task_id}")
    for column in (
        "receiver",
        "SNR dB",
        "power",
        "noise dBm",
        "offset Hz",
        "bandwidth Hz",
        "GPS",
    ):
        table.add_column(column, justify="right" if column != "receiver" else "left")

    def fmt(value: float | None, digits: int = 1) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    def power(m: dict[str, Any]) -> str:
        # OpenWebRX S-meter or an imported recording without one: the receiver's own,
        # uncalibrated dB scale (the calibration converts it).
        if m["power_dbm"] is None and m.get("signal_power_dbfs") is not None:
            return f"{m['signal_power_dbfs']:.1f} dB own scale"
        return f"{fmt(m['power_dbm'])} dBm"

    for m in rows:
        table.add_row(
            m["websdr_id"],
            fmt(m["snr"]),
            power(m),
            fmt(m["noise_floor_dbm"]),
            fmt(m["frequency_offset"], 2),
            fmt(m["occupied_bandwidth_hz"], 0),
            "yes" if m["gps_locked"] else "no",
        )
    console.print(table)


def show_status(console: Console, task_id: str) -> int:
    with httpx.Client(timeout=10) as client:
        state = call(console, client, "GET", f"{api_base()}/status/{task_id}")
        if state is None:
            return 1
        console.print(f"{task_id}: [bold]{state['state']}[/] {state['progress']:.0f}%")
        for error in state["errors"]:
            console.print(f"[yellow]{error['station_id']}:[/] {error['error']}")
        if state.get("error_message"):
            console.print(f"[red]{state['error_message']}[/]")
        show_measurements(console, client, task_id)
    return 0


def place_transmitter(console: Console, settings: Settings, *, frequency_hz: float) -> None:
    """Put the simulated transmitter on the air at ``frequency_hz`` (its position is the scenario's)."""
    control = f"http://127.0.0.1:{settings.simulator_control_port}"
    response = httpx.put(f"{control}/transmitter", json={"frequency_hz": frequency_hz}, timeout=10)
    response.raise_for_status()
    tx = response.json()
    tx = tx.get("transmitter", tx)
    console.print(
        f"simulated transmitter at {tx['latitude']:.4f} N {tx['longitude']:.4f} E, "
        f"{tx['eirp_dbm']:.0f} dBm EIRP, {tx['frequency_hz'] / 1e6:.4f} MHz, {tx['modulation']}"
    )


def inference_base() -> str:
    return gateway("inference")


def wait_for_localization(
    client: httpx.Client, task_id: str, timeout_s: float = 60
) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"{inference_base()}/localizations/{task_id}")
        if response.status_code == 200:
            result: dict[str, Any] = response.json()
            return result
        time.sleep(0.3)
    return None


def show_localization(
    console: Console, result: dict[str, Any], truth: dict[str, Any] | None
) -> None:
    if result["status"] != "ok":
        console.print(f"[yellow]no position:[/] {result['status']}: {result.get('message') or ''}")
        return
    ellipse = result["ellipse"]
    console.print(
        f"estimated position [bold]{result['latitude']:.4f} N {result['longitude']:.4f} E[/] "
        f"({result['method']}, {result['receivers_used']} receivers, GDOP {result['gdop']:.1f})"
    )
    console.print(
        f"95 % ellipse: {ellipse['semi_major_m'] / 1000:.2f} km x {ellipse['semi_minor_m'] / 1000:.2f} km, "
        f"major axis at {ellipse['orientation_deg']:.0f} deg from north"
    )
    inputs = result.get("inputs") or {}
    if inputs:
        # One line each: side by side, seven receivers' names wrap mid-list at 80 columns.
        console.print(f"power from: {', '.join(inputs.get('power') or []) or '-'}")
        console.print(f"TDOA from: {', '.join(inputs.get('tdoa') or []) or '-'}")
        for part, excluded in (("power", "power_excluded"), ("TDOA", "tdoa_excluded")):
            for receiver_id, reason in (inputs.get(excluded) or {}).items():
                console.print(f"[dim]{part} of {receiver_id} left out: {escape(reason)}[/]")
    if truth is not None:
        from pyproj import Geod

        _, _, error_m = Geod(ellps="WGS84").inv(
            truth["longitude"], truth["latitude"], result["longitude"], result["latitude"]
        )
        console.print(f"error against the simulated truth: [bold]{error_m / 1000:.2f} km[/]")


def simulator_truth(settings: Settings) -> dict[str, Any] | None:
    """The simulated transmitter, when a simulator runs here (None for a real network)."""
    try:
        response = httpx.get(
            f"http://127.0.0.1:{settings.simulator_control_port}/scenario", timeout=5
        )
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    transmitter: dict[str, Any] = response.json()["scenario"]["transmitter"]
    return transmitter


def locate(console: Console, task_id: str, *, wait: bool = False) -> int:
    """Show the localization of an acquisition (``wait``: the automatic one, when it lands)."""
    with httpx.Client(timeout=60) as client:
        if wait:
            result = wait_for_localization(client, task_id)
            if result is not None:
                show_localization(console, result, simulator_truth(get_settings()))
                return 0 if result["status"] == "ok" else 1
        located = call(
            console,
            client,
            "POST",
            f"{inference_base()}/localize",
            json={"task_id": task_id},
            headers=auth_headers(),
        )
        if located is None:
            return 1
        show_localization(console, located, simulator_truth(get_settings()))
    return 0
