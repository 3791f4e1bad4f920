"""In-process connected byte stream pairs, for tests of anything that speaks over a stream."""

from __future__ import annotations

import anyio
from anyio.abc import ByteStream
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


class MemoryByteStream(ByteStream):
    """One end of a :func:`memory_stream_pair`.

    Each direction is a memory object stream of ``bytes`` chunks holding at most
    ``max_buffer`` chunks before ``send()`` blocks. ``send_eof()`` closes our sending side
    (the peer's ``receive()`` then raises ``EndOfStream`` once it has drained what was
    sent); ``aclose()`` closes both directions of this end (the peer's ``send()`` then
    raises ``BrokenResourceError``).
    """

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive
        self._remainder = b""
        self._send_closed = False
        self._send_guard = anyio.ResourceGuard("sending to")
        self._receive_guard = anyio.ResourceGuard("receiving from")

    async def send(self, item: bytes) -> None:
        with self._send_guard:
            if self._send_closed:
                raise anyio.ClosedResourceError
            if not item:
                # An empty chunk would reach the peer as b"", which a byte stream never
                # returns.
                await checkpoint()
                return
            await self._send.send(bytes(item))

    async def send_eof(self) -> None:
        self._send_closed = True
        self._send.close()
        await checkpoint()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        with self._receive_guard:
            chunk = self._remainder
            if chunk:
                self._remainder = b""
                await checkpoint()
            else:
                chunk = await self._receive.receive()
            if len(chunk) > max_bytes:
                self._remainder = chunk[max_bytes:]
                chunk = chunk[:max_bytes]
            return chunk

    async def aclose(self) -> None:
        self._send_closed = True
        self._remainder = b""
        self._send.close()
        self._receive.close()
        await checkpoint()


def memory_stream_pair(max_buffer: float = 64) -> tuple[ByteStream, ByteStream]:
    """Return two connected byte streams: what one sends, the other receives.

    ``max_buffer`` is the number of chunks each direction holds before ``send()`` blocks
    (``math.inf`` for unbounded, 0 for a rendezvous).
    """
    a_to_b_send, a_to_b_receive = anyio.create_memory_object_stream[bytes](max_buffer)
    b_to_a_send, b_to_a_receive = anyio.create_memory_object_stream[bytes](max_buffer)
    return (
        MemoryByteStream(a_to_b_send, b_to_a_receive),
        MemoryByteStream(b_to_a_send, a_to_b_receive),
    )
