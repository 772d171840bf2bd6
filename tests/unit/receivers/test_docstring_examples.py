"""The runnable examples in the receiver modules' docstrings stay true."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from heimdall.receivers import gps
from heimdall.receivers.kiwisdr import client, protocol


@pytest.mark.parametrize("module", [gps, protocol, client])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
