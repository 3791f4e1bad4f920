"""p2pstack.transport.quic: QuicTransport, its connections and streams over loopback UDP,
and two Hosts that talk QUIC.

:func:`running` runs transports in a task group; :func:`connect` makes two, dials from one
to the other and returns both ends of the connection as a :class:`Link`. Tests wait for
conditions (events, blocked tasks, a connection ending, or, with :func:`wait_for`, state
that datagrams change); the few about time (idle timeout, keep-alive, handshake deadline)
use fractions of a second. Where the contract is "nothing is left behind", the tests look
at the connection's and endpoint's private tables.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from multiaddr import Multiaddr

from p2pstack import Host, P2PAttribute, PeerIDMismatch, StreamReset
from p2pstack.errors import ConfigError, HandshakeError
from p2pstack.identity import KeyPair
from p2pstack.muxer.abc import MuxedConnection, MuxedStream
from p2pstack.protocols import echo
from p2pstack.transport.quic import (
    QuicConnectionClosed,
    QuicListener,
    QuicMuxedConnection,
    QuicStream,
    QuicTransport,
    split_quic_addr,
)
from p2pstack.transport.quic.core import NO_ERROR
from p2pstack.transport.quic.stream import SEND_BUFFER

pytestmark = pytest.mark.anyio

LOOPBACK = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")
MIB = 1 << 20
STREAM_WINDOW = 1 * MIB  # QuicCore's first stream window


@dataclass
class Link:
    """Both ends of one QUIC connection, and what made them."""

    client: QuicMuxedConnection
    server: QuicMuxedConnection
    client_transport: QuicTransport
    server_transport: QuicTransport
    listener: QuicListener
    accepted: MemoryObjectReceiveStream[MuxedConnection]
    tg: anyio.abc.TaskGroup


@asynccontextmanager
async def running(*transports: QuicTransport) -> AsyncIterator[anyio.abc.TaskGroup]:
    """Run the transports; everything started in the yielded task group stops on exit."""
    async with anyio.create_task_group() as tg:
        for transport in transports:
            await tg.start(transport.run)
        yield tg
        tg.cancel_scope.cancel()


async def listen(
    tg: anyio.abc.TaskGroup, transport: QuicTransport
) -> tuple[QuicListener, MemoryObjectReceiveStream[MuxedConnection]]:
    """Listen on loopback; accepted connections queue up in the returned stream."""
    listener = await transport.listen(LOOPBACK)
    hand_over, accepted = anyio.create_memory_object_stream[MuxedConnection](16)

    async def handler(conn: MuxedConnection) -> None:
        await hand_over.send(conn)

    await tg.start(listener.serve, handler)
    return listener, accepted


@asynccontextmanager
async def connect(
    client_options: dict[str, Any] | None = None,
    server_options: dict[str, Any] | None = None,
) -> AsyncIterator[Link]:
    client_transport = QuicTransport(KeyPair.generate(), **(client_options or {}))
    server_transport = QuicTransport(KeyPair.generate(), **(server_options or {}))
    async with running(client_transport, server_transport) as tg:
        listener, accepted = await listen(tg, server_transport)
        client = await client_transport.dial(listener.addrs[0], server_transport.local_peer)
        server = await accepted.receive()
        assert isinstance(client, QuicMuxedConnection)
        assert isinstance(server, QuicMuxedConnection)
        await tg.start(client.run)
        await tg.start(server.run)
        yield Link(client, server, client_transport, server_transport, listener, accepted, tg)


async def read_all(stream: anyio.abc.ByteStream) -> bytes:
    got = bytearray()
    while True:
        try:
            got += await stream.receive()
        except anyio.EndOfStream:
            return bytes(got)


async def echo_once(stream: MuxedStream) -> None:
    """Read until EOF, send it all back, close."""
    data = await read_all(stream)
    await stream.send(data)
    await stream.aclose()


async def serve_streams(
    conn: MuxedConnection, handle: Callable[[MuxedStream], Awaitable[None]]
) -> None:
    """Run ``handle`` on every inbound stream of ``conn`` until the connection ends."""
    async with anyio.create_task_group() as tg:
        while True:
            try:
                stream = await conn.accept_stream()
            except anyio.EndOfStream:
                return
            tg.start_soon(handle, stream)


async def serve_echo(conn: MuxedConnection) -> None:
    """Echo every inbound stream of ``conn`` until the connection ends."""
    await serve_streams(conn, echo_once)


async def echo_through(conn: MuxedConnection, data: bytes) -> bytes:
    stream = await conn.open_stream()
    await stream.send(data)
    await stream.send_eof()
    got = await read_all(stream)
    await stream.aclose()
    return got


async def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, looking every few milliseconds (for state that
    changes as datagrams arrive, which no event announces); the caller bounds the wait."""
    while not condition():
        await anyio.sleep(0.002)


