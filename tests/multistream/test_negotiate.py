from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import ByteStream

from p2pstack.errors import MessageTooLarge, ProtocolNotSupported, RemoteProtocolError
from p2pstack.framing.buffered import BufferedByteStream
from p2pstack.multistream import (
    LazyNegotiatedStream,
    encode_message,
    select_inbound,
    select_outbound,
)
from p2pstack.muxer.yamux.connection import YamuxConnection
from p2pstack.testing import memory_stream_pair

pytestmark = pytest.mark.anyio

HEADER = encode_message("/multistream/1.0.0")
NA = b"\x03na\n"


async def read_until(stream: ByteStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        data += await stream.receive()
    return data


async def test_select_both_sides() -> None:
    a, b = memory_stream_pair()
    async with a, b, anyio.create_task_group() as tg:
        result: dict[str, tuple[str, ByteStream]] = {}

        async def listen() -> None:
            result["in"] = await select_inbound(b, {"/two", "/three"})

        tg.start_soon(listen)
        protocol, stream = await select_outbound(a, ["/one", "/two"])
    assert protocol == "/two" == result["in"][0]
    # nothing was over-read: the streams come back untouched
    assert stream is a and result["in"][1] is b


async def test_application_data_flows_after_negotiation() -> None:
    a, b = memory_stream_pair()
    async with a, b, anyio.create_task_group() as tg:

        async def serve() -> None:
            _, stream = await select_inbound(b, lambda p: p == "/echo")
            await stream.send(await stream.receive())

        tg.start_soon(serve)
        _, stream = await select_outbound(a, ["/echo"])
        await stream.send(b"ping")
        assert await stream.receive() == b"ping"


async def test_all_refused_closes_nothing() -> None:
    a, b = memory_stream_pair()
    async with a, b, anyio.create_task_group() as tg:

        async def listen() -> None:
            with pytest.raises(RemoteProtocolError):
                await select_inbound(b, {"/z"})

        tg.start_soon(listen)
        with pytest.raises(ProtocolNotSupported) as info:
            await select_outbound(a, ["/x", "/y"])
        assert info.value.protocols == ("/x", "/y")
        await a.send(b"still open")  # the caller decides what to do with the stream
        await a.send_eof()  # ends the listener's negotiation


async def test_inbound_leftover_preserved() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        await a.send(HEADER + encode_message("/x") + b"early data")
        protocol, stream = await select_inbound(b, {"/x"})
        assert protocol == "/x"
        assert isinstance(stream, BufferedByteStream) and stream.inner is b
        assert await stream.receive(5) == b"early"
        assert await stream.receive() == b" data"
        assert await read_until(a, len(HEADER) + 3) == HEADER + encode_message("/x")


async def test_outbound_leftover_preserved() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        await b.send(HEADER + NA)
        await b.send(encode_message("/y") + b"welcome")
        protocol, stream = await select_outbound(a, ["/x", "/y"])
        assert protocol == "/y"
        assert await stream.receive() == b"welcome"


async def test_leftover_pushed_back_into_existing_buffered_stream() -> None:
    a, inner = memory_stream_pair()
    b = BufferedByteStream(inner)
    async with a, b:
        await a.send(HEADER + encode_message("/x") + b"tail")
        _, stream = await select_inbound(b, {"/x"})
        assert stream is b
        assert await stream.receive() == b"tail"


async def test_byte_at_a_time() -> None:
    a, b = memory_stream_pair(max_buffer=float("inf"))
    async with a, b:
        for byte in HEADER + encode_message("/nope") + encode_message("/x") + b"!":
            await a.send(bytes([byte]))
        protocol, stream = await select_inbound(b, {"/x"})
        assert protocol == "/x"
        assert await stream.receive() == b"!"
        expected = HEADER + NA + encode_message("/x")
        assert await read_until(a, len(expected)) == expected


async def test_ls_then_select() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        await a.send(HEADER + encode_message("ls") + encode_message("/b"))
        protocol, _ = await select_inbound(b, ["/a", "/b"])
        assert protocol == "/b"
        listing = encode_message(encode_message("/a").decode() + encode_message("/b").decode())
        expected = HEADER + listing + encode_message("/b")
        assert await read_until(a, len(expected)) == expected


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (HEADER + b"\x81\x08" + b"p" * 1024 + b"\n", MessageTooLarge),
        (encode_message("/multistream/2.0.0"), RemoteProtocolError),
        (HEADER + b"\x03abc", RemoteProtocolError),
    ],
)
async def test_inbound_violations(data: bytes, error: type[Exception]) -> None:
    a, b = memory_stream_pair()
    async with a, b:
        await a.send(data)
        with pytest.raises(error):
            await select_inbound(b, {"/x"})


async def test_outbound_violations() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        await b.send(HEADER + b"\x81\x08")
        with pytest.raises(MessageTooLarge):
            await select_outbound(a, ["/x"])
    a, b = memory_stream_pair()
    async with a, b:
        await b.send(encode_message("/multistream/2.0.0"))
        with pytest.raises(RemoteProtocolError):
            await select_outbound(a, ["/x"])


async def test_eof_during_negotiation() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        await b.send(HEADER)
        await b.send_eof()
        with pytest.raises(RemoteProtocolError):
            await select_outbound(a, ["/x"])


