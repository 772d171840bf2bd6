"""The runnable examples in the training modules' docstrings stay true."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from heimdall.training import evaluation, fit_data, robust


@pytest.mark.parametrize("module", [evaluation, fit_data, robust])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