async def opened_pair(link: Link) -> tuple[QuicStream, QuicStream]:
    """A client stream and the server's end of it (announced by a first byte, read)."""
    opened = await link.client.open_stream()
    await opened.send(b"!")
    accepted = await link.server.accept_stream()
    assert await accepted.receive() == b"!"
    assert isinstance(opened, QuicStream) and isinstance(accepted, QuicStream)
    return opened, accepted


# ---------------------------------------------------------------------------- dialing


async def test_dial_and_echo(anyio_backend: str) -> None:
    with anyio.fail_after(10):
        async with connect() as link:
            link.tg.start_soon(serve_echo, link.server)
            data = random.Random(1).randbytes(300_000)
            assert await echo_through(link.client, data) == data

            client, server = link.client, link.server
            assert client.remote_peer == link.server_transport.local_peer
            assert server.remote_peer == link.client_transport.local_peer
            assert client.extra(P2PAttribute.remote_addr) == link.listener.addrs[0]
            assert server.extra(P2PAttribute.local_addr) == link.listener.addrs[0]
            # The client dialed from an ephemeral socket bound to 0.0.0.0: same port.
            client_port = client.extra(P2PAttribute.local_addr).value_for_protocol("udp")
            assert server.extra(P2PAttribute.remote_addr).value_for_protocol("udp") == client_port
            assert client.extra(P2PAttribute.local_peer) == link.client_transport.local_peer
            assert client.extra(P2PAttribute.remote_public_key) == (
                link.server_transport.identity.public
            )
            assert client.extra(P2PAttribute.security_protocol) == "quic-v1"
            assert client.extra(P2PAttribute.muxer_protocol) == "quic-v1"
            stream = await client.open_stream()
            assert stream.extra(P2PAttribute.direction) == "outbound"
            assert stream.extra(P2PAttribute.remote_peer) == link.server_transport.local_peer
            await stream.aclose()


async def test_dial_checks_the_expected_peer(anyio_backend: str) -> None:
    """A dial that expects another peer fails with PeerIDMismatch; the listener never
    hands that connection out and goes on serving the next, correct, dial."""
    client_transport = QuicTransport(KeyPair.generate())
    server_transport = QuicTransport(KeyPair.generate())
    someone_else = KeyPair.generate().peer_id
    with anyio.fail_after(10):
        async with running(client_transport, server_transport) as tg:
            listener, accepted = await listen(tg, server_transport)
            with pytest.raises(PeerIDMismatch) as info:
                await client_transport.dial(listener.addrs[0], someone_else)
            assert info.value.expected == someone_else
            assert info.value.actual == server_transport.local_peer

            conn = await client_transport.dial(listener.addrs[0], server_transport.local_peer)
            served = await accepted.receive()
            tg.start_soon(serve_echo, served)
            assert await echo_through(conn, b"second dial") == b"second dial"
            with pytest.raises(anyio.WouldBlock):
                accepted.receive_nowait()  # the failed dial was never handed out


async def test_dial_without_expected_peer_learns_it(anyio_backend: str) -> None:
    client_transport = QuicTransport(KeyPair.generate())
    server_transport = QuicTransport(KeyPair.generate())
    with anyio.fail_after(10):
        async with running(client_transport, server_transport) as tg:
            listener, accepted = await listen(tg, server_transport)
            conn = await client_transport.dial(listener.addrs[0], None)
            assert conn.remote_peer == server_transport.local_peer
            assert (await accepted.receive()).remote_peer == client_transport.local_peer


