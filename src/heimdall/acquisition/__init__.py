"""Acquisition: record every receiver at once, measure, store; at scale and under faults."""

#: Task names, for publishing without importing the worker's code.
ACQUIRE_TASK = "heimdall.acquisition.acquire_iq"
LOCALIZE_TASK = "heimdall.localization.localize"
