"""The runnable examples in the import modules' docstrings stay true."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from heimdall.imports import kiwi_wav, positions, recordings, sigmf_reader, timing


@pytest.mark.parametrize("module", [kiwi_wav, positions, recordings, sigmf_reader, timing])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
