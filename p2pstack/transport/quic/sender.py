"""The send side of a QUIC stream, holding the writers' own buffers instead of a copy.

aioquic's ``QuicStreamSender`` appends everything written to one ``bytearray``, copies each
frame's bytes out of it twice (a slice, then ``bytes``), and deletes acknowledged bytes from
its front, which moves what is left whenever the array has to grow. In a bulk upload those
copies took about a sixth of the sender's samples (py-spy). :class:`ChunkedStreamSender`
keeps the data written as a list of read-only views (of the writer's ``bytes``, or of a
copy when the writer's buffer is mutable); a frame's data is copied once out of them, and
an acknowledged prefix releases whole chunks.

It keeps aioquic's bookkeeping as it is (``_pending``, ``_acked``, ``_buffer_start`` /
``_buffer_stop``, ``highest_offset``, the FIN and reset state), so loss, retransmission,
flow control and the connection's view of the stream do not change. The core installs it
on each application stream as the stream is made (:meth:`ChunkedStreamSender.adopt`);
crypto streams keep aioquic's sender.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from aioquic.quic.packet import QuicStreamFrame
from aioquic.quic.packet_builder import QuicDeliveryState
from aioquic.quic.stream import QuicStreamSender

from p2pstack.framing.views import byte_view

#: Released chunks are dropped from the front of the lists once this many have gathered
#: (and they are at least half of them): a list's front deletion moves what is left.
_COMPACT_AFTER = 32

_RELEASED = memoryview(b"")


def _immutable(data: Any) -> memoryview:
    """A byte view of ``data`` that nobody can change under us: of a ``bytes`` object (or
    of one a view already shows) as it is, of a copy of anything else."""
    view = byte_view(data)
    return view if isinstance(view.obj, bytes) else memoryview(view.tobytes())


class ChunkedStreamSender(QuicStreamSender):
    """aioquic's stream sender without the copies (see the module docstring).

    Data stays referenced from :meth:`write` until the peer acknowledges it (or the stream
    is reset); the shell bounds how much that is per stream (``unacked``)."""

    _chunks: list[memoryview]
    _starts: list[int]  # each chunk's first stream offset
    _head: int  # chunks before this index are released

    @classmethod
    def adopt(cls, sender: QuicStreamSender) -> None:
        """Turn a fresh aioquic sender (nothing written yet) into one of this class."""
        if type(sender) is not QuicStreamSender or sender._buffer_stop:
            return
        sender.__class__ = cls
        assert isinstance(sender, ChunkedStreamSender)
        sender._chunks = []
        sender._starts = []
        sender._head = 0
        sender._buffer = bytearray()  # unused; aioquic's own code never reaches it

    def write(self, data: bytes, end_stream: bool = False) -> None:
        if self._buffer_fin is not None:
            raise RuntimeError("Cannot send data after FIN")
        if self._reset_error_code is not None:
            raise RuntimeError("Cannot send data after the stream was reset")
        view = _immutable(data)
        size = len(view)
        if size:
            stop = self._buffer_stop
            self.buffer_is_empty = False
            self._pending.add(stop, stop + size)
            self._chunks.append(view)
            self._starts.append(stop)
            self._buffer_stop = stop + size
        if end_stream:
            self.buffer_is_empty = False
            self._buffer_fin = self._buffer_stop
            self._pending_eof = True

    def get_frame(self, max_size: int, max_offset: int | None = None) -> QuicStreamFrame | None:
        assert self._reset_error_code is None, "cannot call get_frame() after reset()"
        if max_size < 0:  # not even the frame header fits
            return None
        try:
            r = self._pending[0]
        except IndexError:
            if self._pending_eof:  # a FIN alone
                assert self._buffer_fin is not None
                self._pending_eof = False
                return QuicStreamFrame(fin=True, offset=self._buffer_fin)
            self.buffer_is_empty = True
            return None
        start = r.start
        stop = min(r.stop, start + max_size)
        if max_offset is not None and stop > max_offset:
            stop = max_offset
        if stop <= start:
            return None
        frame = QuicStreamFrame(data=self._data(start, stop), offset=start)
        self._pending.subtract(start, stop)
        if stop > self.highest_offset:
            self.highest_offset = stop
        if self._buffer_fin == stop:
            frame.fin = True
            self._pending_eof = False
        return frame

    def _data(self, start: int, stop: int) -> bytes:
        """The stream's bytes from offset ``start`` to ``stop`` (written, not released),
        copied once: the packet builder takes only ``bytes``."""
        chunks = self._chunks
        starts = self._starts
        i = bisect_right(starts, start, self._head) - 1
        assert i >= self._head, "asked for data already acknowledged"
        chunk = chunks[i]
        begin = start - starts[i]
        end = stop - starts[i]
        if end <= len(chunk):
            return chunk[begin:end].tobytes()
        parts = [chunk[begin:]]
        left = end - len(chunk)
        while left > 0:
            i += 1
            part = chunks[i][:left]
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def on_data_delivery(
        self, delivery: QuicDeliveryState, start: int, stop: int, fin: bool
    ) -> None:
        assert not fin or stop == self._buffer_fin, "inconsistent fin / stop"
        if self._reset_error_code is not None:
            return  # only the reset's acknowledgement matters now
        if delivery == QuicDeliveryState.ACKED:
            if stop > start:
                acked = self._acked
                acked.add(start, stop)
                first = acked[0]
                if first.start == self._buffer_start:
                    acked.shift()
                    self._buffer_start = first.stop
                    self._release()
            if fin:
                self._acked_fin = True
            if self._buffer_start == self._buffer_fin and self._acked_fin:
                self.is_finished = True
        else:  # lost: send it again
            if stop > start:
                self.buffer_is_empty = False
                self._pending.add(start, stop)
            if fin:
                self.buffer_is_empty = False
                self._pending_eof = True

    def reset(self, error_code: int) -> None:
        super().reset(error_code)
        if self._reset_error_code is not None:  # nothing will be sent again
            self._chunks.clear()
            self._starts.clear()
            self._head = 0

    def _release(self) -> None:
        """Drop the chunks wholly acknowledged (everything before ``_buffer_start``)."""
        chunks = self._chunks
        starts = self._starts
        head = self._head
        acked = self._buffer_start
        count = len(chunks)
        while head < count and starts[head] + len(chunks[head]) <= acked:
            chunks[head] = _RELEASED
            head += 1
        if head >= _COMPACT_AFTER and 2 * head >= count:
            del chunks[:head]
            del starts[:head]
            head = 0
        self._head = head
