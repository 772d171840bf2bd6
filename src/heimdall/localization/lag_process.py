"""The localization's lag process: half of a large star's pairs on the second core.

``pairs.reference_lags`` sends it the second half of a reference's partners
(``core.call_process``: a child process answering pickled calls, importing the DSP only);
each compute worker child starts its own (``localization.tasks``).
"""

from __future__ import annotations

import os
import threading

from heimdall.core.call_process import CallProcess

_lock = threading.Lock()
_process: CallProcess | None = None


def lag_process() -> CallProcess:
    """This process's lag process, started on first use and again after it died."""
    global _process
    with _lock:
        if _process is None or not _process.alive():
            _process = CallProcess(preload="heimdall.dsp.tdoa")
        return _process


def stop_lag_process() -> None:
    """Stop this process's lag process, if it has one (a service shutting down)."""
    global _process
    with _lock:
        if _process is not None:
            _process.stop()
        _process = None


def _forget_in_child() -> None:
    # A forked child (a prefork worker) must not share its parent's pipe: it starts its
    # own, and closes its copy of the parent's end, so that the parent's lag process
    # still sees EOF when the parent ends.
    global _process, _lock
    if _process is not None:
        _process.close_inherited()
    _process, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