async def test_dial_to_a_silent_port_fails_at_the_handshake_deadline(anyio_backend: str) -> None:
    transport = QuicTransport(KeyPair.generate(), handshake_timeout=0.3)
    with anyio.fail_after(10):
        async with running(transport):
            async with await anyio.create_udp_socket(local_host="127.0.0.1") as silent:
                port = silent.extra(anyio.abc.SocketAttribute.local_port)
                started = anyio.current_time()
                with pytest.raises(HandshakeError, match="handshake timeout"):
                    await transport.dial(Multiaddr(f"/ip4/127.0.0.1/udp/{port}/quic-v1"), None)
                assert anyio.current_time() - started >= 0.3
                (endpoint,) = transport._endpoints
                await wait_for(lambda: not endpoint._connections)
                assert endpoint._handshaking == 0


async def test_cancelled_dial_leaves_nothing_behind(anyio_backend: str) -> None:
    transport = QuicTransport(KeyPair.generate())
    with anyio.fail_after(10):
        async with running(transport):
            async with await anyio.create_udp_socket(local_host="127.0.0.1") as silent:
                port = silent.extra(anyio.abc.SocketAttribute.local_port)
                with anyio.move_on_after(0.05) as scope:
                    await transport.dial(Multiaddr(f"/ip4/127.0.0.1/udp/{port}/quic-v1"), None)
                assert scope.cancelled_caught
                (endpoint,) = transport._endpoints
                await wait_for(lambda: not endpoint._connections)
                assert endpoint._handshaking == 0


async def test_two_connections_between_the_same_transports(anyio_backend: str) -> None:
    """Each dial makes its own connection; closing one leaves the other working."""
    with anyio.fail_after(10):
        async with connect() as link:
            second = await link.client_transport.dial(
                link.listener.addrs[0], link.server_transport.local_peer
            )
            second_served = await link.accepted.receive()
            assert second is not link.client and second_served is not link.server
            link.tg.start_soon(serve_echo, link.server)
            link.tg.start_soon(serve_echo, second_served)
            assert await echo_through(second, b"two") == b"two"
            await second.aclose()
            assert await echo_through(link.client, b"one") == b"one"
            with pytest.raises(anyio.BrokenResourceError):
                await second.open_stream()


async def test_ipv6_loopback(anyio_backend: str) -> None:
    client_transport = QuicTransport(KeyPair.generate())
    server_transport = QuicTransport(KeyPair.generate())
    with anyio.fail_after(10):
        async with running(client_transport, server_transport) as tg:
            listener = await server_transport.listen(Multiaddr("/ip6/::1/udp/0/quic-v1"))
            (addr,) = listener.addrs
            assert str(addr).startswith("/ip6/::1/udp/")
            hand_over, accepted = anyio.create_memory_object_stream[MuxedConnection](1)
            await tg.start(listener.serve, hand_over.send)
            conn = await client_transport.dial(addr, server_transport.local_peer)
            tg.start_soon(serve_echo, await accepted.receive())
            assert await echo_through(conn, b"six") == b"six"
            assert str(conn.extra(P2PAttribute.remote_addr)) == str(addr)


async def test_closing_the_listener_ends_its_connections(anyio_backend: str) -> None:
    with anyio.fail_after(10):
        async with connect() as link:
            _, accepted = await opened_pair(link)
            await link.listener.aclose()
            await link.server.run()  # over: its socket is gone
            with pytest.raises(anyio.EndOfStream):
                await link.server.accept_stream()
            with pytest.raises(anyio.BrokenResourceError):
                await accepted.send(b"x")
            assert link.server_transport._endpoints == []


async def test_dial_needs_a_running_transport(anyio_backend: str) -> None:
    transport = QuicTransport(KeyPair.generate())
    with pytest.raises(anyio.ClosedResourceError):
        await transport.dial(Multiaddr("/ip4/127.0.0.1/udp/9/quic-v1"), None)
    with pytest.raises(anyio.ClosedResourceError):
        await transport.listen(LOOPBACK)


