"""Opening and closing a receiver's websocket the same way for every driver.

Both drivers need the same things from the connection: bounded frames and a
bounded receive queue (memory), no proxy from the environment, no compression
(no decompression work on hostile input), websocket pings off (the protocols
have their own liveness), and every way the opening can fail mapped onto a
typed :class:`~heimdall.receivers.errors.ReceiverError` naming the station.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidURI,
    PayloadTooBig,
)
from websockets.exceptions import ProtocolError as WebSocketProtocolError
from websockets.frames import CloseCode

from heimdall.receivers.errors import (
    ReceiverConnectionLost,
    ReceiverError,
    ReceiverProtocolError,
    ReceiverTimeout,
    ReceiverUnreachable,
)

RECEIVE_QUEUE_FRAMES = 16


async def open_connection(
    url: str,
    *,
    station_id: str,
    station_url: str,
    connect_timeout_s: float,
    max_frame_bytes: int,
    close_timeout_s: float,
    user_agent: str,
) -> ClientConnection:
    """Connect to ``url``; errors name ``station_url`` (the registry's address)."""
    try:
        return await connect(
            url,
            open_timeout=connect_timeout_s,
            close_timeout=close_timeout_s,
            max_size=max_frame_bytes,
            # At most this many received frames wait for us: buffering <= 16 * max_size.
            max_queue=RECEIVE_QUEUE_FRAMES,
            # The protocols keep themselves alive; an unanswered ping must not end a
            # good recording.
            ping_interval=None,
            compression=None,
            # Go straight to the receiver: never route through an environment proxy.
            proxy=None,
            user_agent_header=user_agent,
        )
    except TimeoutError as exc:
        raise ReceiverTimeout(
            station_id, f"no connection to {station_url} within {connect_timeout_s:g} s"
        ) from exc
    except InvalidURI as exc:
        raise ReceiverUnreachable(station_id, f"invalid address {station_url!r}") from exc
    except InvalidHandshake as exc:
        raise ReceiverUnreachable(
            station_id, f"{station_url} refused the websocket handshake ({exc})"
        ) from exc
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ReceiverUnreachable(station_id, f"cannot connect to {station_url}: {reason}") from exc


async def _discard_incoming(connection: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in connection:
            pass


async def close_connection(connection: ClientConnection, code: CloseCode) -> None:
    """Close handshake, bounded by the connection's close timeout.

    The library stops reading from the socket while its receive queue is full,
    which would hold the server's close reply behind frames we no longer want;
    reading and discarding them meanwhile lets the handshake finish.
    """
    discard = asyncio.create_task(_discard_incoming(connection))
    try:
        await connection.close(code)
    finally:
        discard.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await discard


def closed_error(
    station_id: str, exc: ConnectionClosed, max_frame_bytes: int, progress: str
) -> ReceiverError:
    """Name why the websocket closed: our refusal of a bad frame, or the server leaving.

    ``progress`` says how far the recording got ("after 3 of 24 blocks").
    """
    cause = exc.__cause__
    # Our own close frame says why when the cause was not kept (the refusal happened
    # while the library read ahead, e.g. during the protocol handshake).
    sent_code = exc.sent.code if exc.sent is not None else None
    if isinstance(cause, PayloadTooBig) or sent_code == CloseCode.MESSAGE_TOO_BIG:
        return ReceiverProtocolError(
            station_id,
            f"sent a frame larger than the {max_frame_bytes}-byte limit; connection dropped",
        )
    if isinstance(cause, WebSocketProtocolError | UnicodeDecodeError):
        return ReceiverProtocolError(station_id, f"broke the websocket protocol ({cause}); dropped")
    return ReceiverConnectionLost(
        station_id, f"connection closed by the receiver {progress} ({exc})"
    )


async def explain_close(
    connection: ClientConnection,
    handle: Callable[[str | bytes], object],
    closed: Callable[[], ReceiverError],
) -> ReceiverError:
    """The error for a closed connection, preferring a refusal the server sent before closing.

    A receiver that refuses (``too_busy``, ``backoff``, ``down``) may close right
    after its message, so the close can surface on our next send while the
    message still waits, unread, in the library's queue. Messages left there go
    through ``handle`` (the queue is bounded and nothing more arrives); the first
    error it raises wins, else ``closed()`` says why the connection ended.
    """
    while True:
        try:
            message = await connection.recv()
        except ConnectionClosed:
            return closed()
        try:
            handle(message)
        except ReceiverError as error:
            return error
