"""A QUIC stream as a :class:`~p2pstack.muxer.abc.MuxedStream` (the same semantics as a
yamux stream).

Backpressure both ways: ``send`` returns once the data is in the connection's send buffer,
and waits while this stream has :data:`SEND_BUFFER` bytes the peer has not acknowledged
(until they fall to :data:`SEND_RESUME`), so a sender's memory does not grow with the size
of a transfer; the peer gets receive credit only as ``receive`` hands data to the
application (see :mod:`~p2pstack.transport.quic.core`).

Closing: ``send_eof`` sends FIN; ``aclose`` sends FIN and STOP_SENDING (unread data is
dropped and the peer's further sends fail), as go-libp2p's ``Close`` does; ``reset`` sends
RESET_STREAM and STOP_SENDING. A RESET_STREAM from the peer resets both directions here
(libp2p peers reset both at once), so ``send`` and ``receive`` raise ``StreamReset``; a
STOP_SENDING alone makes only ``send`` raise it. Once the connection is gone every call
raises ``BrokenResourceError``; data that had already arrived stays readable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from p2pstack.errors import StreamReset
from p2pstack.framing.views import byte_view
from p2pstack.muxer.buffered import BufferedStream

if TYPE_CHECKING:
    from p2pstack.transport.quic.connection import QuicMuxedConnection

#: Unacknowledged bytes one stream may hold in the send buffer before ``send`` waits. On
#: loopback, where the round trip is mostly the two sides' processing, 1 MiB capped a
#: transfer at about 90 MiB/s; 4 MiB lets it run at what the CPUs allow. Data sent as
#: ``bytes`` is held by reference, not copied (see :mod:`~p2pstack.transport.quic.sender`).
SEND_BUFFER = 4 << 20
#: A waiting ``send`` resumes once the unacknowledged bytes fell to this, so that it adds
#: a megabyte at a time rather than what each acknowledgement freed.
SEND_RESUME = SEND_BUFFER - (1 << 20)
#: A send at least this large yields to other tasks even when nothing made it wait.
YIELD_AFTER = 16 * 1024


class QuicStream(BufferedStream):
    """One bidirectional QUIC stream. Made by :class:`QuicMuxedConnection`, never directly."""

    _conn: QuicMuxedConnection

    def __init__(self, conn: QuicMuxedConnection, stream_id: int, outbound: bool) -> None:
        super().__init__(conn, stream_id, outbound)  # _reset: both directions
        self._send_stopped: StreamReset | None = None  # the peer sent STOP_SENDING

    @property
    def _done(self) -> bool:
        """Over in both directions, as far as this side is concerned."""
        return (
            self._closed
            or self._reset is not None
            or (self._local_ended and self._remote_ended and not self._chunks)
        )

    # ------------------------------------------------------------------ called by the connection

    def _on_data(self, data: bytes, end: bool) -> None:
        if self._reset is not None or self._closed:
            return  # the connection stopped counting it as unread: never hand it out
        if data:
            self._chunks.append(data)
        if end:
            self._remote_ended = True
        self._wake_receiver()

    def _on_reset(self, exc: StreamReset) -> None:
        if self._reset is None:
            self._reset = exc
        self._chunks.clear()
        self._wake_receiver()
        self._wake_sender()

    def _on_stop_sending(self, exc: StreamReset) -> None:
        if self._send_stopped is None:
            self._send_stopped = exc
        self._wake_sender()

    # ------------------------------------------------------------------ ByteStream

    def _at_end(self) -> None:
        self._conn._maybe_forget(self)

    def _taken(self, n: int, drained: bool) -> None:
        self._conn._consumed(self._id, n)

    async def send(self, item: bytes) -> None:
        if self._sending:
            raise anyio.BusyResourceError("sending to")
        self._sending = True
        try:
            await self._lowlevel.checkpoint_if_cancelled()
            view = byte_view(item)  # send its bytes, not its items
            conn = self._conn
            waited = False
            while True:
                self._check_writable()
                if not view:
                    break
                room = SEND_BUFFER - conn._unacked(self._id)
                if room > 0:
                    # The send buffer keeps a view of an immutable item (bytes) and a copy
                    # of anything else (the caller may change it once send returns).
                    conn._send(self._id, view[:room], False)
                    view = view[room:]
                else:
                    conn._wait_for_acks(self)
                    await self._send_parker.park()
                    waited = True
        finally:
            self._sending = False
        if not waited and len(item) >= YIELD_AFTER:
            # A bulk sender whose data all went at once still lets others run (outside the
            # busy guard); a small message skips the scheduler round trip.
            await anyio.lowlevel.cancel_shielded_checkpoint()

    def _check_writable(self) -> None:
        if self._closed or self._local_ended:
            raise anyio.ClosedResourceError
        if self._reset is not None:
            raise self._reset
        if self._send_stopped is not None:
            raise self._send_stopped
        if self._broken is not None:
            raise anyio.BrokenResourceError("connection lost") from self._broken

    async def send_eof(self) -> None:
        """Half-close (FIN): the peer reads EOF after our data; we can still receive."""
        if self._local_ended or self._reset is not None or self._send_stopped is not None:
            await anyio.lowlevel.checkpoint()
            return
        if self._broken is not None:
            raise anyio.BrokenResourceError("connection lost") from self._broken
        self._local_ended = True
        self._conn._send(self._id, b"", True)
        self._conn._maybe_forget(self)
        await anyio.lowlevel.checkpoint()

    async def reset(self) -> None:
        if self._reset is None and self._broken is None and not self._closed:
            self._on_reset(StreamReset(0, remote=False))
            self._conn._abort_stream(self._id, reset=True)
            self._conn._forget(self._id)
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Close our write side (FIN) and stop reading (STOP_SENDING); unread data is
        dropped, and the peer's further sends fail."""
        if self._closed:
            await anyio.lowlevel.checkpoint()
            return
        self._closed = True
        if self._reset is None and self._broken is None:
            if not self._local_ended and self._send_stopped is None:
                self._local_ended = True
                self._conn._send(self._id, b"", True)
            self._conn._abort_stream(self._id, reset=False, stop=not self._remote_ended)
        self._chunks.clear()
        self._conn._forget(self._id)
        self._wake_receiver()
        self._wake_sender()
        await anyio.lowlevel.checkpoint()