@pytest.mark.parametrize(
    ("addr", "ok"),
    [
        ("/ip4/127.0.0.1/udp/4001/quic-v1", True),
        ("/ip6/::1/udp/4001/quic-v1", True),
        ("/dns4/example.com/udp/4001/quic-v1", True),
        (
            "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWM6CgA9iBFZmcYAHA6A2qvbAxqfkmrYiRQuz3XEsk4Ksv",
            True,
        ),
        ("/ip4/127.0.0.1/udp/4001/quic", False),  # draft-29, not v1
        ("/ip4/127.0.0.1/tcp/4001", False),
        ("/ip4/127.0.0.1/udp/4001", False),
        ("/ip4/127.0.0.1/udp/4001/quic-v1/webtransport", False),
    ],
)
def test_which_addresses_quic_takes(addr: str, ok: bool) -> None:
    transport = QuicTransport(KeyPair.generate())
    assert transport.can_dial(Multiaddr(addr)) is ok
    assert transport.can_listen(Multiaddr(addr)) is ok


def test_split_quic_addr() -> None:
    assert split_quic_addr(Multiaddr("/ip4/10.0.0.1/udp/4001/quic-v1")) == ("10.0.0.1", 4001, "ip4")
    assert split_quic_addr(Multiaddr("/dns6/example.com/udp/1/quic-v1")) == (
        "example.com",
        1,
        "dns6",
    )
    with pytest.raises(ConfigError):
        split_quic_addr(Multiaddr("/ip4/10.0.0.1/tcp/4001"))


async def test_listen_needs_an_ip_address(anyio_backend: str) -> None:
    transport = QuicTransport(KeyPair.generate())
    async with running(transport):
        with pytest.raises(ConfigError):
            await transport.listen(Multiaddr("/dns4/localhost/udp/0/quic-v1"))


# ---------------------------------------------------------------------------- streams


async def test_many_concurrent_streams(anyio_backend: str) -> None:
    count = 64
    rng = random.Random(1)
    payloads = [rng.randbytes(rng.randint(1, 40_000)) for _ in range(count)]
    results: dict[int, bytes] = {}

    async def one(i: int, conn: MuxedConnection) -> None:
        results[i] = await echo_through(conn, payloads[i])

    with anyio.fail_after(15):
        async with connect() as link:
            link.tg.start_soon(serve_echo, link.server)
            async with anyio.create_task_group() as tg:
                for i in range(count):
                    tg.start_soon(one, i, link.client)
    assert [results[i] == payloads[i] for i in range(count)] == [True] * count


async def test_finished_streams_leave_no_state(anyio_backend: str) -> None:
    """Many more streams than the inbound limit, one after another, each ended in one of
    the ways a stream can end: afterwards neither side holds anything for them (aioquic
    discarded them, which is also what gave the client its stream credit back)."""
    limit = 4
    endings = ["eof-both-ways", "opener-closes", "opener-resets", "acceptor-resets"]

    async def answer(stream: MuxedStream) -> None:
        try:
            data = await stream.receive()
            if data == b"acceptor-resets":
                await stream.reset()
                return
            rest = await read_all(stream)
            await stream.send(data + rest)
        except anyio.BrokenResourceError:  # reset or stopped by the opener
            pass
        await stream.aclose()

    async def one(conn: MuxedConnection, ending: str) -> None:
        stream = await conn.open_stream()
        await stream.send(ending.encode())
        if ending == "eof-both-ways":
            await stream.send_eof()
            assert await read_all(stream) == ending.encode()
        elif ending == "opener-closes":
            pass
        elif ending == "opener-resets":
            await stream.reset()
        else:
            with pytest.raises(StreamReset):
                await read_all(stream)
        await stream.aclose()

    with anyio.fail_after(15):
        async with connect(server_options={"max_inbound_streams": limit}) as link:
            link.tg.start_soon(serve_streams, link.server, answer)
            for i in range(60):
                await one(link.client, endings[i % len(endings)])
            for conn in (link.client, link.server):
                await wait_for(lambda conn=conn: not conn.core._streams)
                assert not conn._streams
                assert not conn.core._unread and conn.core._unread_total == 0
                assert not conn.core._windows
                assert not conn._blocked_senders
            assert link.server.core._local_max_streams_bidi.value >= 60


