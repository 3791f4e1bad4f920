"""A yamux stream as an anyio ByteStream (the semantics are those of
:class:`~p2pstack.muxer.abc.MuxedStream`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import StreamReset
from p2pstack.framing.views import byte_view
from p2pstack.muxer.buffered import BufferedStream
from p2pstack.muxer.yamux.frame import DEFAULT_MAX_REFERENCED_FRAME_DATA

if TYPE_CHECKING:
    from p2pstack.muxer.yamux.connection import YamuxConnection

#: A send() queues at most this much before it lets the writer catch up: one frame of
#: the largest size sent by reference (four whole Noise messages).
SEND_CHUNK = DEFAULT_MAX_REFERENCED_FRAME_DATA
#: A send at least this large yields to other tasks even when nothing made it wait.
YIELD_AFTER = 16 * 1024


class YamuxStream(BufferedStream):
    """One yamux stream. Created by :class:`YamuxConnection`, never directly."""

    _conn: YamuxConnection

    def __init__(self, conn: YamuxConnection, stream_id: int, outbound: bool) -> None:
        super().__init__(conn, stream_id, outbound)
        self._buffered = 0

    # ------------------------------------------------------------------ called by the connection

    def _on_data(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake_receiver()

    def _on_remote_end(self) -> None:
        self._remote_ended = True
        self._wake_receiver()

    def _wake_receiver(self) -> None:
        if self._receiving:
            conn = self._conn
            if conn._leader is self:
                conn._wake_leader()  # it waits on the socket, not on its parker
            else:
                conn._woke = True
                self._receive_parker.unpark()

    def _on_reset(self, exc: StreamReset) -> None:
        if self._reset is None:
            self._reset = exc
        self._chunks.clear()
        self._buffered = 0
        self._wake_receiver()
        self._wake_sender()

    # ------------------------------------------------------------------ ByteStream

    def _before_wait(self) -> None:
        # Whatever is queued (our SYN, say) must be on its way before we wait.
        self._conn._flush_before_wait()

    async def _wait_for_data(self) -> None:
        await self._conn._await_data(self)

    def _taken(self, n: int, drained: bool) -> None:
        self._buffered -= n
        self._conn._consumed(self._id, n, drained)

    async def send(self, item: bytes) -> None:
        if self._sending:
            raise anyio.BusyResourceError("sending to")
        self._sending = True
        try:
            await self._lowlevel.checkpoint_if_cancelled()
            view = byte_view(item)  # send its bytes, not its items
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
                    await self._send_parker.park()
                    gave_way = True
            if not gave_way and len(item) >= YIELD_AFTER:
                # A bulk sender whose data all went out at once still lets others run;
                # a small message skips the scheduler round trip (it matters for latency).
                await self._lowlevel.cancel_shielded_checkpoint()
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
        await self._lowlevel.checkpoint_if_cancelled()

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
            await self._lowlevel.checkpoint_if_cancelled()
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
        await self._lowlevel.checkpoint_if_cancelled()
