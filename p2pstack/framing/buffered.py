"""A ByteStream with a pushback buffer, and length-prefixed reads on any byte stream.

Reading a framed message from a byte stream usually receives more than the message: the
rest belongs to whoever reads next. :class:`BufferedByteStream` keeps those bytes and
serves them first, so nothing over-read is ever lost. When its buffer is empty,
``receive()`` is a plain call to the inner stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, ByteStream

from p2pstack.errors import LocalProtocolError, MessageTooLarge
from p2pstack.framing.length_prefixed import encode_length_prefixed
from p2pstack.framing.varint import decode_uvarint


async def _receive_into(stream: ByteReceiveStream, buffer: bytearray) -> None:
    # Appending after the await makes every caller cancel-safe: a chunk is either still in
    # the inner stream or already in the buffer.
    buffer += await stream.receive()


async def _read_prefixed_into(stream: ByteReceiveStream, buffer: bytearray, max_size: int) -> bytes:
    while True:
        decoded = decode_uvarint(buffer)
        if decoded is not None:
            break
        try:
            await _receive_into(stream, buffer)
        except anyio.EndOfStream:
            if buffer:
                raise anyio.IncompleteRead from None
            raise
    length, start = decoded
    if length > max_size:
        raise MessageTooLarge(f"message of {length} bytes exceeds limit of {max_size}")
    end = start + length
    while len(buffer) < end:
        try:
            await _receive_into(stream, buffer)
        except anyio.EndOfStream:
            raise anyio.IncompleteRead from None
    body = bytes(buffer[start:end])
    del buffer[:end]
    return body


class BufferedByteStream(ByteStream):
    """Wraps ``inner`` with a pushback buffer that ``receive()`` drains first.

    ``initial`` bytes (typically what a negotiation over-read) are served before anything
    from ``inner``. Sending, EOF, closing and typed attributes go straight to ``inner``.

    ``read_exactly()`` and ``read_uvarint_prefixed()`` are cancel-safe: bytes received
    before a cancellation stay in the buffer for the next read.
    """

    __slots__ = ("_buffer", "inner")

    def __init__(self, inner: ByteStream, initial: bytes | bytearray | memoryview = b"") -> None:
        #: the wrapped stream
        self.inner = inner
        self._buffer = bytearray(initial)

    @property
    def buffered(self) -> int:
        """Number of bytes waiting in the pushback buffer."""
        return len(self._buffer)

    def unread(self, data: bytes | bytearray | memoryview) -> None:
        """Push ``data`` back so that it is received before anything already buffered."""
        self._buffer[:0] = data

    async def receive(self, max_bytes: int = 65536) -> bytes:
        buffer = self._buffer
        if not buffer:
            return await self.inner.receive(max_bytes)
        if len(buffer) <= max_bytes:
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        return data

    async def read_exactly(self, n: int) -> bytes:
        """Receive exactly ``n`` bytes.

        Raises ``anyio.IncompleteRead`` if the stream ends first; the partial bytes stay
        buffered.
        """
        if n <= 0:
            if n < 0:
                raise LocalProtocolError(f"read_exactly({n})")
            return b""
        buffer = self._buffer
        if not buffer:
            # Common case: nothing buffered; ask for exactly what we need so that nothing
            # is copied through the buffer.
            try:
                chunk = await self.inner.receive(n)
            except anyio.EndOfStream:
                raise anyio.IncompleteRead from None
            if len(chunk) == n:
                return chunk
            buffer += chunk
        while len(buffer) < n:
            try:
                buffer += await self.inner.receive(n - len(buffer))
            except anyio.EndOfStream:
                raise anyio.IncompleteRead from None
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    async def read_uvarint_prefixed(self, max_size: int) -> bytes:
        """Receive one ``uvarint(len) || body`` message and return the body.

        Raises ``anyio.EndOfStream`` if the stream ends before the first byte,
        ``anyio.IncompleteRead`` if it ends inside the message, and
        :class:`MessageTooLarge` as soon as the prefix declares more than ``max_size``.
        """
        return await _read_prefixed_into(self.inner, self._buffer, max_size)

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        self._buffer.clear()
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.inner.extra_attributes


async def read_length_prefixed(
    stream: ByteReceiveStream, max_size: int, buffer: bytearray | None = None
) -> bytes:
    """Receive one uvarint-length-prefixed message from ``stream`` and return its body.

    No byte past the message is ever lost:

    * with ``buffer`` (a bytearray the caller keeps for this stream and passes to every
      read), chunks are received into it and bytes past the message stay in it;
    * without ``buffer``, a :class:`BufferedByteStream` uses its own pushback buffer;
    * without ``buffer`` on any other stream, nothing past the message is received: the
      prefix is read one byte at a time and then exactly the body. Use this only for a
      few small messages (handshakes); it is not cancel-safe mid-message.

    Raises ``anyio.EndOfStream`` at EOF before the first byte, ``anyio.IncompleteRead`` at
    EOF inside the message, and :class:`MessageTooLarge` for a length over ``max_size``.
    """
    if buffer is not None:
        return await _read_prefixed_into(stream, buffer, max_size)
    if isinstance(stream, BufferedByteStream):
        return await stream.read_uvarint_prefixed(max_size)
    prefix = bytearray()
    while True:
        try:
            prefix += await stream.receive(1)
        except anyio.EndOfStream:
            if prefix:
                raise anyio.IncompleteRead from None
            raise
        decoded = decode_uvarint(prefix)
        if decoded is not None:
            break
    length = decoded[0]
    if length > max_size:
        raise MessageTooLarge(f"message of {length} bytes exceeds limit of {max_size}")
    body = bytearray()
    while len(body) < length:
        try:
            body += await stream.receive(length - len(body))
        except anyio.EndOfStream:
            raise anyio.IncompleteRead from None
    return bytes(body)


async def write_length_prefixed(
    stream: ByteSendStream, body: bytes | bytearray | memoryview
) -> None:
    """Send ``uvarint(len(body)) || body`` in one write."""
    await stream.send(encode_length_prefixed(body))