async def test_streams_beyond_the_inbound_limit_wait(anyio_backend: str) -> None:
    """A server allowing 3 inbound streams: the client's 4th..9th open_stream wait (QUIC's
    stream limit) until earlier streams are over, then every stream completes."""
    limit, count = 3, 9
    opened = 0
    served: list[MuxedStream] = []
    release = anyio.Event()
    results: dict[int, bytes] = {}

    async def client_stream(i: int, conn: MuxedConnection) -> None:
        nonlocal opened
        stream = await conn.open_stream()
        opened += 1
        await stream.send(b"stream %d" % i)
        await stream.send_eof()
        results[i] = await read_all(stream)
        await stream.aclose()

    async def held_echo(stream: MuxedStream) -> None:
        served.append(stream)
        await release.wait()
        await echo_once(stream)

    with anyio.fail_after(10):
        async with connect(server_options={"max_inbound_streams": limit}) as link:
            link.tg.start_soon(serve_streams, link.server, held_echo)
            async with anyio.create_task_group() as tg:
                for i in range(count):
                    tg.start_soon(client_stream, i, link.client)
                while len(served) < limit:
                    await anyio.wait_all_tasks_blocked()
                await anyio.wait_all_tasks_blocked()
                assert (opened, len(served)) == (limit, limit)
                assert not link.client.is_closed and not link.server.is_closed
                release.set()
            assert results == {i: b"stream %d" % i for i in range(count)}
            assert len(served) == count


@pytest.mark.parametrize("resetter", ["opener", "acceptor"])
async def test_reset_reaches_the_peer(anyio_backend: str, resetter: str) -> None:
    with anyio.fail_after(10):
        async with connect() as link:
            opened, accepted = await opened_pair(link)
            local, remote = (opened, accepted) if resetter == "opener" else (accepted, opened)
            outcome: list[BaseException] = []

            async def blocked_receive() -> None:
                try:
                    await remote.receive()
                except StreamReset as exc:
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(blocked_receive)
                await anyio.wait_all_tasks_blocked()
                await local.reset()
            assert len(outcome) == 1 and outcome[0].remote is True  # type: ignore[attr-defined]
            with pytest.raises(StreamReset) as info:
                await remote.send(b"x")
            assert info.value.remote is True
            for call in (local.receive, lambda: local.send(b"x")):
                with pytest.raises(StreamReset) as info:
                    await call()
                assert info.value.remote is False
            await local.reset()  # again: no effect
            await remote.reset()  # after the peer's: no effect
            # The connection is fine.
            link.tg.start_soon(serve_echo, link.server)
            assert await echo_through(link.client, b"after") == b"after"


async def test_reset_before_any_data(anyio_backend: str) -> None:
    """A stream reset before it carried a byte never reaches the peer's accept_stream."""
    with anyio.fail_after(10):
        async with connect() as link:
            silent = await link.client.open_stream()
            await silent.reset()
            opened, accepted = await opened_pair(link)
            assert accepted.stream_id == opened.stream_id != silent.stream_id


