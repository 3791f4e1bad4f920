from collections.abc import Callable, Mapping
from typing import Any

import anyio
import pytest
from anyio.abc import ByteStream

from p2pstack.attributes import P2PAttribute
from p2pstack.errors import MessageTooLarge
from p2pstack.framing.buffered import (
    BufferedByteStream,
    read_length_prefixed,
    write_length_prefixed,
)
from p2pstack.framing.length_prefixed import encode_length_prefixed
from p2pstack.testing import memory_stream_pair

pytestmark = pytest.mark.anyio


def pair() -> tuple[ByteStream, BufferedByteStream]:
    a, b = memory_stream_pair()
    return a, BufferedByteStream(b)


async def test_receive_forwards_when_empty_and_serves_buffer_first() -> None:
    a, b = pair()
    async with a, b:
        await a.send(b"from-inner")
        assert await b.receive() == b"from-inner"
        b.unread(b"world")
        b.unread(b"hello ")
        assert b.buffered == 11
        await a.send(b"later")
        assert await b.receive(4) == b"hell"
        assert await b.receive() == b"o world"
        assert await b.receive() == b"later"


async def test_initial_bytes() -> None:
    a, inner = memory_stream_pair()
    b = BufferedByteStream(inner, b"early")
    async with a, b:
        await a.send(b"late")
        assert await b.receive() == b"early"
        assert await b.receive() == b"late"


async def test_read_exactly_across_chunks() -> None:
    a, b = pair()
    async with a, b:
        for chunk in (b"ab", b"cde", b"fghij"):
            await a.send(chunk)
        assert await b.read_exactly(0) == b""
        assert await b.read_exactly(4) == b"abcd"
        assert await b.read_exactly(3) == b"efg"
        assert await b.receive() == b"hij"


async def test_read_exactly_eof_midway_keeps_partial_bytes() -> None:
    a, b = pair()
    async with a, b:
        await a.send(b"abc")
        await a.send_eof()
        with pytest.raises(anyio.IncompleteRead):
            await b.read_exactly(5)
        assert await b.receive() == b"abc"
        with pytest.raises(anyio.IncompleteRead):
            await b.read_exactly(1)


async def test_read_uvarint_prefixed_keeps_what_follows() -> None:
    a, b = pair()
    async with a, b:
        data = encode_length_prefixed(b"one") + encode_length_prefixed(b"two") + b"app"
        await a.send(data)
        assert await b.read_uvarint_prefixed(10) == b"one"
        assert await b.read_uvarint_prefixed(10) == b"two"
        assert await b.receive() == b"app"


async def test_read_uvarint_prefixed_byte_at_a_time() -> None:
    a, b = pair()
    body = b"x" * 300
    async with a, b:
        async with anyio.create_task_group() as tg:

            async def feed() -> None:
                for byte in encode_length_prefixed(body):
                    await a.send(bytes([byte]))

            tg.start_soon(feed)
            assert await b.read_uvarint_prefixed(300) == body


async def test_read_uvarint_prefixed_eof() -> None:
    a, b = pair()
    async with a, b:
        await a.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await b.read_uvarint_prefixed(10)
    a, b = pair()
    async with a, b:
        await a.send(b"\x05ab")
        await a.send_eof()
        with pytest.raises(anyio.IncompleteRead):
            await b.read_uvarint_prefixed(10)
    a, b = pair()
    async with a, b:
        await a.send(b"\x80")
        await a.send_eof()
        with pytest.raises(anyio.IncompleteRead):
            await b.read_uvarint_prefixed(10)


async def test_read_uvarint_prefixed_too_large_before_body() -> None:
    a, b = pair()
    async with a, b:
        await a.send(b"\x81\x08")  # declares 1025 bytes; no body is ever sent
        with pytest.raises(MessageTooLarge):
            await b.read_uvarint_prefixed(1024)


async def test_read_is_cancel_safe() -> None:
    a, b = pair()
    async with a, b:
        await a.send(b"\x06abc")
        with anyio.move_on_after(0.05):
            await b.read_uvarint_prefixed(10)
            pytest.fail("should have been cancelled")
        await a.send(b"def")
        assert await b.read_uvarint_prefixed(10) == b"abcdef"


async def test_send_eof_and_close_forward() -> None:
    a, b = pair()
    async with a:
        await b.send(b"hi")
        assert await a.receive() == b"hi"
        await b.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await a.receive()
        b.unread(b"dropped")
        await b.aclose()
        assert b.buffered == 0
        with pytest.raises(anyio.ClosedResourceError):
            await b.receive()


class _Attributed(ByteStream):
    def __init__(self, inner: ByteStream) -> None:
        self.inner = inner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {P2PAttribute.protocol: lambda: "/test/1"}


async def test_extra_attributes_forwarded() -> None:
    a, inner = memory_stream_pair()
    b = BufferedByteStream(_Attributed(inner))
    async with a, b:
        assert b.extra(P2PAttribute.protocol) == "/test/1"


async def test_read_length_prefixed_plain_stream_never_over_reads() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        await a.send(encode_length_prefixed(b"hello") + b"rest")
        assert await read_length_prefixed(b, 10) == b"hello"
        assert await b.receive() == b"rest"
        await a.send(b"\x03ab")
        await a.send_eof()
        with pytest.raises(anyio.IncompleteRead):
            await read_length_prefixed(b, 10)
        with pytest.raises(anyio.EndOfStream):
            await read_length_prefixed(b, 10)


async def test_read_length_prefixed_with_caller_buffer() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        buffer = bytearray()
        await a.send(encode_length_prefixed(b"one") + encode_length_prefixed(b"two") + b"x")
        assert await read_length_prefixed(b, 10, buffer) == b"one"
        assert await read_length_prefixed(b, 10, buffer) == b"two"
        assert buffer == b"x"
        await a.send(b"\x81\x08")
        with pytest.raises(MessageTooLarge):
            await read_length_prefixed(b, 1024, bytearray())


async def test_read_length_prefixed_buffered_and_write() -> None:
    a, b = pair()
    async with a, b:
        await write_length_prefixed(a, b"msg")
        await a.send(b"after")
        assert await read_length_prefixed(b, 10) == b"msg"
        assert await b.receive() == b"after"
