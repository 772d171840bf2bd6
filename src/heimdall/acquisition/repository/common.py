"""Shared by the acquisition queries: state values, the live-acquisition filter, lock keys."""

from __future__ import annotations

from datetime import timedelta

from heimdall.models import Acquisition, AcquisitionSource, AcquisitionState

PENDING = AcquisitionState.PENDING.value
PROGRESS = AcquisitionState.PROGRESS.value
ACTIVE_STATES = (PENDING, PROGRESS)
# Imports hold no receiver channels and say nothing about the receivers' health now.
LIVE = Acquisition.source == AcquisitionSource.live.value
# Advisory lock keys: channel grant passes, and the sweeper.
CHANNEL_LOCK_KEY = 0x48454D4401
SWEEPER_LOCK_KEY = 0x48454D4402


def interval(value: float) -> timedelta:
    return timedelta(seconds=value)
