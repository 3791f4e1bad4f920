"""Bad input from the network, end to end over real Hosts on 127.0.0.1.

A listener host and a well-behaved friend connected to it before each attack. The attacker
is a raw TCP client (``anyio.connect_tcp``) sending bad bytes, or a client that completes
multistream + Noise + yamux with the library's own pieces and then misbehaves in yamux.
Each time the listener must close the misbehaving connection (the attacker's socket reaches
EOF; nothing here sleeps to wait) and go on serving: the friend still pings and echoes over
its original connection, and a newcomer can still connect.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
from multiaddr import Multiaddr

from p2pstack.errors import DialError, PeerIDMismatch
from p2pstack.framing import encode_uvarint
from p2pstack.host import Host
from p2pstack.identity import KeyPair
from p2pstack.multistream import encode_message, select_outbound
from p2pstack.muxer.yamux import PROTOCOL_ID as YAMUX
from p2pstack.muxer.yamux import YamuxSession
from p2pstack.muxer.yamux.frame import Flag, FrameType, encode_header
from p2pstack.muxer.yamux.session import Event, GoAwayReceived, PingAcknowledged
from p2pstack.protocols import echo
from p2pstack.security.noise import PROTOCOL_ID as NOISE
from p2pstack.security.noise import Noise, NoiseEncoder, NoiseHandshake, NoiseStream
from p2pstack.transport.tcp import split_tcp_addr

pytestmark = pytest.mark.anyio

LOCAL = "/ip4/127.0.0.1/tcp/0"
TIMEOUT = 10
MULTISTREAM = encode_message("/multistream/1.0.0")
SELECT_NOISE = MULTISTREAM + encode_message(NOISE)


@asynccontextmanager
async def listener_and_friend() -> AsyncIterator[tuple[Host, Host]]:
    """A listener serving echo, and a friend already connected to it."""
    async with Host(listen_addrs=[LOCAL]) as listener, Host() as friend:
        listener.set_stream_handler(echo.PROTOCOL_ID, echo.handle_echo)
        with anyio.fail_after(TIMEOUT):
            await friend.connect(listener.addrs[0])
        yield listener, friend


async def assert_still_serving(listener: Host, friend: Host) -> None:
    """The friend's connection survived; ping and echo work; new peers get in."""
    with anyio.fail_after(TIMEOUT):
        (connection,) = friend.connections(listener.peer_id)
        assert len(await friend.ping(listener.peer_id)) == 1
        stream = await friend.new_stream(listener.peer_id, [echo.PROTOCOL_ID])
        await stream.send(b"still serving")
        await stream.send_eof()
        echoed = bytearray()
        while True:
            try:
                echoed += await stream.receive()
            except anyio.EndOfStream:
                break
        await stream.aclose()
        assert echoed == b"still serving"
        assert friend.connections(listener.peer_id) == [connection]
        assert not connection.is_closed
        async with Host() as newcomer:
            await newcomer.connect(listener.addrs[0])
            assert len(await newcomer.ping(listener.peer_id)) == 1


async def connect_raw(listener: Host) -> anyio.abc.SocketStream:
    host, port, _ = split_tcp_addr(listener.listen_addrs[0])
    return await anyio.connect_tcp(host, port)


async def read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    """Everything the listener sends until it closes the connection."""
    data = bytearray()
    with anyio.fail_after(TIMEOUT):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return bytes(data)


