"""YamuxConnection over Noise over loopback TCP, where a stream's receiver reads the socket
itself when the reading role is free (see the module docstring of
:mod:`p2pstack.muxer.yamux.connection`): what happens to the role when its holder is
cancelled, when another task closes or resets its stream, when the connection fails
under it, and when many receivers wait at once."""

from __future__ import annotations

import itertools
import random
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from p2pstack.errors import StreamReset
from p2pstack.muxer.yamux.connection import YIELD_AFTER_TURNS, YamuxConnection
from p2pstack.muxer.yamux.stream import YamuxStream
from p2pstack.security.noise.stream import NoiseStream
from p2pstack.testing import noise_stream_pair, tcp_stream_pair
from p2pstack.transport.tcp import TcpStream

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def secure_pair() -> AsyncIterator[tuple[NoiseStream, NoiseStream, TcpStream]]:
    """Two Noise streams over loopback TCP, and the listener's raw TCP stream."""
    async with tcp_stream_pair() as (raw_client, raw_server):
        secure_client, secure_server = await noise_stream_pair(raw_client, raw_server)
        assert secure_client.pollable and secure_server.pollable
        yield secure_client, secure_server, raw_server


@asynccontextmanager
async def connections() -> AsyncIterator[tuple[YamuxConnection, YamuxConnection, TcpStream]]:
    async with secure_pair() as (secure_client, secure_server, raw_server):
        client = YamuxConnection(secure_client, True)
        server = YamuxConnection(secure_server, False)
        async with anyio.create_task_group() as tg:
            await tg.start(client.run)
            await tg.start(server.run)
            try:
                yield client, server, raw_server
            finally:
                await client.aclose()
                await server.aclose()


async def stream_pair(
    client: YamuxConnection, server: YamuxConnection
) -> tuple[YamuxStream, YamuxStream]:
    opened = await client.open_stream()
    await opened.send(b"hello")
    accepted = await server.accept_stream()
    assert await accepted.receive() == b"hello"
    assert isinstance(accepted, YamuxStream)
    return opened, accepted


async def round_trip(opened: YamuxStream, accepted: YamuxStream, message: bytes) -> None:
    """``message`` there and back. On return the reading role is free, and the reader task
    woken but not yet run: a receive that follows at once takes the role."""
    await opened.send(message)
    assert await accepted.receive() == message
    await accepted.send(message)
    assert await opened.receive() == message


async def test_a_waiting_receiver_reads_for_its_stream(anyio_backend: str) -> None:
    """Request/response: from the second round on, each reply is read by the receiver
    that waits for it (the role is free when it asks), not by the reader task."""
    rounds = 50
    with anyio.fail_after(10):
        async with connections() as (client, server, _):
            opened, accepted = await stream_pair(client, server)
            readers: list[object] = []
            pump = client._pump

            def recording_pump(until: YamuxStream | None = None) -> bool:
                readers.append(client._leader)
                return pump(until)

            client._pump = recording_pump  # type: ignore[method-assign]

            async def echo() -> None:
                for _ in range(rounds):
                    await accepted.send(await accepted.receive())

            async with anyio.create_task_group() as tg:
                tg.start_soon(echo)
                for i in range(rounds):
                    message = b"%d" % i
                    await opened.send(message)
                    assert await opened.receive() == message
            by_receiver = sum(1 for leader in readers if leader is opened)
            assert by_receiver >= rounds - 1


async def lead_a_receive(
    client: YamuxConnection, opened: YamuxStream, accepted: YamuxStream, then: Any
) -> BaseException | None:
    """Make ``opened``'s receiver hold the role and wait on the socket; meanwhile call
    ``then()`` from another task; return what the receive raised."""
    await round_trip(opened, accepted, b"warm up")
    outcome: list[BaseException | None] = []

    async def act() -> None:
        await anyio.wait_all_tasks_blocked()  # the receive below waits on the socket
        assert client._leader is opened and client._leader_waiting
        await then()

    async with anyio.create_task_group() as tg:
        tg.start_soon(act)
        try:
            await opened.receive()  # the role is free: this takes it
            outcome.append(None)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, StreamReset) as exc:
            outcome.append(exc)
    return outcome[0]


async def test_many_receivers_each_get_their_own_data(anyio_backend: str) -> None:
    """One receiver reads; what it reads for the others reaches them, in order."""
    rounds = 20
    with anyio.fail_after(20):
        async with connections() as (client, server, _):
            pairs = [await stream_pair(client, server) for _ in range(16)]

            async def echo(stream: YamuxStream) -> None:
                for _ in range(rounds):
                    await stream.send(await stream.receive())

            async def ask(stream: YamuxStream, seed: int) -> None:
                rng = random.Random(seed)
                for _ in range(rounds):
                    message = rng.randbytes(rng.randrange(1, 200))
                    await stream.send(message)
                    got = b""
                    while len(got) < len(message):
                        got += await stream.receive()
                    assert got == message

            async with anyio.create_task_group() as tg:
                for seed, (opened, accepted) in enumerate(pairs):
                    tg.start_soon(echo, accepted)
                    tg.start_soon(ask, opened, seed)


