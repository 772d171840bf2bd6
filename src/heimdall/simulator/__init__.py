"""A physical simulation of a KiwiSDR receiver network, speaking the real protocol.

``physics.render_receiver_iq`` is the pure model (no network); ``network`` serves
it on one WebSocket port per receiver with a loopback control API.
"""

from heimdall.simulator.physics import ReceiverTruth, RenderedIQ, link_budget, render_receiver_iq
from heimdall.simulator.scenario import Scenario, load_scenario

__all__ = [
    "ReceiverTruth",
    "RenderedIQ",
    "Scenario",
    "link_budget",
    "load_scenario",
    "render_receiver_iq",
]
