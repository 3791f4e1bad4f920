"""Host behaviour between two real hosts on loopback TCP (Noise + yamux)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from p2pstack import (
    ConnectionClosed,
    ConnectionOpened,
    DialError,
    Host,
    P2PAttribute,
    PeerIDMismatch,
    ProtocolNotSupported,
    StreamReset,
)
from p2pstack.protocols import echo, ping

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Host, Host]]:
    async with Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as server, Host() as client:
        server.set_stream_handler(echo.PROTOCOL_ID, echo.handle_echo)
        yield server, client


async def read_all(stream: anyio.abc.ByteStream) -> bytes:
    out = bytearray()
    while True:
        try:
            out += await stream.receive()
        except anyio.EndOfStream:
            return bytes(out)


async def test_echo_and_attributes(pair: tuple[Host, Host]) -> None:
    server, client = pair
    with anyio.fail_after(10):
        stream = await client.new_stream(server.addrs[0], [echo.PROTOCOL_ID])
        async with stream:
            await stream.send(b"hello")
            await stream.send_eof()
            assert await read_all(stream) == b"hello"
            assert stream.extra(P2PAttribute.remote_peer) == server.peer_id
            assert stream.extra(P2PAttribute.protocol) == echo.PROTOCOL_ID
            assert stream.extra(P2PAttribute.muxer_protocol) == "/yamux/1.0.0"
            assert stream.extra(P2PAttribute.security_protocol) == "/noise"


async def test_one_connection_reused(pair: tuple[Host, Host]) -> None:
    server, client = pair
    with anyio.fail_after(10):
        await client.connect(server.addrs[0])
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(client.ping, server.peer_id)
        assert len(client.connections(server.peer_id)) == 1


async def test_handler_sees_remote_peer_and_fallback_protocol(pair: tuple[Host, Host]) -> None:
    server, client = pair
    seen: list[object] = []

    async def handler(stream: anyio.abc.ByteStream) -> None:
        seen.append(stream.extra(P2PAttribute.remote_peer))
        await stream.send(stream.extra(P2PAttribute.protocol).encode())

    server.set_stream_handler("/b/1.0.0", handler)
    with anyio.fail_after(10):
        stream = await client.new_stream(server.addrs[0], ["/a/1.0.0", "/b/1.0.0"])
        async with stream:
            assert await read_all(stream) == b"/b/1.0.0"
    assert seen == [client.peer_id]


async def test_unsupported_protocols(pair: tuple[Host, Host]) -> None:
    server, client = pair
    with anyio.fail_after(10):
        with pytest.raises(ProtocolNotSupported):
            await client.new_stream(server.addrs[0], ["/nope/1", "/nope/2"])
        lazy = await client.new_stream(server.peer_id, ["/nope/3"])
        with pytest.raises(ProtocolNotSupported):
            await lazy.receive()
        await lazy.aclose()
        assert await client.ping(server.peer_id)


async def test_failing_handler_resets_stream_host_goes_on(pair: tuple[Host, Host]) -> None:
    server, client = pair

    async def broken(stream: anyio.abc.ByteStream) -> None:
        await stream.receive()
        raise RuntimeError("handler bug")

    server.set_stream_handler("/broken/1.0.0", broken)
    with anyio.fail_after(10):
        stream = await client.new_stream(server.addrs[0], ["/broken/1.0.0"])
        await stream.send(b"x")
        with pytest.raises(StreamReset):
            await read_all(stream)
        await stream.aclose()
        assert (await client.ping(server.peer_id))[0] > 0


async def test_removed_handler(pair: tuple[Host, Host]) -> None:
    server, client = pair
    server.remove_stream_handler(echo.PROTOCOL_ID)
    with anyio.fail_after(10):
        with pytest.raises(ProtocolNotSupported):
            await client.new_stream(server.addrs[0], [echo.PROTOCOL_ID, "/other/1"])


async def test_identify_and_push(pair: tuple[Host, Host]) -> None:
    server, client = pair
    with anyio.fail_after(10):
        info = await client.identify(server.addrs[0])
        assert info.peer_id == server.peer_id
        assert echo.PROTOCOL_ID in info.protocols
        assert info.listen_addrs == server.listen_addrs
        assert info.observed_addr is not None
        assert "/echo/1.0.0" in client.peerstore.protocols(server.peer_id)

        async def noop(stream: anyio.abc.ByteStream) -> None:
            pass

        server.set_stream_handler("/new/1.0.0", noop)
        while "/new/1.0.0" not in client.peerstore.protocols(server.peer_id):
            await anyio.wait_all_tasks_blocked()
            await anyio.sleep(0)


async def test_ping_right_after_connect_goes_ahead_of_identify(
    pair: tuple[Host, Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The application's first stream (here ping's) opens before identify's does: its
    # stream id is the first one of the connection, and identify still completes.
    server, client = pair
    stream_ids: list[int] = []
    ping_once = ping.ping_once

    async def recording_ping_once(stream: anyio.abc.ByteStream) -> float:
        inner = getattr(stream, "inner", stream)  # the lazily negotiated yamux stream
        stream_ids.append(inner.stream_id)
        return await ping_once(stream)

    monkeypatch.setattr(ping, "ping_once", recording_ping_once)
    with anyio.fail_after(10):
        peer = await client.connect(server.addrs[0])
        await client.ping(peer)
        assert stream_ids == [1]
        assert (await client.identify(peer)).peer_id == server.peer_id


async def test_ping_inbound_stream_limit(pair: tuple[Host, Host]) -> None:
    server, client = pair
    with anyio.fail_after(10):
        conn_peer = await client.connect(server.addrs[0])
        streams = [await client.new_stream(conn_peer, [ping.PROTOCOL_ID]) for _ in range(3)]
        assert await ping.ping_once(streams[0]) > 0
        assert await ping.ping_once(streams[1]) > 0
        with pytest.raises((StreamReset, anyio.EndOfStream)):
            await ping.ping_once(streams[2])
        for stream in streams:
            await stream.aclose()


async def test_connection_events_and_disconnect(pair: tuple[Host, Host]) -> None:
    server, client = pair
    with anyio.fail_after(10):
        async with server.events() as events:
            await client.connect(server.addrs[0])
            opened = await events.receive()
            assert isinstance(opened, ConnectionOpened) and opened.peer == client.peer_id
            assert opened.connection.direction == "inbound"
            await client.disconnect(server.peer_id)
            closed = await events.receive()
            assert isinstance(closed, ConnectionClosed) and closed.peer == client.peer_id
        assert client.connections() == []


async def test_dial_errors(pair: tuple[Host, Host]) -> None:
    server, client = pair
    async with Host() as stranger:
        wrong = str(server.listen_addrs[0]) + f"/p2p/{stranger.peer_id}"
        with anyio.fail_after(10), pytest.raises(DialError) as info:
            await client.connect(wrong)
        assert isinstance(info.value.attempts[0][1], PeerIDMismatch)
    with anyio.fail_after(10), pytest.raises(DialError):
        await client.connect("/ip4/127.0.0.1/tcp/1")


async def test_bidirectional_bulk_no_deadlock(pair: tuple[Host, Host]) -> None:
    server, client = pair
    payload = bytes(range(256)) * 16384  # 4 MiB
    with anyio.fail_after(30):
        stream = await client.new_stream(server.addrs[0], [echo.PROTOCOL_ID])
        async with stream, anyio.create_task_group() as tg:

            async def upload() -> None:
                await stream.send(payload)
                await stream.send_eof()

            tg.start_soon(upload)
            assert await read_all(stream) == payload


def test_identify_message_with_observed_addr_decodes() -> None:
    from multiaddr import Multiaddr

    from p2pstack import KeyPair
    from p2pstack.protocols.identify import (
        IdentifyInfo,
        encode_identify,
        merge_identify,
        with_observed_addr,
    )

    key = KeyPair.generate()
    base = encode_identify(key.public, [Multiaddr("/ip4/1.2.3.4/tcp/5")], ["/a/1"], None, "x/1")
    info = IdentifyInfo()
    merge_identify(info, with_observed_addr(base, Multiaddr("/ip4/9.9.9.9/tcp/1")))
    assert info.observed_addr == Multiaddr("/ip4/9.9.9.9/tcp/1")
    assert info.listen_addrs == [Multiaddr("/ip4/1.2.3.4/tcp/5")]
    assert info.protocols == ["/a/1"] and info.agent_version == "x/1"
    assert info.peer_id == key.peer_id


async def test_identify_carries_a_signed_peer_record(pair: tuple[Host, Host]) -> None:
    server, client = pair
    with anyio.fail_after(10):
        info = await client.identify(server.addrs[0])
    assert info.peer_record is not None
    assert info.peer_record.peer_id == server.peer_id
    assert list(info.peer_record.addrs) == server.listen_addrs
    assert client.peerstore.get(server.peer_id, "peer_record") == info.peer_record


async def test_concurrent_dials_share_one_attempt_and_its_error() -> None:
    async with Host() as client, Host() as absent:
        target = f"/ip4/127.0.0.1/tcp/1/p2p/{absent.peer_id}"
        errors: list[BaseException] = []

        async def dial() -> None:
            try:
                await client.connect(target)
            except DialError as exc:
                errors.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(dial)
        assert len(errors) == 3
        # the waiters got the first dialer's error itself, not an attempt of their own
        assert len({id(e) for e in errors}) == 1


async def test_exception_in_body_comes_out_unwrapped() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]):
            raise Boom