@pytest.mark.parametrize("closer", ["client", "server"])
async def test_connection_close_breaks_the_peers_streams(anyio_backend: str, closer: str) -> None:
    with anyio.fail_after(10):
        async with connect() as link:
            opened, accepted = await opened_pair(link)
            if closer == "client":
                local, remote, local_stream, remote_stream = (
                    link.client,
                    link.server,
                    opened,
                    accepted,
                )
            else:
                local, remote, local_stream, remote_stream = (
                    link.server,
                    link.client,
                    accepted,
                    opened,
                )
            await local_stream.send(b"last")
            errors: list[BaseException] = []

            async def accept() -> None:
                try:
                    await remote.accept_stream()
                except anyio.EndOfStream as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(accept)
                await anyio.wait_all_tasks_blocked()
                await local.aclose()
                assert local.is_closed
                await remote.run()  # returns once the connection is over
            assert len(errors) == 1
            assert remote.is_closed
            assert await remote_stream.receive() == b"last"  # arrived before the close
            with pytest.raises(anyio.BrokenResourceError):
                await remote_stream.receive()
            with pytest.raises(anyio.BrokenResourceError):
                await remote_stream.send(b"x")
            with pytest.raises(anyio.BrokenResourceError):
                await remote.open_stream()
            error = remote.error  # type: ignore[attr-defined]
            assert isinstance(error, QuicConnectionClosed) and error.code == NO_ERROR
            for call in (local_stream.receive, lambda: local_stream.send(b"x")):
                with pytest.raises(anyio.BrokenResourceError):
                    await call()
            # yamux says BrokenResourceError here too; ClosedResourceError would be apt.
            with pytest.raises((anyio.ClosedResourceError, anyio.BrokenResourceError)):
                await local.open_stream()
            with pytest.raises(anyio.EndOfStream):
                await local.accept_stream()
            await local.aclose()  # again: fine


# ---------------------------------------------------------------------------- liveness


async def test_idle_timeout_when_the_peer_vanishes(anyio_backend: str) -> None:
    """The server's transport stops without a word (its socket closes and, unlike a normal
    shutdown, it sends no CONNECTION_CLOSE); the client, with no keep-alive, gives up after
    its idle timeout."""
    idle = 0.3
    client_transport = QuicTransport(KeyPair.generate(), idle_timeout=idle, keepalive_interval=None)
    server_transport = QuicTransport(KeyPair.generate())
    with anyio.fail_after(10):
        async with running(client_transport) as tg:
            async with anyio.create_task_group() as server_tg:
                await server_tg.start(server_transport.run)
                listener, accepted = await listen(server_tg, server_transport)
                conn = await client_transport.dial(listener.addrs[0], server_transport.local_peer)
                dialed_at = anyio.current_time()  # the client heard from the server last after
                await accepted.receive()
                for endpoint in server_transport._endpoints:  # vanish: say nothing more
                    endpoint._sendto = lambda data, addr: None  # type: ignore[method-assign]
                server_tg.cancel_scope.cancel()
            stream = await conn.open_stream()
            await stream.send(b"into the void")  # unanswered data does not keep it alive
            await tg.start(conn.run)
            await conn.run()
            assert anyio.current_time() - dialed_at >= idle - 0.005
            error = conn.error  # type: ignore[attr-defined]
            assert isinstance(error, QuicConnectionClosed)
            assert "idle" in error.reason.lower()
            with pytest.raises(anyio.BrokenResourceError):
                await stream.receive()


@pytest.mark.parametrize("keepalive", [True, False], ids=["keepalive", "no-keepalive"])
async def test_keepalive_holds_an_idle_connection(anyio_backend: str, keepalive: bool) -> None:
    """Both sides idle out after 0.4 s. With the client pinging every 0.05 s the quiet
    connection outlives 2.5 idle timeouts; without, it ends after about one."""
    idle = 0.4
    client_options = {"idle_timeout": idle, "keepalive_interval": 0.05 if keepalive else None}
    server_options = {"idle_timeout": idle, "keepalive_interval": None}
    with anyio.fail_after(10):
        async with connect(client_options, server_options) as link:
            started = anyio.current_time()
            ended = False
            with anyio.move_on_after(2.5 * idle):
                with pytest.raises(anyio.EndOfStream):
                    await link.client.accept_stream()  # returns only when the connection ends
                ended = True
            if not keepalive:
                assert ended
                assert anyio.current_time() - started >= idle / 2  # not at once, at least
                assert "idle" in link.client.error.reason.lower()  # type: ignore[attr-defined]
                return
            assert not ended
            assert not link.client.is_closed and not link.server.is_closed
            link.tg.start_soon(serve_echo, link.server)
            assert await echo_through(link.client, b"still here") == b"still here"


# ---------------------------------------------------------------------------- flow control


