"""The OpenWebRX client against the simulated OpenWebRX receivers, both halves together.

Runs the simulator in-process (ephemeral ports, no backing services needed):
a healthy receiver gives audio, spectra and S-meter covering the duration; a
frequency in another band switches profile; every simulated fault comes back as
its typed error.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from heimdall.dsp.audio_measurement import measure_audio
from heimdall.dsp.measurement import measure
from heimdall.receivers.errors import (
    ReceiverBusy,
    ReceiverConnectionLost,
    ReceiverDown,
    ReceiverError,
    ReceiverOutOfRange,
    ReceiverProtocolError,
    ReceiverRetuned,
    ReceiverTimeout,
)
from heimdall.receivers.kiwisdr import StationEndpoint as KiwiEndpoint
from heimdall.receivers.kiwisdr import record_iq
from heimdall.receivers.openwebrx import StationEndpoint, record_audio
from heimdall.simulator.faults import Fault, FaultKind
from heimdall.simulator.network import running_network
from heimdall.simulator.physics import link_budget
from heimdall.simulator.scenario import PACKAGE_DATA, Modulation, Scenario, load_scenario

TIMEOUTS = {"connect_timeout_s": 1.0, "first_frame_timeout_s": 2.0, "stall_timeout_s": 0.6}


def openwebrx_scenario() -> Scenario:
    return load_scenario(PACKAGE_DATA / "scenario-openwebrx.yaml")


@pytest.mark.parametrize(
    ("modulation", "offset_tolerance_hz"),
    # A carrier is a tone in the audio; a second of random symbols has its own
    # spectral centroid wandering by tens of hertz.
    [(Modulation.carrier, 2.0), (Modulation.wideband, 150.0), (Modulation.nfm, 150.0)],
)
async def test_healthy_receiver_gives_audio_spectra_and_smeter(
    modulation: Modulation, offset_tolerance_hz: float
) -> None:
    scenario = openwebrx_scenario()
    scenario = scenario.model_copy(
        update={"transmitter": scenario.transmitter.model_copy(update={"modulation": modulation})}
    )
    receiver = scenario.receiver("giovi")
    async with running_network(scenario, ephemeral=True) as network:
        assert network.url("giovi").startswith("http://")
        capture = await record_audio(
            StationEndpoint("giovi", network.url("giovi")),
            frequency_hz=scenario.transmitter.frequency_hz,
            duration_s=1.0,
            **TIMEOUTS,
        )
    assert capture.driver == "openwebrx" and not capture.has_gps_time
    assert len(capture.samples) == 12_000 and capture.sample_rate_hz == 12_000.0
    assert capture.fft_db.shape[1] == 4096 and capture.fft_db.shape[0] >= 5
    assert len(capture.smeter_power) >= 3
    assert np.all(np.diff(capture.chunk_arrival_ns) > 0)
    assert capture.metadata["latitude"] == pytest.approx(receiver.latitude)
    assert capture.metadata["altitude_m"] == pytest.approx(receiver.altitude_m, abs=1)
    assert capture.metadata["profile"] == "2m"
    # The S-meter share of the signal is the link budget in the receiver's own unit.
    m = measure_audio(capture)
    expected_db = link_budget(scenario, receiver).signal_power_dbm - scenario.full_scale_dbm_of(
        receiver
    )
    assert m.signal_power_dbfs == pytest.approx(expected_db, abs=1.5)
    true_offset_hz = scenario.transmitter.frequency_hz * receiver.lo_error_ppm * -1e-6
    assert m.frequency_offset_hz == pytest.approx(true_offset_hz, abs=offset_tolerance_hz)
    assert m.is_spectral_line == (modulation is Modulation.carrier)


async def test_another_band_selects_its_profile_and_others_see_the_switch() -> None:
    scenario = openwebrx_scenario()
    scenario = scenario.model_copy(
        update={"transmitter": scenario.transmitter.model_copy(update={"frequency_hz": 433.1e6})}
    )
    async with running_network(scenario, ephemeral=True) as network:
        url = network.url("torino")
        on_2m = asyncio.create_task(
            record_audio(
                StationEndpoint("torino", url), frequency_hz=145.5e6, duration_s=3.0, **TIMEOUTS
            )
        )
        await asyncio.sleep(0.8)
        capture = await record_audio(
            StationEndpoint("torino", url), frequency_hz=433.1e6, duration_s=0.5, **TIMEOUTS
        )
        with pytest.raises(ReceiverRetuned, match="433.500 MHz"):
            await on_2m
    assert capture.metadata["profile"] == "rtlsdr|70cm"
    assert capture.fft_center_frequency_hz == 433.5e6
    assert measure_audio(capture).snr_db > 10


async def test_a_frequency_no_profile_covers_is_out_of_range() -> None:
    scenario = openwebrx_scenario()
    async with running_network(scenario, ephemeral=True) as network:
        with pytest.raises(ReceiverOutOfRange, match="no profile covers 1296.0000 MHz"):
            await record_audio(
                StationEndpoint("milano", network.url("milano")),
                frequency_hz=1296e6,
                duration_s=0.5,
                **TIMEOUTS,
            )


async def test_a_full_receiver_backs_off() -> None:
    scenario = openwebrx_scenario()
    scenario = scenario.model_copy(
        update={"receivers": [r.model_copy(update={"rx_chans": 1}) for r in scenario.receivers]}
    )
    async with running_network(scenario, ephemeral=True) as network:
        station = StationEndpoint("genova", network.url("genova"))
        first = asyncio.create_task(
            record_audio(station, frequency_hz=145.5e6, duration_s=1.5, **TIMEOUTS)
        )
        await asyncio.sleep(0.5)
        with pytest.raises(ReceiverBusy, match="Too many clients"):
            await record_audio(station, frequency_hz=145.5e6, duration_s=0.5, **TIMEOUTS)
        assert len((await first).samples) == 18_000


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (Fault(kind=FaultKind.refuse), ReceiverBusy),
        (Fault(kind=FaultKind.down), ReceiverDown),
        (Fault(kind=FaultKind.not_answering), ReceiverTimeout),
        (Fault(kind=FaultKind.silent), ReceiverTimeout),
        (Fault(kind=FaultKind.stall, after_s=0.2), ReceiverTimeout),
        (Fault(kind=FaultKind.drop, after_s=0.2), ReceiverConnectionLost),
        (Fault(kind=FaultKind.malformed, after_s=0.1), ReceiverProtocolError),
        (Fault(kind=FaultKind.hostile), ReceiverProtocolError),
    ],
    ids=lambda value: value.kind.value if isinstance(value, Fault) else "",
)
async def test_simulated_faults_become_typed_errors(
    fault: Fault, error_type: type[ReceiverError]
) -> None:
    scenario = openwebrx_scenario()
    async with running_network(scenario, ephemeral=True) as network:
        network.state.faults["coazze"] = fault
        with pytest.raises(error_type) as raised:
            await record_audio(
                StationEndpoint("coazze", network.url("coazze")),
                frequency_hz=scenario.transmitter.frequency_hz,
                duration_s=1.0,
                **TIMEOUTS,
            )
    assert raised.value.station_id == "coazze"
    assert str(raised.value).startswith("receiver coazze: ")


@pytest.mark.parametrize("every_n", [1, 2, 3, 4, 5])
async def test_every_malformed_variant_is_a_protocol_error(every_n: int) -> None:
    """The rotation puts a different variant first for each every_n (0, 1, 2, ...)."""
    scenario = openwebrx_scenario()
    async with running_network(scenario, ephemeral=True) as network:
        # Chunk index k is spoilt when k % every_n == 0, with variant (k // every_n) % 5;
        # starting late enough puts each variant first in turn.
        network.state.faults["coazze"] = Fault(kind=FaultKind.malformed, every_n=every_n)
        with pytest.raises(ReceiverProtocolError):
            await record_audio(
                StationEndpoint("coazze", network.url("coazze")),
                frequency_hz=scenario.transmitter.frequency_hz,
                duration_s=1.0,
                **TIMEOUTS,
            )


async def test_a_mixed_registry_serves_each_receiver_in_its_protocol() -> None:
    scenario = load_scenario(
        PACKAGE_DATA / "scenario-openwebrx.yaml",
        stations_file=PACKAGE_DATA / "stations-simulated-mixed.yaml",
    )
    protocols = {r.id: r.protocol for r in scenario.receivers}
    assert {r for r, p in protocols.items() if p == "openwebrx"} == {
        "montanaro",
        "coazze",
        "genova",
    }
    async with running_network(scenario, ephemeral=True) as network:
        assert network.url("giaveno").startswith("ws://")
        audio, iq = await asyncio.gather(
            record_audio(
                StationEndpoint("coazze", network.url("coazze")),
                frequency_hz=145.5e6,
                duration_s=0.5,
                **TIMEOUTS,
            ),
            record_iq(
                KiwiEndpoint("giaveno", network.url("giaveno")),
                frequency_hz=145.5e6,
                duration_s=0.5,
                **TIMEOUTS,
            ),
        )
    assert audio.driver == "openwebrx" and iq.driver == "kiwisdr" and iq.has_gps_time
    # One world: both hear the transmitter, each at its own receiver's level.
    assert measure_audio(audio).snr_db > 20 and measure(iq).snr_db > 20
