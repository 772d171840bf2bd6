"""Record a scenario as kiwirecorder would: IQ WAV files and ``gnss_pos`` station files.

The scenario's network is served in-process on free loopback ports and every KiwiSDR
receiver is recorded at once through Heimdall's own KiwiSDR client (what a live
acquisition records); each capture is then written as ``kiwirecorder.py -m iq
--kiwi-wav`` writes it (``imports.kiwi_wav``), with kiwirecorder's position file per
station (``gnss_pos/<station>.txt``). ``heimdall import DIR/*.wav --positions
DIR/gnss_pos`` brings them back as an acquisition.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from heimdall.imports.kiwi_wav import encode_kiwi_wav, kiwi_wav_name
from heimdall.imports.positions import kiwirecorder_position_line
from heimdall.receivers.capture import IQCapture
from heimdall.receivers.kiwisdr import StationEndpoint, record_iq
from heimdall.simulator.network import RunningNetwork, network_in_thread
from heimdall.simulator.scenario import Scenario

POSITIONS_DIR = "gnss_pos"


@dataclass(frozen=True, slots=True)
class WrittenRecording:
    station: str
    wav: Path
    positions: Path


def write_kiwirecorder_files(
    directory: Path,
    capture: IQCapture,
    *,
    station: str,
    latitude: float,
    longitude: float,
    url: str = "",
) -> WrittenRecording:
    """Write one capture as kiwirecorder's IQ WAV plus its ``gnss_pos/<station>.txt``."""
    directory.mkdir(parents=True, exist_ok=True)
    wav = directory / kiwi_wav_name(capture.start_time, capture.center_frequency_hz, station)
    wav.write_bytes(encode_kiwi_wav(capture))
    positions = directory / POSITIONS_DIR / f"{station}.txt"
    positions.parent.mkdir(exist_ok=True)
    address = urlsplit(url)
    line = kiwirecorder_position_line(
        station, latitude, longitude, address.hostname or "", address.port or 8073
    )
    positions.write_text(line + "\n", encoding="utf-8")
    return WrittenRecording(station, wav, positions)


async def record_network(
    network: RunningNetwork, duration_s: float, frequency_hz: float
) -> dict[str, IQCapture]:
    """Every KiwiSDR receiver of a running simulated network, recorded at once."""
    receivers = [r.id for r in network.state.scenario.receivers if r.protocol != "openwebrx"]
    captures = await asyncio.gather(
        *(
            record_iq(
                StationEndpoint(receiver_id, network.url(receiver_id)),
                frequency_hz=frequency_hz,
                duration_s=duration_s,
            )
            for receiver_id in receivers
        )
    )
    return dict(zip(receivers, captures, strict=True))


def record_scenario(
    scenario: Scenario,
    directory: Path,
    *,
    duration_s: float,
    frequency_hz: float | None = None,
) -> list[WrittenRecording]:
    """Serve the scenario, record its KiwiSDR receivers for ``duration_s`` (at the
    transmitter's frequency unless given) and write their kiwirecorder files."""
    frequency_hz = frequency_hz or scenario.transmitter.frequency_hz
    with network_in_thread(scenario, ephemeral=True) as network:
        captures = asyncio.run(record_network(network, duration_s, frequency_hz))
    written = []
    for receiver_id, capture in captures.items():
        receiver = scenario.receiver(receiver_id)
        latitude, longitude, _ = receiver.require_position()
        written.append(
            write_kiwirecorder_files(
                directory,
                capture,
                station=receiver_id,
                latitude=latitude,
                longitude=longitude,
                url=f"ws://127.0.0.1:{receiver.port or 8073}",
            )
        )
    return written