async def test_sender_blocks_on_a_reader_that_reads_nothing(anyio_backend: str) -> None:
    """The reader reads nothing: the peer's core takes (and acknowledges) one stream window,
    the sender's buffer then holds SEND_BUFFER unacknowledged bytes and send() waits;
    neither grows while the reader stays idle. Once it reads, everything arrives intact."""
    chunk = 16 * 1024  # divides the window and the buffer
    total = STREAM_WINDOW + SEND_BUFFER + 2 * MIB
    data = random.Random(3).randbytes(total)
    sent = 0
    peak_unacked = 0

    with anyio.fail_after(15):
        async with connect() as link:
            opened = await link.client.open_stream()
            sid = opened.stream_id
            core = link.client.core

            async def send_all() -> None:
                nonlocal sent, peak_unacked
                for offset in range(0, total, chunk):
                    await opened.send(data[offset : offset + chunk])
                    sent += chunk
                    peak_unacked = max(peak_unacked, core.unacked(sid))
                await opened.send_eof()

            async with anyio.create_task_group() as tg:
                tg.start_soon(send_all)
                accepted = await link.server.accept_stream()
                # Settled: the window delivered and acknowledged, the send buffer full.
                await wait_for(lambda: sent >= STREAM_WINDOW + SEND_BUFFER)
                await wait_for(lambda: core.unacked(sid) == SEND_BUFFER)
                await anyio.wait_all_tasks_blocked()
                assert sent == STREAM_WINDOW + SEND_BUFFER
                assert core.unacked(sid) == SEND_BUFFER
                assert peak_unacked <= SEND_BUFFER
                got = await read_all(accepted)
            assert got == data
            assert peak_unacked <= SEND_BUFFER


async def test_a_batch_cut_short_is_sent_in_the_next_pass(anyio_backend: str) -> None:
    """When the core stops at its send batch, the endpoint marks the connection to send
    again in its next pass (after reading what came in), rather than leaving the rest
    for an ACK or a timer to bring out; all of it arrives."""
    size = 200_000
    with anyio.fail_after(10):
        async with connect() as link:
            opened, accepted = await opened_pair(link)
            conn, core = link.client, link.client.core
            core._send_batch = 4 * 1200  # a few datagrams per pass
            endpoint = conn._endpoint
            conn._send(opened.stream_id, bytes(size), True)  # queued, nothing sent yet
            endpoint.transmit(conn)
            assert core.more_to_send
            assert conn in endpoint._dirty
            assert await read_all(accepted) == bytes(size)


# ---------------------------------------------------------------------------- hosts


@asynccontextmanager
async def quic_hosts() -> AsyncIterator[tuple[Host, Host]]:
    async with (
        Host(listen_addrs=["/ip4/127.0.0.1/udp/0/quic-v1"]) as server,
        Host(listen_addrs=["/ip4/127.0.0.1/udp/0/quic-v1"]) as client,
    ):
        yield server, client


async def test_hosts_ping_over_quic(anyio_backend: str) -> None:
    with anyio.fail_after(10):
        async with quic_hosts() as (server, client):
            assert "/quic-v1" in str(server.addrs[0])
            rtts = await client.ping(server.addrs[0], count=3)
            assert len(rtts) == 3 and all(rtt >= 0 for rtt in rtts)
            (conn,) = client.connections(server.peer_id)
            assert conn.remote_addr == server.listen_addrs[0]


async def test_hosts_identify_over_quic(anyio_backend: str) -> None:
    """The server saw the client come from the client's listening socket (dials reuse it),
    so the observed address is the client's quic-v1 listen address."""
    with anyio.fail_after(10):
        async with quic_hosts() as (server, client):
            info = await client.identify(server.addrs[0])
            assert info.peer_id == server.peer_id
            assert info.listen_addrs == server.listen_addrs
            assert info.observed_addr == client.listen_addrs[0]
            assert "quic-v1" in [p.name for p in info.observed_addr.protocols()]