def noise_frame(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


# ---------------------------------------------------------------------------- raw bytes

# name -> (bytes, then half-close our side)
RAW_ATTACKS = {
    "garbage instead of multistream": (b"\x10not multistream\n", False),
    "an HTTP request, then EOF": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    "oversize multistream message": (
        MULTISTREAM + encode_uvarint(1025) + b"/" + b"a" * 1023 + b"\n",
        False,
    ),
    "oversize first multistream message": (encode_uvarint(1025) + b"a" * 1025, False),
    "over-long varint": (b"\xff" * 10, False),
    "non-minimal varint": (b"\x80\x00", False),
    "multistream message without newline": (MULTISTREAM + b"\x06/noise", False),
    "unsupported security protocol, then EOF": (
        MULTISTREAM + encode_message("/tls/9.9.9"),
        True,
    ),
    "garbage noise frame after /noise": (SELECT_NOISE + noise_frame(b"junk!"), False),
    "empty noise frame after /noise": (SELECT_NOISE + noise_frame(b""), False),
    "garbage noise bytes after /noise, then EOF": (SELECT_NOISE + b"\xff" * 7, True),
    "truncated noise handshake, then EOF": (SELECT_NOISE + b"\x00\x20" + bytes(10), True),
}


@pytest.mark.parametrize("attack", list(RAW_ATTACKS))
async def test_raw_garbage_is_dropped(anyio_backend: str, attack: str) -> None:
    data, eof = RAW_ATTACKS[attack]
    async with listener_and_friend() as (listener, friend):
        async with await connect_raw(listener) as raw:
            await raw.send(data)
            if eof:
                await raw.send_eof()
            await read_until_closed(raw)
        await assert_still_serving(listener, friend)


async def test_garbage_noise_message_3_is_dropped(anyio_backend: str) -> None:
    async with listener_and_friend() as (listener, friend):
        attacker = NoiseHandshake(KeyPair.generate(), True)
        async with await connect_raw(listener) as raw:
            # A valid message 1, then (without waiting for message 2) a forged message 3.
            await raw.send(SELECT_NOISE + attacker.data_to_send() + noise_frame(bytes(120)))
            received = await read_until_closed(raw)
        # The listener did answer message 1 before it refused message 3.
        assert received.startswith(MULTISTREAM + encode_message(NOISE))
        await assert_still_serving(listener, friend)


async def test_dial_with_the_wrong_peer_id(anyio_backend: str) -> None:
    async with listener_and_friend() as (listener, friend):
        impostor = KeyPair.generate().peer_id
        target = listener.listen_addrs[0].encapsulate(Multiaddr(f"/p2p/{impostor}"))
        async with Host() as dialer:
            with anyio.fail_after(TIMEOUT), pytest.raises(DialError) as info:
                await dialer.connect(target)
            ((_, error),) = info.value.attempts
            assert isinstance(error, PeerIDMismatch)
            assert error.expected == impostor
            assert error.actual == listener.peer_id
            assert dialer.connections() == []
        await assert_still_serving(listener, friend)


# ---------------------------------------------------------------------------- inside yamux


@asynccontextmanager
async def yamux_attacker(listener: Host) -> AsyncIterator[tuple[NoiseStream, YamuxSession]]:
    """A client that completed multistream, Noise (agreeing yamux inside it) with the
    listener, and drives its own yamux session by hand."""
    with anyio.fail_after(TIMEOUT):
        raw = await connect_raw(listener)
        _, stream = await select_outbound(raw, [NOISE])
        secure = await Noise(KeyPair.generate()).secure_outbound(stream, listener.peer_id, [YAMUX])
    assert secure.early_muxer == YAMUX
    try:
        yield secure, YamuxSession(True, keepalive_interval=None)
    finally:
        await anyio.aclose_forcefully(secure)


async def events_until_closed(secure: NoiseStream, session: YamuxSession) -> list[Event]:
    events: list[Event] = []
    with anyio.fail_after(TIMEOUT):
        while True:
            try:
                data = await secure.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return events
            events += session.receive_data(data)


def _window_overrun(session: YamuxSession) -> bytes:
    # Open a stream properly, then announce a Data frame larger than its 256 KiB window.
    sid = session.open_stream()
    return bytes(session.data_to_send()) + encode_header(FrameType.DATA, 0, sid, 256 * 1024 + 1)


# name -> what the attacker sends, given its own session
YAMUX_ATTACKS: dict[str, Callable[[YamuxSession], bytes]] = {
    "bad version": lambda _: struct.pack(">BBHII", 1, 0, 0, 1, 0),
    "unknown frame type": lambda _: struct.pack(">BBHII", 0, 9, 0, 0, 0),
    "window overrun": _window_overrun,
    "data for a stream never opened": lambda _: encode_header(FrameType.DATA, 0, 99, 3) + b"abc",
    "ping on a stream": lambda _: encode_header(FrameType.PING, Flag.SYN, 1, 7),
}


@pytest.mark.parametrize("attack", list(YAMUX_ATTACKS))
async def test_yamux_violation_gets_go_away_and_close(anyio_backend: str, attack: str) -> None:
    async with listener_and_friend() as (listener, friend):
        async with yamux_attacker(listener) as (secure, session):
            await secure.send(YAMUX_ATTACKS[attack](session))
            events = await events_until_closed(secure, session)
        assert GoAwayReceived(1) in events
        await assert_still_serving(listener, friend)


async def test_garbage_noise_transport_message_closes_the_connection(anyio_backend: str) -> None:
    async with listener_and_friend() as (listener, friend):
        async with yamux_attacker(listener) as (secure, session):
            forged = bytes(NoiseEncoder(bytes(32)).encode(b"not from the handshake keys"))
            await secure._raw.send(forged)
            await events_until_closed(secure, session)
        await assert_still_serving(listener, friend)


async def ping_answered(secure: NoiseStream, session: YamuxSession, opaque: int) -> bool:
    """Read until the listener acknowledges ping ``opaque`` (True) or hangs up (False)."""
    with anyio.fail_after(TIMEOUT):
        while True:
            try:
                data = await secure.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return False
            if PingAcknowledged(opaque, None) in session.receive_data(data):
                return True


async def test_many_empty_noise_messages_are_harmless(anyio_backend: str) -> None:
    # Legal if odd: empty transport messages carry nothing and must be skipped.
    async with listener_and_friend() as (listener, friend):
        async with yamux_attacker(listener) as (secure, session):
            encoder = secure._encoder  # our side's encoder keeps the nonces in step
            empties = b"".join(bytes(encoder.encode(b"")) for _ in range(5000))
            opaque = session.ping()
            await secure._raw.send(empties + bytes(encoder.encode(session.data_to_send())))
            assert await ping_answered(secure, session, opaque)
        await assert_still_serving(listener, friend)


async def test_stream_violation_leaves_the_connection_up(anyio_backend: str) -> None:
    async with listener_and_friend() as (listener, friend):
        async with yamux_attacker(listener) as (secure, session):
            sid = session.open_stream()
            session.send_eof(sid)
            opening = bytes(session.data_to_send())  # SYN, then FIN
            late = encode_header(FrameType.DATA, Flag.RST, sid, 4) + b"late"
            opaque = session.ping()
            # One write, so the listener's session sees it all in one receive_data call.
            await secure.send(opening + late + bytes(session.data_to_send()))
            assert await ping_answered(secure, session, opaque)
        await assert_still_serving(listener, friend)