async def test_a_receiver_whose_data_is_always_there_lets_others_run(anyio_backend: str) -> None:
    """A bulk reader whose peer keeps the socket full finds data at every turn, without
    waiting; every YIELD_AFTER_TURNS turns it still gives the other tasks a pass (a
    ping's handler otherwise stalled behind a transfer). The socket that is never empty
    is the Noise stream's receive_nowait, handing out a Data frame each time and noting
    who read it (the receiver's own turns, or the reader task's) and how many passes the
    other task had by then; a real frame wakes whoever waits on the socket."""
    payload = b"x" * 100
    with anyio.fail_after(10):
        async with connections() as (client, server, _):
            opened, accepted = await stream_pair(client, server)
            passes = 0
            stop = anyio.Event()
            reads: list[tuple[bool, int]] = []  # (read in the receiver's turn, passes)

            async def other_task() -> None:
                nonlocal passes
                while not stop.is_set():
                    passes += 1
                    await anyio.lowlevel.checkpoint()

            frame = struct.pack(">BBHII", 0, 0, 0, accepted.stream_id, len(payload))

            def socket_never_empty() -> bytes:
                reads.append((server._leader is accepted, passes))
                return frame + payload

            async with anyio.create_task_group() as tg:
                tg.start_soon(other_task)
                secure: Any = server._secure
                secure.receive_nowait = socket_never_empty
                try:
                    await opened.send(b"y")  # the socket turns readable
                    while sum(own for own, _ in reads) < 4 * YIELD_AFTER_TURNS:
                        assert await accepted.receive() == payload
                finally:
                    del secure.receive_nowait  # the real socket again
                stop.set()
            # The receiver's turns in a row with no pass for the other task in between.
            longest = run = 0
            for (_, before), (own, after) in itertools.pairwise(reads):
                run = run + 1 if own and after == before else 0
                longest = max(longest, run)
            # The pass it gives may run the receiver again first in the scheduler's batch
            # (the order within a batch is the scheduler's): twice the turns at most.
            assert longest < 2 * YIELD_AFTER_TURNS


async def test_a_cancelled_reader_leaves_the_role_to_the_reader_task(anyio_backend: str) -> None:
    """The receiver holding the role is cancelled while it waits on the socket; frames
    for others are still handled: a new stream is accepted, data reaches the stream."""
    with anyio.fail_after(10):
        async with connections() as (client, server, _):
            opened, accepted = await stream_pair(client, server)
            with anyio.move_on_after(0.05):
                await opened.receive()  # holds the role, then is cancelled
            assert client._leader is not opened  # free, or the reader task's
            # Nobody receives on the client now: the reader task must read for it.
            second = await server.open_stream()
            await second.send(b"from the server")
            incoming = await client.accept_stream()
            assert await incoming.receive() == b"from the server"
            await accepted.send(b"late reply")
            assert await opened.receive() == b"late reply"


@pytest.mark.parametrize("action", ["aclose", "reset"])
async def test_closing_the_stream_wakes_its_reading_receiver(
    anyio_backend: str, action: str
) -> None:
    """Another task closes or resets the stream whose receiver waits on the socket."""
    with anyio.fail_after(10):
        async with connections() as (client, server, _):
            opened, accepted = await stream_pair(client, server)
            close = opened.aclose if action == "aclose" else opened.reset
            raised = await lead_a_receive(client, opened, accepted, close)
            expected = anyio.ClosedResourceError if action == "aclose" else StreamReset
            assert isinstance(raised, expected)
            # The socket was only interrupted, not closed: the connection goes on.
            other_client, other_server = await stream_pair(client, server)
            await other_server.send(b"still fine")
            assert await other_client.receive() == b"still fine"


async def test_an_interrupted_wait_leaves_a_blocked_send_waiting(anyio_backend: str) -> None:
    """interrupt_wait() wakes the socket's waiters through the loop's close notification;
    a send blocked on a full socket must go on waiting, and complete once the peer reads."""
    with anyio.fail_after(10):
        async with tcp_stream_pair() as (a, b):
            for stream in (a, b):  # small buffers: the send below must wait
                sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            data = random.Random(1).randbytes(4 << 20)
            received = bytearray()
            sent = anyio.Event()

            async def send() -> None:
                await a.send(data)
                sent.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                await anyio.wait_all_tasks_blocked()  # send() waits for room
                assert not sent.is_set()
                a.interrupt_wait()
                await anyio.wait_all_tasks_blocked()  # ... and waits again
                assert not sent.is_set()
                while len(received) < len(data):
                    received += await b.receive(1 << 20)
            assert bytes(received) == data


async def test_the_connection_failing_under_a_reading_receiver(anyio_backend: str) -> None:
    """The peer's socket sends garbage while our receiver holds the role: the receiver
    gets BrokenResourceError and the connection ends, as when the reader task meets it."""
    with anyio.fail_after(10):
        async with connections() as (client, server, raw_server):
            opened, accepted = await stream_pair(client, server)

            async def garbage() -> None:
                await raw_server.send(b"\x00\x20" + bytes(32))  # fails authentication

            raised = await lead_a_receive(client, opened, accepted, garbage)
            assert isinstance(raised, anyio.BrokenResourceError)
            assert client.is_closed
            with pytest.raises(anyio.BrokenResourceError):
                await client.open_stream()


async def test_accept_reads_what_is_waiting_when_nobody_else_reads(anyio_backend: str) -> None:
    """A new connection's first streams come with the handshake's last message: accepting
    reads them itself (here before the server's tasks ever run), and so does the
    accepted stream's receiver."""
    with anyio.fail_after(10):
        async with secure_pair() as (secure_client, secure_server, _):
            client = YamuxConnection(secure_client, True)
            server = YamuxConnection(secure_server, False)
            async with anyio.create_task_group() as tg:
                await tg.start(client.run)
                opened = await client.open_stream()
                await opened.send(b"first")
                await secure_server.wait_readable()  # the SYN and data are in the socket
                accepted = await server.accept_stream()
                assert await accepted.receive() == b"first"
                tg.start_soon(server.run)  # its writer sends what waits for it
                await accepted.send(b"reply")
                assert await opened.receive() == b"reply"
                await server.aclose()
                await client.aclose()
