"""The stream conformance suite run over every stream p2pstack makes, one test per check.

Streams under test:

- ``memory``: :func:`p2pstack.testing.memory_stream_pair`;
- ``tcp``: a loopback connection of :class:`p2pstack.transport.tcp.TcpTransport` (the raw
  stream under Noise, tested alone so that a failure can be placed in the right layer);
- ``noise-memory`` / ``noise-tcp``: two Noise sessions over a memory pair / a loopback TCP
  pair (the TCP one adds real socket buffers, half-close by shutdown and resets);
- ``tls-memory`` / ``tls-tcp``: two ``/tls/1.0.0`` sessions, likewise;
- ``yamux-memory`` / ``yamux-noise-tcp`` / ``yamux-tls-tcp``: a yamux stream pair over a
  memory pair / over Noise or TLS over loopback TCP (the stack as a real connection uses it);
- ``quic``: a stream pair of one loopback QUIC v1 connection between two
  :class:`p2pstack.transport.quic.QuicTransport` s.

What each stream's peer reads after ``aclose()`` (pinned in ``peer_close_errors``):
``EndOfStream`` for all of them (the memory pair closes its sending side, TCP sends FIN,
TLS sends close_notify, yamux and QUIC send FIN).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from multiaddr import Multiaddr

from p2pstack.identity import KeyPair
from p2pstack.muxer.abc import MuxedConnection
from p2pstack.muxer.yamux import YamuxConnection
from p2pstack.security.tls import Tls
from p2pstack.testing import (
    HALF_CLOSE_CHECKS,
    TWO_WAY_CHECKS,
    PairFactory,
    StreamPair,
    StreamTraits,
    check_half_closeable_stream,
    memory_stream_pair,
    noise_stream_pair,
    tcp_stream_pair,
)
from p2pstack.transport.quic import QuicTransport
from p2pstack.transport.quic.stream import SEND_BUFFER

# ---------------------------------------------------------------------------- pair factories


@asynccontextmanager
async def memory_pair() -> AsyncIterator[StreamPair]:
    yield memory_stream_pair()


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[StreamPair]:
    """A loopback connection made through the TCP transport's public API."""
    async with tcp_stream_pair() as pair:
        yield pair


async def noise_handshake(raw_a: anyio.abc.ByteStream, raw_b: anyio.abc.ByteStream) -> StreamPair:
    return await noise_stream_pair(raw_a, raw_b)


@asynccontextmanager
async def noise_memory_pair() -> AsyncIterator[StreamPair]:
    yield await noise_handshake(*memory_stream_pair())


@asynccontextmanager
async def noise_tcp_pair() -> AsyncIterator[StreamPair]:
    async with tcp_pair() as raw:
        yield await noise_handshake(*raw)


async def tls_handshake(raw_a: anyio.abc.ByteStream, raw_b: anyio.abc.ByteStream) -> StreamPair:
    out: dict[str, anyio.abc.ByteStream] = {}

    async def outbound() -> None:
        out["a"] = await Tls(KeyPair.generate()).secure_outbound(raw_a, None)

    async def inbound() -> None:
        out["b"] = await Tls(KeyPair.generate()).secure_inbound(raw_b)

    async with anyio.create_task_group() as tg:
        tg.start_soon(outbound)
        tg.start_soon(inbound)
    return out["a"], out["b"]


@asynccontextmanager
async def tls_memory_pair() -> AsyncIterator[StreamPair]:
    yield await tls_handshake(*memory_stream_pair())


@asynccontextmanager
async def tls_tcp_pair() -> AsyncIterator[StreamPair]:
    async with tcp_pair() as raw:
        yield await tls_handshake(*raw)


@asynccontextmanager
async def yamux_over(raw: StreamPair) -> AsyncIterator[StreamPair]:
    client = YamuxConnection(raw[0], True)
    server = YamuxConnection(raw[1], False)
    async with anyio.create_task_group() as tg:
        await tg.start(client.run)
        await tg.start(server.run)
        try:
            opened = await client.open_stream()  # sends the SYN
            accepted = await server.accept_stream()  # returns once the SYN arrived
            yield opened, accepted
        finally:
            await client.aclose()
            await server.aclose()


@asynccontextmanager
async def yamux_memory_pair() -> AsyncIterator[StreamPair]:
    async with yamux_over(memory_stream_pair()) as pair:
        yield pair


@asynccontextmanager
async def yamux_noise_tcp_pair() -> AsyncIterator[StreamPair]:
    async with noise_tcp_pair() as secure, yamux_over(secure) as pair:
        yield pair


@asynccontextmanager
async def yamux_tls_tcp_pair() -> AsyncIterator[StreamPair]:
    async with tls_tcp_pair() as secure, yamux_over(secure) as pair:
        yield pair