async def test_hosts_new_stream_with_handler(anyio_backend: str) -> None:
    seen: list[Any] = []

    async def shout(stream: anyio.abc.ByteStream) -> None:
        seen.append(stream.extra(P2PAttribute.remote_peer))
        data = await read_all(stream)
        await stream.send(data.upper())

    with anyio.fail_after(10):
        async with quic_hosts() as (server, client):
            server.set_stream_handler("/shout/1.0.0", shout)
            server.set_stream_handler(echo.PROTOCOL_ID, echo.handle_echo)
            stream = await client.new_stream(server.addrs[0], ["/shout/1.0.0"])
            async with stream:
                await stream.send(b"hello quic")
                await stream.send_eof()
                assert await read_all(stream) == b"HELLO QUIC"
                assert stream.extra(P2PAttribute.protocol) == "/shout/1.0.0"
                assert stream.extra(P2PAttribute.muxer_protocol) == "quic-v1"
            stream = await client.new_stream(server.peer_id, [echo.PROTOCOL_ID])
            async with stream:
                await stream.send(b"echo")
                await stream.send_eof()
                assert await read_all(stream) == b"echo"
            assert seen == [client.peer_id]
            assert len(client.connections(server.peer_id)) == 1


# ---------------------------------------------------------------------------- review findings


async def test_reset_after_the_peer_finished_forgets_the_stream(anyio_backend: str) -> None:
    """Our reset of a stream whose peer already sent FIN (so no RESET_STREAM comes back)
    still drops it from the connection's table, and nothing more reaches it."""
    with anyio.fail_after(10):
        async with connect() as link:
            stream = await link.client.open_stream()
            await stream.send(b"hello")
            accepted = await link.server.accept_stream()
            assert await accepted.receive() == b"hello"
            await accepted.send(b"bye")
            await accepted.send_eof()
            assert await read_all(stream) == b"bye"
            await stream.reset()
            assert stream.stream_id not in link.client._streams
            with pytest.raises(StreamReset):
                await stream.receive()


async def test_a_failing_connection_does_not_take_down_the_listener(anyio_backend: str) -> None:
    """An exception inside one connection's processing (a bug, an aioquic assertion) ends
    that connection with an error; the endpoint, the listener and other connections go on."""
    with anyio.fail_after(10):
        async with connect() as link:
            other = await link.client_transport.dial(
                link.listener.addrs[0], link.server_transport.local_peer
            )
            victim = await link.accepted.receive()
            assert isinstance(victim, QuicMuxedConnection)

            def explode(*args: Any) -> None:
                raise RuntimeError("boom")

            victim.core.receive_datagram = explode  # type: ignore[method-assign]
            stream = await other.open_stream()
            await stream.send(b"x")  # reaches the victim, whose core raises
            with pytest.raises(anyio.EndOfStream):
                await victim.accept_stream()  # it ended
            assert victim.is_closed
            # the first connection and the listener still work
            first = await link.client.open_stream()
            await first.send(b"still here")
            await first.send_eof()
            served = await link.server.accept_stream()
            assert await read_all(served) == b"still here"
            again = await link.client_transport.dial(
                link.listener.addrs[0], link.server_transport.local_peer
            )
            assert again.remote_peer == link.server_transport.local_peer
            assert (await link.accepted.receive()).remote_peer == link.client_transport.local_peer


async def test_a_connection_id_is_routable_as_soon_as_it_is_announced(anyio_backend: str) -> None:
    """aioquic records a new connection ID as it writes the NEW_CONNECTION_ID frame; the
    endpoint must route that ID before the datagram leaves, since quic-go switches to it at
    once (its packets were dropped until a timer fired: go dials took ~110 ms)."""
    from aioquic.quic.connection import QuicConnectionId

    with anyio.fail_after(10):
        async with connect() as link:
            server = link.server
            core = server.core
            endpoint = server._endpoint
            cid = bytes(range(8))
            core._host_cids.append(
                QuicConnectionId(
                    cid=cid,
                    sequence_number=core._host_cid_seq,
                    stateless_reset_token=bytes(16),
                    was_sent=False,
                )
            )
            core._host_cid_seq += 1
            endpoint.transmit(server)  # writes NEW_CONNECTION_ID
            assert endpoint._by_cid.get(cid) is server  # before anything else ran
