"""`heimdall acquire` and `heimdall status TASK_ID`: the acquisition API from a terminal."""

from __future__ import annotations

import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from heimdall.core.settings import Settings, get_settings

FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}


def api_base() -> str:
    settings = get_settings()
    return f"http://{settings.bind_host}:{settings.gateway_port}/api/v1/acquisition"


def _headers() -> dict[str, str]:
    tokens = get_settings().api_tokens
    return {"Authorization": f"Bearer {tokens[0].get_secret_value()}"} if tokens else {}


def _error_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text
    return str(detail)


def run_acquisition(
    console: Console,
    frequency_mhz: float,
    duration_s: float,
    stations: list[str] | None,
    description: str | None,
) -> int:
    body: dict[str, Any] = {"frequency_mhz": frequency_mhz, "duration_seconds": duration_s}
    if stations:
        body["stations"] = stations
    if description:
        body["description"] = description
    with httpx.Client(timeout=30) as client:
        try:
            response = client.post(f"{api_base()}/acquire", json=body, headers=_headers())
        except httpx.TransportError as exc:
            console.print(f"[red]cannot reach the API at {api_base()}:[/] {exc}")
            return 1
        if response.status_code != 202:
            console.print(f"[red]refused ({response.status_code}):[/] {_error_text(response)}")
            return 1
        task_id = response.json()["task_id"]
        console.print(f"acquisition [bold]{task_id}[/] queued")
        state = follow(console, client, task_id)
        show_measurements(console, client, task_id)
        return 0 if state["state"] == "SUCCESS" else 1


def follow(console: Console, client: httpx.Client, task_id: str) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("PENDING", total=100)
        while True:
            state: dict[str, Any] = client.get(f"{api_base()}/status/{task_id}").json()
            progress.update(bar, completed=state["progress"], description=state["state"])
            if state["state"] in FINISHED:
                break
            time.sleep(0.3)
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
        "power dBm",
        "noise dBm",
        "offset Hz",
        "bandwidth Hz",
        "GPS",
    ):
        table.add_column(column, justify="right" if column != "receiver" else "left")

    def fmt(value: float | None, digits: int = 1) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    for m in rows:
        table.add_row(
            m["websdr_id"],
            fmt(m["snr"]),
            fmt(m["power_dbm"]),
            fmt(m["noise_floor_dbm"]),
            fmt(m["frequency_offset"], 2),
            fmt(m["occupied_bandwidth_hz"], 0),
            "yes" if m["gps_locked"] else "no",
        )
    console.print(table)


def show_status(console: Console, task_id: str) -> int:
    with httpx.Client(timeout=10) as client:
        try:
            response = client.get(f"{api_base()}/status/{task_id}")
        except httpx.TransportError as exc:
            console.print(f"[red]cannot reach the API at {api_base()}:[/] {exc}")
            return 1
        if response.status_code != 200:
            console.print(f"[red]{response.status_code}:[/] {_error_text(response)}")
            return 1
        state = response.json()
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
