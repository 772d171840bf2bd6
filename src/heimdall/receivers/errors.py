"""Typed receiver failures, shared by every driver.

Each error names the station it came from and reads as one sentence an operator
can act on: ``str(error)`` is what ends up in an acquisition's ``errors`` list.
The subclasses let callers react by kind (retry later when busy, fix the password
when auth failed, ...) without parsing messages.
"""

from __future__ import annotations


class ReceiverError(Exception):
    """A receiver could not deliver a capture.

    Attributes:
        station_id: registry id of the receiver that failed.
        detail: what went wrong, without the station prefix.
    """

    def __init__(self, station_id: str, detail: str) -> None:
        super().__init__(f"receiver {station_id}: {detail}")
        self.station_id = station_id
        self.detail = detail


class ReceiverUnreachable(ReceiverError):
    """No connection could be opened (refused, no route, DNS, handshake refused)."""


class ReceiverTimeout(ReceiverError):
    """The receiver went quiet: no connection, no first sample block, or a stall."""


class ReceiverBusy(ReceiverError):
    """Every receiver channel is taken; trying again later may work."""


class ReceiverAuthFailed(ReceiverError):
    """The receiver refused the password (or did not get one in time)."""


class ReceiverDown(ReceiverError):
    """The receiver reports itself down (maintenance, update, no antenna...)."""


class ReceiverRedirect(ReceiverError):
    """The receiver asks to be reached at another address; not followed automatically.

    Attributes:
        url: the address the receiver redirects to.
    """

    def __init__(self, station_id: str, url: str) -> None:
        super().__init__(station_id, f"redirects to {url!r}; update the station registry")
        self.url = url


class ReceiverProtocolError(ReceiverError):
    """The receiver sent something the protocol does not allow (bad frame, tag, size)."""


class ReceiverStreamGap(ReceiverError):
    """Sample blocks were lost: the block sequence number jumped.

    Attributes:
        expected_sequence: the sequence number that should have come next.
        received_sequence: the one that came.
    """

    def __init__(self, station_id: str, expected_sequence: int, received_sequence: int) -> None:
        lost_blocks = (received_sequence - expected_sequence) & 0xFFFFFFFF
        super().__init__(
            station_id,
            f"sample stream has a gap: expected block {expected_sequence}, got "
            f"{received_sequence} ({lost_blocks} blocks lost); the recording is not contiguous",
        )
        self.expected_sequence = expected_sequence
        self.received_sequence = received_sequence


class ReceiverConnectionLost(ReceiverError):
    """The connection closed before the recording was complete."""


class ReceiverOutOfRange(ReceiverError):
    """The receiver cannot tune to the frequency: none of its bands (profiles) covers it."""


class ReceiverRetuned(ReceiverError):
    """The receiver changed band during the recording (another listener chose a profile)."""