@asynccontextmanager
async def quic_pair() -> AsyncIterator[StreamPair]:
    """A stream of a loopback QUIC connection made through two transports' public API.

    A QUIC stream exists for the peer only once a frame of it arrives: ``open_stream``
    sends nothing, so the server could not accept the stream yet. The client therefore
    writes one byte, and the server accepts the stream and reads that byte before the
    pair is handed out (both streams are then at offset 1, with nothing pending).
    """
    client_transport = QuicTransport(KeyPair.generate())
    server_transport = QuicTransport(KeyPair.generate())
    hand_over, accepted = anyio.create_memory_object_stream[MuxedConnection](1)
    done = anyio.Event()

    async def handler(conn: MuxedConnection) -> None:
        await hand_over.send(conn)
        await done.wait()  # the handler owns the connection: keep it until the test is done

    async with anyio.create_task_group() as tg:
        await tg.start(client_transport.run)
        await tg.start(server_transport.run)
        listener = await server_transport.listen(Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1"))
        await tg.start(listener.serve, handler)
        client = await client_transport.dial(listener.addrs[0], server_transport.local_peer)
        server = await accepted.receive()
        await tg.start(client.run)
        await tg.start(server.run)
        try:
            opened = await client.open_stream()
            await opened.send(b"!")
            incoming = await server.accept_stream()
            if await incoming.receive() != b"!":
                raise AssertionError("the stream's first byte did not arrive")
            yield opened, incoming
        finally:
            done.set()
            await client.aclose()
            await server.aclose()
            hand_over.close()
            accepted.close()
            tg.cancel_scope.cancel()


@dataclass(frozen=True)
class Subject:
    make_pair: PairFactory
    traits: StreamTraits


_EOF_ONLY = (anyio.EndOfStream,)
SUBJECTS = {
    # A single send never blocks: each is one chunk in the pair's buffer.
    "memory": Subject(memory_pair, StreamTraits(peer_close_errors=_EOF_ONLY)),
    # Loopback socket buffers hold a few MiB at most.
    "tcp": Subject(
        tcp_pair, StreamTraits(clog_bytes=32 * 1024 * 1024, peer_close_errors=_EOF_ONLY)
    ),
    "noise-memory": Subject(noise_memory_pair, StreamTraits(peer_close_errors=_EOF_ONLY)),
    "noise-tcp": Subject(
        noise_tcp_pair, StreamTraits(clog_bytes=32 * 1024 * 1024, peer_close_errors=_EOF_ONLY)
    ),
    "tls-memory": Subject(tls_memory_pair, StreamTraits(peer_close_errors=_EOF_ONLY)),
    "tls-tcp": Subject(
        tls_tcp_pair, StreamTraits(clog_bytes=32 * 1024 * 1024, peer_close_errors=_EOF_ONLY)
    ),
    # The first window is 256 KiB.
    "yamux-memory": Subject(
        yamux_memory_pair, StreamTraits(clog_bytes=1024 * 1024, peer_close_errors=_EOF_ONLY)
    ),
    "yamux-noise-tcp": Subject(
        yamux_noise_tcp_pair, StreamTraits(clog_bytes=1024 * 1024, peer_close_errors=_EOF_ONLY)
    ),
    "yamux-tls-tcp": Subject(
        yamux_tls_tcp_pair, StreamTraits(clog_bytes=1024 * 1024, peer_close_errors=_EOF_ONLY)
    ),
    # A reader that reads nothing lets the sender deliver (and have acknowledged) the first
    # stream window, 1 MiB; send() then holds up to SEND_BUFFER (4 MiB) unacknowledged
    # bytes before it waits. One send of more than the two together blocks.
    "quic": Subject(
        quic_pair,
        StreamTraits(clog_bytes=(1 << 20) + SEND_BUFFER + 64 * 1024, peer_close_errors=_EOF_ONLY),
    ),
}

# (subject, check) -> reason, or (subject, check, backend) -> reason. Each is a bug in the
# stream, not in the check.
XFAIL: dict[tuple[str, ...], str] = {}
# Known failures that fail by hanging: give them a short timeout rather than the full one.
XFAIL_HANGS: set[tuple[str, str]] = set()

CHECKS = {check.name: check for check in (*TWO_WAY_CHECKS, *HALF_CLOSE_CHECKS)}


@pytest.mark.anyio
@pytest.mark.parametrize("check_name", list(CHECKS))
@pytest.mark.parametrize("subject_name", list(SUBJECTS))
async def test_conformance(
    subject_name: str, check_name: str, anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    subject = SUBJECTS[subject_name]
    check = CHECKS[check_name]
    if not check.applies(subject.traits):
        pytest.skip(f"{subject_name} does not promise what {check_name} needs")
    reason = XFAIL.get((subject_name, check_name)) or XFAIL.get(
        (subject_name, check_name, anyio_backend)
    )
    traits = subject.traits
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
        if (subject_name, check_name) in XFAIL_HANGS:
            traits = replace(traits, timeout=3.0)
    await check(subject.make_pair, traits)


@pytest.mark.anyio
async def test_whole_suite_over_memory_pair() -> None:
    """The public entry point runs every check (memory cannot promise busy_receive yet)."""
    traits = StreamTraits(busy_receive=False, peer_close_errors=_EOF_ONLY)
    await check_half_closeable_stream(memory_pair, traits)


# ---------------------------------------------------------------------------- the suite's own teeth


class _Faulty(anyio.abc.ByteStream):
    """A memory stream end with one deliberate fault, to show the suite notices it."""

    def __init__(self, inner: anyio.abc.ByteStream, fault: str) -> None:
        self._inner = inner
        self._fault = fault

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._fault == "ignores max_bytes":
            return await self._inner.receive(65536)
        data = await self._inner.receive(max_bytes)
        if self._fault == "loses data on cancel":
            await anyio.lowlevel.checkpoint()  # a cancellation here drops ``data``
        return data

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "check_name"),
    [
        ("ignores max_bytes", "receive_max_bytes"),
        ("loses data on cancel", "cancelled_receive_loses_nothing"),
    ],
)
async def test_suite_catches_faulty_stream(fault: str, check_name: str) -> None:
    @asynccontextmanager
    async def faulty_pair() -> AsyncIterator[StreamPair]:
        a, b = memory_stream_pair()
        yield _Faulty(a, fault), _Faulty(b, fault)

    with pytest.raises(AssertionError):
        await CHECKS[check_name](faulty_pair, StreamTraits(timeout=3.0))
