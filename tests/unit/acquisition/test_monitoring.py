"""Receiver health and busy channels as read from the acquisitions, newest first."""

from __future__ import annotations

import doctest

from heimdall.acquisition import monitoring
from heimdall.acquisition.monitoring import FinishedAcquisition, ReceiverHealth, receiver_health


def test_docstring_examples() -> None:
    result = doctest.testmod(monitoring)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_failure_that_names_no_receiver_says_nothing_about_it() -> None:
    # Storage down failed the newest acquisition; genova's own record is one failure.
    recent = [
        FinishedAcquisition(False, ["genova", "torino"], frozenset()),
        FinishedAcquisition(True, ["genova", "torino"], frozenset({"genova"})),
        FinishedAcquisition(True, ["genova", "torino"], frozenset()),
    ]
    health = receiver_health(["genova", "torino"], recent)
    assert health["genova"] == ReceiverHealth(up=False, consecutive_failures=1)
    assert health["torino"] == ReceiverHealth(up=True, consecutive_failures=0)


def test_failures_counted_only_in_acquisitions_that_selected_the_receiver() -> None:
    recent = [
        FinishedAcquisition(True, ["torino"], frozenset()),
        FinishedAcquisition(True, ["genova"], frozenset({"genova"})),
        FinishedAcquisition(True, ["genova", "torino"], frozenset({"genova"})),
        FinishedAcquisition(True, ["genova"], frozenset({"genova"})),
    ]
    health = receiver_health(["genova", "torino", "milano"], recent)
    assert health["genova"] == ReceiverHealth(up=False, consecutive_failures=3)
    assert health["milano"] == ReceiverHealth(up=None, consecutive_failures=0)
    # A station no longer in the registry is not reported.
    assert set(receiver_health(["torino"], recent)) == {"torino"}
