"""YamuxConnection, the anyio shell around the yamux session: how it schedules its writes.

The secure stream here is a stand-in with the Noise stream's non-blocking write path
(``send_nowait``), recording each write; the bytes go on to the peer over a memory pair.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from p2pstack.muxer.yamux.connection import YamuxConnection
from p2pstack.testing import memory_stream_pair

pytestmark = pytest.mark.anyio


class RecordingSecure(anyio.abc.ByteStream):
    """Every ``send_nowait`` is one write, recorded, then forwarded in order."""

    unsent = 0

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self.inner = inner
        self.writes: list[bytes] = []
        self._forward, self._forwarded = anyio.create_memory_object_stream[bytes](math.inf)

    def send_nowait(self, data: bytes | bytearray | memoryview) -> bool:
        self.writes.append(bytes(data))
        self._forward.send_nowait(bytes(data))
        return True

    async def flush(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def send(self, item: bytes) -> None:
        self.send_nowait(item)
        await anyio.lowlevel.checkpoint()

    async def pump(self) -> None:
        async with self._forwarded:
            async for chunk in self._forwarded:
                try:
                    await self.inner.send(chunk)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return  # the connection was closed under us

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        self._forward.close()
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {}


@asynccontextmanager
async def connections() -> AsyncIterator[tuple[RecordingSecure, YamuxConnection, YamuxConnection]]:
    raw_client, raw_server = memory_stream_pair(math.inf)
    secure = RecordingSecure(raw_client)
    client = YamuxConnection(secure, True)
    server = YamuxConnection(raw_server, False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(secure.pump)
        await tg.start(client.run)
        await tg.start(server.run)
        try:
            yield secure, client, server
        finally:
            await client.aclose()
            await server.aclose()
            tg.cancel_scope.cancel()


async def test_streams_busy_in_one_scheduler_pass_share_a_write(anyio_backend: str) -> None:
    async with connections() as (secure, client, server):
        await anyio.wait_all_tasks_blocked()
        before = len(secure.writes)
        streams = [await client.open_stream() for _ in range(10)]
        for i, stream in enumerate(streams):
            await stream.send(b"%d" % i)
        # The first send went out at once (with every SYN queued so far) ...
        assert len(secure.writes) == before + 1
        await anyio.wait_all_tasks_blocked()
        # ... the other nine streams' data left in one write of the writer task.
        assert len(secure.writes) == before + 2
        for i in range(10):
            accepted = await server.accept_stream()
            assert await accepted.receive() == b"%d" % i


async def test_a_reply_goes_out_before_send_returns(anyio_backend: str) -> None:
    async with connections() as (secure, client, server):
        stream = await client.open_stream()
        await stream.send(b"ping")
        accepted = await server.accept_stream()
        assert await accepted.receive() == b"ping"
        for _ in range(3):
            await accepted.send(b"pong")
            assert await stream.receive() == b"pong"
            # Data came in since our last write: this one is written at once, no task
            # switch in between.
            before = len(secure.writes)
            await stream.send(b"ping")
            assert len(secure.writes) == before + 1
            assert await accepted.receive() == b"ping"
        # Nothing came in since that write: the next ones wait for the writer task, which
        # sends them together.
        before = len(secure.writes)
        await stream.send(b"one")
        await stream.send(b"two")
        assert len(secure.writes) == before
        await anyio.wait_all_tasks_blocked()
        assert len(secure.writes) == before + 1
        received = b""
        while len(received) < 6:
            received += await accepted.receive()
        assert received == b"onetwo"


async def test_usable_before_its_tasks_first_run(anyio_backend: str) -> None:
    # The swarm starts run() with start_soon: streams opened (and data sent) before the
    # connection's tasks first ran must get through all the same.
    raw_client, raw_server = memory_stream_pair(math.inf)
    secure = RecordingSecure(raw_client)
    client = YamuxConnection(secure, True)
    server = YamuxConnection(raw_server, False)
    async with anyio.create_task_group() as tg:
        stream = await client.open_stream()
        await stream.send(b"early")
        tg.start_soon(secure.pump)
        tg.start_soon(client.run)
        tg.start_soon(server.run)
        accepted = await server.accept_stream()
        assert await accepted.receive() == b"early"
        await accepted.send(b"reply")
        assert await stream.receive() == b"reply"
        await client.aclose()
        await server.aclose()
        tg.cancel_scope.cancel()


async def test_streams_that_came_before_the_end_are_still_accepted(anyio_backend: str) -> None:
    async with connections() as (_, client, server):
        for i in range(3):
            stream = await client.open_stream()
            await stream.send(b"%d" % i)
        await anyio.wait_all_tasks_blocked()
        await client.aclose()
        await anyio.wait_all_tasks_blocked()
        for i in range(3):
            accepted = await server.accept_stream()
            assert await accepted.receive() == b"%d" % i
        with pytest.raises(anyio.EndOfStream):
            await server.accept_stream()


async def test_a_full_backlog_resets_further_streams(anyio_backend: str) -> None:
    from p2pstack.errors import StreamReset
    from p2pstack.muxer.yamux.connection import ACCEPT_BACKLOG

    async with connections() as (_, client, server):
        opened = []
        for _ in range(ACCEPT_BACKLOG + 2):
            stream = await client.open_stream()
            await stream.send(b"x")
            opened.append(stream)  # open_stream waits for ACKs past 256 unacknowledged
        for stream in opened[-2:]:
            with pytest.raises(StreamReset), anyio.fail_after(5):
                await stream.receive()
        for _ in range(ACCEPT_BACKLOG):
            accepted = await server.accept_stream()
            assert await accepted.receive() == b"x"
        stream = await client.open_stream()  # room again
        await stream.send(b"y")
        accepted = await server.accept_stream()
        assert await accepted.receive() == b"y"


async def test_one_task_accepts_at_a_time(anyio_backend: str) -> None:
    async with connections() as (_, client, server):
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.accept_stream)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await server.accept_stream()
            stream = await client.open_stream()
            await stream.send(b"z")
