"""What a yamux stream and a QUIC stream share: data the connection queued for the reader,
one waiting receiver and one waiting sender, the attributes, and the receive path.

A subclass says what its connection needs at four points of ``receive``: before the
reader waits (:meth:`_before_wait`), how it waits (:meth:`_wait_for_data`), when it reads
the end (:meth:`_at_end`), and after it took bytes (:meth:`_taken`, which hands
flow-control credit back).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from p2pstack import lowlevel
from p2pstack.attributes import P2PAttribute
from p2pstack.errors import StreamReset
from p2pstack.muxer.abc import MuxedStream


class BufferedStream(MuxedStream):
    """A :class:`MuxedStream` fed by its connection (``_on_data``-style calls append to
    ``_chunks`` and wake the reader). Semantics are those of :mod:`p2pstack.muxer.abc`."""

    _conn: Any  # the connection: its ``extra_attributes`` are the stream's too

    def __init__(self, conn: Any, stream_id: int, outbound: bool) -> None:
        self._conn = conn
        self._id = stream_id
        self._outbound = outbound
        self._chunks: deque[bytes] = deque()
        self._remote_ended = False
        self._local_ended = False
        self._closed = False
        self._reset: StreamReset | None = None
        self._broken: BaseException | None = None
        ll = self._lowlevel = lowlevel.current()
        # The stream's reader and its sender each wait here (one task at a time apiece).
        self._receive_parker = ll.parker()
        self._send_parker = ll.parker()
        self._receiving = False
        self._sending = False
        self.protocol: str | None = None

    # ------------------------------------------------------------------ attributes

    @property
    def stream_id(self) -> int:
        return self._id

    @property
    def has_buffered_data(self) -> bool:
        """Whether ``receive()`` would return at once (data is already here)."""
        return bool(self._chunks)

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        attrs: dict[Any, Callable[[], Any]] = {**self._conn.extra_attributes}
        attrs[P2PAttribute.direction] = lambda: "outbound" if self._outbound else "inbound"
        if self.protocol is not None:
            protocol = self.protocol
            attrs[P2PAttribute.protocol] = lambda: protocol
        return attrs

    # ------------------------------------------------------------------ called by the connection

    def _on_connection_lost(self, error: BaseException) -> None:
        # Data that already arrived stays readable; only what never came is lost.
        self._broken = error
        self._wake_receiver()
        self._wake_sender()

    def _wake_receiver(self) -> None:
        self._receive_parker.unpark()

    def _wake_sender(self) -> None:
        self._send_parker.unpark()

    # ------------------------------------------------------------------ receiving

    def _before_wait(self) -> None:
        """The reader is about to wait for data."""

    def _at_end(self) -> None:
        """The reader met the end of the peer's data."""

    def _taken(self, n: int, drained: bool) -> None:
        """The reader took ``n`` bytes (``drained``: nothing is left queued)."""

    async def _wait_for_data(self) -> None:
        """Wait until the connection wakes the reader (see :meth:`_has_news`)."""
        await self._receive_parker.park()

    def _has_news(self) -> bool:
        """Whether a waiting reader has something to act on: data, the end, a reset, a
        local close or the connection's loss."""
        return bool(
            self._chunks
            or self._remote_ended
            or self._closed
            or self._reset is not None
            or self._broken is not None
        )

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._receiving:
            raise anyio.BusyResourceError("receiving from")
        self._receiving = True
        try:
            chunks = self._chunks
            while not chunks:
                if self._closed:
                    raise anyio.ClosedResourceError
                if self._reset is not None:
                    raise self._reset
                if self._remote_ended:
                    self._at_end()
                    raise anyio.EndOfStream
                if self._broken is not None:
                    raise anyio.BrokenResourceError("connection lost") from self._broken
                self._before_wait()
                await self._wait_for_data()
            chunk = chunks[0]
            if len(chunk) <= max_bytes:
                chunks.popleft()
            else:
                chunks[0] = chunk[max_bytes:]
                chunk = chunk[:max_bytes]
            self._taken(len(chunk), not chunks)
            return chunk
        finally:
            self._receiving = False
