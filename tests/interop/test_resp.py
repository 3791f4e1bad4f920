"""RESP2: the parser byte at a time, bad input, and the client against a server."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.errors import RemoteProtocolError
from p2pstack.interop.resp import RedisClient, RedisError, RespParser, encode_command

from .fake_redis import FakeRedis

pytestmark = pytest.mark.anyio

REPLIES = (
    b"+OK\r\n-ERR wrong type\r\n:42\r\n:-1\r\n$5\r\nhel\r\n\r\n$0\r\n\r\n$-1\r\n"
    b"*2\r\n$12\r\nlistenerAddr\r\n$3\r\n/a/\r\n*-1\r\n*0\r\n*2\r\n:1\r\n*1\r\n+x\r\n"
)
EXPECTED = [
    b"OK",
    "ERR wrong type",
    42,
    -1,
    b"hel\r\n",
    b"",
    None,
    [b"listenerAddr", b"/a/"],
    None,
    [],
    [1, [b"x"]],
]


def _drain(parser: RespParser) -> list[object]:
    out = []
    while (reply := parser.next_reply()) is not RespParser.NEED_DATA:
        out.append(str(reply) if isinstance(reply, RedisError) else reply)
    return out


def test_parser_whole_and_byte_at_a_time() -> None:
    whole = RespParser()
    whole.feed(REPLIES)
    assert _drain(whole) == EXPECTED
    trickle = RespParser()
    got: list[object] = []
    for i in range(len(REPLIES)):
        trickle.feed(REPLIES[i : i + 1])
        got += _drain(trickle)
    assert got == EXPECTED


def test_encode_command() -> None:
    assert encode_command("RPUSH", "k", b"v\r\n", 7) == (
        b"*4\r\n$5\r\nRPUSH\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$1\r\n7\r\n"
    )
    parser = RespParser()
    parser.feed(encode_command("BLPOP", "listenerAddr", "0"))
    assert parser.next_reply() == [b"BLPOP", b"listenerAddr", b"0"]


@pytest.mark.parametrize(
    "bad",
    [b"?x\r\n", b":12a\r\n", b"$-5\r\n", b"$2\r\nabcd\r\n", b"*-3\r\n", b"\r\n", b"*1\r\n-E\r\n"],
)
def test_parser_rejects_malformed(bad: bytes) -> None:
    parser = RespParser()
    parser.feed(bad)
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_parser_bounds_a_line_without_end() -> None:
    parser = RespParser()
    parser.feed(b"+" + b"x" * 70_000)
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


async def test_client_push_pop_delete_and_errors() -> None:
    fake = FakeRedis()
    async with fake.running() as addr, await RedisClient.connect(addr) as redis:
        assert await redis.rpush("listenerAddr", "/ip4/1.2.3.4/tcp/1") == 1
        assert await redis.rpush("listenerAddr", "/ip4/1.2.3.4/tcp/2") == 2
        assert await redis.blpop("listenerAddr", 1) == "/ip4/1.2.3.4/tcp/1"
        assert await redis.delete("listenerAddr") == 1
        assert await redis.blpop("listenerAddr", 0.05) is None
        with pytest.raises(RedisError, match="unknown command"):
            await redis.command("FLUSHALL")
        # the connection is still in step after an error reply
        assert await redis.rpush("other", "x") == 1


async def test_blpop_waits_for_a_later_push() -> None:
    fake = FakeRedis()
    async with fake.running() as addr:
        async with await RedisClient.connect(addr) as a, await RedisClient.connect(addr) as b:
            got: list[str | None] = []

            async def pop() -> None:
                got.append(await a.blpop("listenerAddr", 10))

            async with anyio.create_task_group() as tg:
                tg.start_soon(pop)
                await anyio.wait_all_tasks_blocked()
                await b.rpush("listenerAddr", "late")
            assert got == ["late"]


async def test_closed_server_is_a_typed_error() -> None:
    async def answer_nothing(stream: anyio.abc.ByteStream) -> None:
        await stream.receive()
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, answer_nothing)
        async with await RedisClient.connect(f"127.0.0.1:{port}") as redis:
            with pytest.raises(RemoteProtocolError, match="closed"):
                await redis.rpush("k", "v")
        tg.cancel_scope.cancel()
