"""The runnable examples in the receiver modules' docstrings stay true."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from heimdall.receivers import audio_sigmf_io, gps
from heimdall.receivers.kiwisdr import client, protocol
from heimdall.receivers.openwebrx import adpcm
from heimdall.receivers.openwebrx import client as openwebrx_client
from heimdall.receivers.openwebrx import protocol as openwebrx_protocol


@pytest.mark.parametrize(
    "module",
    [gps, protocol, client, adpcm, openwebrx_protocol, openwebrx_client, audio_sigmf_io],
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