async def test_lazy_success() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        # Returns without any answer from the listener: nobody is listening yet.
        with anyio.fail_after(1):
            protocol, stream = await select_outbound(a, ["/x"], lazy=True)
        assert protocol == "/x" and isinstance(stream, LazyNegotiatedStream)
        await stream.send(b"request")
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                _, inbound = await select_inbound(b, {"/x"})
                assert await read_until(inbound, 7) == b"request"
                await inbound.send(b"response")

            tg.start_soon(serve)
            assert await stream.receive(4) == b"resp"
            assert await stream.receive() == b"onse"


async def test_lazy_answer_and_data_in_one_chunk() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        _, stream = await select_outbound(a, ["/x"], lazy=True)
        await b.send(HEADER + encode_message("/x") + b"abcdef")
        assert await stream.receive(2) == b"ab"
        assert await stream.receive() == b"cdef"
        await b.send(b"more")
        assert await stream.receive() == b"more"


async def test_lazy_na() -> None:
    a, b = memory_stream_pair()
    async with a, b, anyio.create_task_group() as tg:

        async def listen() -> None:
            # the dialer's pipelined data is read as a (malformed) proposal
            with pytest.raises(RemoteProtocolError):
                await select_inbound(b, {"/y"})

        tg.start_soon(listen)
        _, stream = await select_outbound(a, ["/x"], lazy=True)
        await stream.send(b"\x04data")  # no trailing newline
        with pytest.raises(ProtocolNotSupported):
            await stream.receive()
        with pytest.raises(ProtocolNotSupported):
            await stream.receive()
        with pytest.raises(ProtocolNotSupported):
            await stream.send(b"more")


async def test_lazy_receive_is_cancel_safe() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        _, stream = await select_outbound(a, ["/x"], lazy=True)
        await b.send(HEADER)
        with anyio.move_on_after(0.05):
            await stream.receive()
            pytest.fail("should have been cancelled")
        await b.send(encode_message("/x") + b"ok")
        assert await stream.receive() == b"ok"


async def test_lazy_ignored_with_several_protocols() -> None:
    a, b = memory_stream_pair()
    async with a, b, anyio.create_task_group() as tg:
        tg.start_soon(select_inbound, b, {"/y"})
        protocol, stream = await select_outbound(a, ["/x", "/y"], lazy=True)
        assert protocol == "/y" and stream is a


async def test_lazy_stream_forwards_eof_and_close() -> None:
    a, b = memory_stream_pair()
    async with b:
        _, stream = await select_outbound(a, ["/x"], lazy=True)
        await stream.send_eof()
        assert await read_until(b, len(HEADER) + 3) == HEADER + encode_message("/x")
        with pytest.raises(anyio.EndOfStream):
            await b.receive()
        await stream.aclose()
        with pytest.raises(anyio.BrokenResourceError):
            await b.send(b"x")


@asynccontextmanager
async def yamux_stream_pair() -> AsyncIterator[tuple[ByteStream, ByteStream]]:
    """An outbound and the matching inbound yamux stream: an inbound stream knows whether
    data is already buffered (``has_buffered_data``), as in a host."""
    raw_client, raw_server = memory_stream_pair()
    client = YamuxConnection(raw_client, True)
    server = YamuxConnection(raw_server, False)
    async with anyio.create_task_group() as tg:
        await tg.start(client.run)
        await tg.start(server.run)
        try:
            opened = await client.open_stream()  # sends the SYN
            accepted = await server.accept_stream()
            yield opened, accepted
        finally:
            await client.aclose()
            await server.aclose()


async def test_inbound_timeout_spares_a_proposal_already_buffered() -> None:
    async with yamux_stream_pair() as (dialer, listener):
        await dialer.send(HEADER + encode_message("/x") + b"data")
        await anyio.wait_all_tasks_blocked()
        # Everything is here: no waiting, so even a zero timeout does not fire.
        protocol, stream = await select_inbound(listener, {"/x"}, timeout=0)
        assert protocol == "/x"
        assert await stream.receive() == b"data"


async def test_inbound_timeout_ends_a_stalled_negotiation() -> None:
    async with yamux_stream_pair() as (dialer, listener):
        await dialer.send(HEADER + b"\x03/x")  # half a proposal, then nothing
        await anyio.wait_all_tasks_blocked()
        start = anyio.current_time()
        with pytest.raises(TimeoutError):
            await select_inbound(listener, {"/x"}, timeout=0.05)
        assert anyio.current_time() - start >= 0.05


async def test_answer_at_once_for_a_dialer_that_waits_for_it() -> None:
    async with yamux_stream_pair() as (dialer, listener):
        await dialer.send(HEADER + encode_message("/x"))  # several choices: it waits
        await anyio.wait_all_tasks_blocked()
        protocol, _ = await select_inbound(listener, {"/x"}, answer_at_once=True)
        assert protocol == "/x"
        # The answer is on its way although the listener has written nothing yet.
        expected = HEADER + encode_message("/x")
        assert await read_until(dialer, len(expected)) == expected


async def test_answer_held_back_when_the_dialer_sent_data_after_its_proposal() -> None:
    async with yamux_stream_pair() as (dialer, listener):
        await dialer.send(HEADER + encode_message("/x") + b"hello")
        await anyio.wait_all_tasks_blocked()
        protocol, stream = await select_inbound(listener, {"/x"}, answer_at_once=True)
        assert protocol == "/x"
        await anyio.wait_all_tasks_blocked()
        assert not dialer.has_buffered_data  # type: ignore[attr-defined]
        assert await stream.receive() == b"hello"
        await stream.send(b"world")  # the answer goes out with the first write
        expected = HEADER + encode_message("/x") + b"world"
        assert await read_until(dialer, len(expected)) == expected
