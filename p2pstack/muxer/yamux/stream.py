"""A yamux stream as an anyio ByteStream (the semantics are those of
:class:`~p2pstack.muxer.abc.MuxedStream`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from p2pstack.attributes import P2PAttribute
from p2pstack.errors import StreamReset
from p2pstack.muxer.abc import MuxedStream

if TYPE_CHECKING:
    from p2pstack.muxer.yamux.connection import YamuxConnection

#: A send() queues at most this much before it lets the writer catch up.
SEND_CHUNK = 256 * 1024
#: A send at least this large yields to other tasks even when nothing made it wait.
YIELD_AFTER = 16 * 1024


class YamuxStream(MuxedStream):
    """One yamux stream. Created by :class:`YamuxConnection`, never directly."""

    def __init__(self, conn: YamuxConnection, stream_id: int, outbound: bool) -> None:
        self._conn = conn
        self._id = stream_id
        self._outbound = outbound
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._remote_ended = False
        self._local_ended = False
        self._closed = False
        self._reset: StreamReset | None = None
        self._broken: BaseException | None = None
        self._receive_waiter: anyio.Event | None = None
        self._send_waiter: anyio.Event | None = None
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

    def _on_data(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake_receiver()

    def _on_remote_end(self) -> None:
        self._remote_ended = True
        self._wake_receiver()

    def _on_reset(self, exc: StreamReset) -> None:
        if self._reset is None:
            self._reset = exc
        self._chunks.clear()
        self._buffered = 0
        self._wake_receiver()
        self._wake_sender()

    def _on_connection_lost(self, error: BaseException) -> None:
        # Data that already arrived stays readable; only what never came is lost.
        self._broken = error
        self._wake_receiver()
        self._wake_sender()

    def _wake_receiver(self) -> None:
        waiter = self._receive_waiter
        if waiter is not None:
            self._receive_waiter = None
            waiter.set()

    def _wake_sender(self) -> None:
        waiter = self._send_waiter
        if waiter is not None:
            self._send_waiter = None
            waiter.set()

    # ------------------------------------------------------------------ ByteStream

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
                    raise anyio.EndOfStream
                if self._broken is not None:
                    raise anyio.BrokenResourceError("connection lost") from self._broken
                # Whatever is queued (our SYN, say) must be on its way before we wait.
                self._conn._flush_before_wait()
                waiter = self._receive_waiter = anyio.Event()
                await waiter.wait()
            chunk = chunks[0]
            if len(chunk) <= max_bytes:
                chunks.popleft()
            else:
                chunks[0] = chunk[max_bytes:]
                chunk = chunk[:max_bytes]
            self._buffered -= len(chunk)
            self._conn._consumed(self._id, len(chunk), not chunks)
            return chunk
        finally:
            self._receiving = False

    async def send(self, item: bytes) -> None:
        if self._sending:
            raise anyio.BusyResourceError("sending to")
        self._sending = True
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            view = memoryview(item)
            conn = self._conn
            gave_way = False
            while True:
                self._check_writable()
                if not view:
                    break
                n = conn._send_data(self._id, view[:SEND_CHUNK])
                if n:
                    view = view[n:]
                    gave_way |= await conn._wait_writer_room()
                else:
                    waiter = self._send_waiter = anyio.Event()
                    await waiter.wait()
                    gave_way = True
            if not gave_way and len(item) >= YIELD_AFTER:
                # A bulk sender whose data all went out at once still lets others run;
                # a small message skips the scheduler round trip (it matters for latency).
                await anyio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    def _check_writable(self) -> None:
        if self._closed or self._local_ended:
            raise anyio.ClosedResourceError
        if self._reset is not None:
            raise self._reset
        if self._broken is not None:
            raise anyio.BrokenResourceError("connection lost") from self._broken

    async def send_eof(self) -> None:
        """Half-close: the peer reads EOF after our data; we can still receive."""
        if self._local_ended or self._reset is not None:
            return
        if self._broken is not None:
            raise anyio.BrokenResourceError("connection lost") from self._broken
        self._local_ended = True
        self._conn._send_eof(self._id)
        await anyio.lowlevel.checkpoint()

    async def reset(self) -> None:
        if self._reset is None:
            self._on_reset(StreamReset(0, remote=False))
            self._conn._reset_stream(self._id)
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Close our write side (FIN) and stop reading. Unread data is dropped; should the
        peer send more after this, the stream is reset (its sends then fail), as TCP does
        for data sent to a closed socket."""
        if self._closed:
            await anyio.lowlevel.checkpoint()
            return
        self._closed = True
        if self._reset is None and self._broken is None:
            if not self._local_ended:
                self._local_ended = True
                self._conn._send_eof(self._id)
            if self._buffered:
                self._conn._consumed(self._id, self._buffered, True)
        self._chunks.clear()
        self._buffered = 0
        self._conn._forget_stream(self._id)
        self._wake_receiver()
        self._wake_sender()
        await anyio.lowlevel.checkpoint()
