"""The ``/tls/1.0.0`` secure channel (libp2p/specs tls/tls.md): the Tls handshake and the
TlsStream over it, and two Hosts that speak only TLS."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from p2pstack.attributes import P2PAttribute
from p2pstack.errors import CertificateError, HandshakeError, PeerIDMismatch
from p2pstack.host import Host
from p2pstack.identity import KeyPair, KeyType, PeerID
from p2pstack.multistream import negotiate as negotiate_module
from p2pstack.security.noise import Noise
from p2pstack.security.tls import Tls, TlsStream
from p2pstack.security.tls.records import take_outgoing
from p2pstack.testing import memory_stream_pair, tcp_stream_pair

pytestmark = pytest.mark.anyio

YAMUX = "/yamux/1.0.0"


async def handshake(
    dialer: Tls,
    listener: Tls,
    *,
    expected: PeerID | None = None,
    dialer_muxers: Sequence[str] = (),
    listener_muxers: Sequence[str] = (),
    raw: tuple[anyio.abc.ByteStream, anyio.abc.ByteStream] | None = None,
) -> tuple[TlsStream, TlsStream]:
    raw_dialer, raw_listener = raw if raw is not None else memory_stream_pair()
    out: dict[str, TlsStream] = {}

    async def outbound() -> None:
        out["dialer"] = await dialer.secure_outbound(raw_dialer, expected, dialer_muxers)

    async def inbound() -> None:
        out["listener"] = await listener.secure_inbound(raw_listener, listener_muxers)

    async with anyio.create_task_group() as tg:
        tg.start_soon(outbound)
        tg.start_soon(inbound)
    return out["dialer"], out["listener"]


async def receive_exactly(stream: anyio.abc.ByteStream, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        got += await stream.receive(size - len(got))
    return bytes(got)


async def test_handshake_proves_both_peers(anyio_backend: str) -> None:
    dialer_key, listener_key = KeyPair.generate(), KeyPair.generate(KeyType.Secp256k1)
    dialer, listener = await handshake(
        Tls(dialer_key), Tls(listener_key), expected=listener_key.peer_id
    )
    assert dialer.remote_peer == listener_key.peer_id
    assert listener.remote_peer == dialer_key.peer_id
    assert dialer.remote_public_key == listener_key.public
    assert listener.remote_public_key == dialer_key.public
    assert dialer.extra(P2PAttribute.local_peer) == dialer_key.peer_id
    assert dialer.extra(P2PAttribute.remote_peer) == listener_key.peer_id
    assert listener.extra(P2PAttribute.security_protocol) == "/tls/1.0.0"
    assert dialer.early_muxer is None and listener.early_muxer is None
    await dialer.aclose()
    await listener.aclose()


async def test_peer_id_mismatch(anyio_backend: str) -> None:
    someone_else = KeyPair.generate().peer_id
    listener_key = KeyPair.generate()
    raw_dialer, raw_listener = memory_stream_pair()
    async with anyio.create_task_group() as tg:
        tg.start_soon(Tls(listener_key).secure_inbound, raw_listener)
        with pytest.raises(PeerIDMismatch) as info:
            await Tls(KeyPair.generate()).secure_outbound(raw_dialer, someone_else)
    assert info.value.expected == someone_else
    assert info.value.actual == listener_key.peer_id


async def test_alpn_agrees_on_a_muxer(anyio_backend: str) -> None:
    dialer, listener = await handshake(
        Tls(KeyPair.generate()),
        Tls(KeyPair.generate()),
        dialer_muxers=["/mplex/6.7.0", YAMUX],
        listener_muxers=[YAMUX],
    )
    assert dialer.early_muxer == YAMUX and listener.early_muxer == YAMUX


async def test_alpn_prefers_the_dialers_order(anyio_backend: str) -> None:
    dialer, listener = await handshake(
        Tls(KeyPair.generate()),
        Tls(KeyPair.generate()),
        dialer_muxers=["/mplex/6.7.0", YAMUX],
        listener_muxers=[YAMUX, "/mplex/6.7.0"],
    )
    assert dialer.early_muxer == "/mplex/6.7.0" == listener.early_muxer


@pytest.mark.parametrize(
    ("dialer_muxers", "listener_muxers"),
    [((), (YAMUX,)), ((YAMUX,), ()), (("/mplex/6.7.0",), (YAMUX,))],
)
async def test_alpn_falls_back_to_libp2p(
    anyio_backend: str, dialer_muxers: Sequence[str], listener_muxers: Sequence[str]
) -> None:
    dialer, listener = await handshake(
        Tls(KeyPair.generate()),
        Tls(KeyPair.generate()),
        dialer_muxers=dialer_muxers,
        listener_muxers=listener_muxers,
    )
    assert dialer.early_muxer is None and listener.early_muxer is None
    assert dialer._conn.get_alpn_proto_negotiated() == b"libp2p"


async def test_data_both_ways_and_eof(anyio_backend: str) -> None:
    dialer, listener = await handshake(Tls(KeyPair.generate()), Tls(KeyPair.generate()))
    await dialer.send(b"hello")
    assert await listener.receive() == b"hello"
    await listener.send(bytearray(b"back"))
    assert await dialer.receive() == b"back"

    big = bytes(range(256)) * 4096  # 1 MiB
    async with anyio.create_task_group() as tg:
        tg.start_soon(dialer.send, big)
        tg.start_soon(listener.send, memoryview(big))
        assert await receive_exactly(listener, len(big)) == big
        assert await receive_exactly(dialer, len(big)) == big

    await dialer.send_eof()
    with pytest.raises(anyio.EndOfStream):
        await listener.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await dialer.send(b"more")
    await listener.send(b"still open")  # TLS 1.3: the other direction goes on
    assert await dialer.receive() == b"still open"
    await listener.aclose()
    with pytest.raises(anyio.EndOfStream):
        await dialer.receive()
    await dialer.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await dialer.receive()


async def test_segments_are_sent_in_order_from_where_they_lie(anyio_backend: str) -> None:
    """send_segments() and send_segments_nowait() (a muxer's headers and by-reference
    payloads): on a full socket the non-blocking one writes what fits and keeps the rest,
    later segments queue behind it, flush() writes it; the peer reads everything in
    order, whatever kind of buffer each segment was."""
    async with tcp_stream_pair() as (raw_a, raw_b):
        for raw_stream in (raw_a, raw_b):  # small buffers: the socket fills at once
            sock = raw_stream.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        a, b = await handshake(Tls(KeyPair.generate()), Tls(KeyPair.generate()), raw=(raw_a, raw_b))
        big = bytes(range(256)) * 1000
        segments: list[Any] = [bytearray(b"header"), big, memoryview(big)[7:70_007]]
        later: list[Any] = [b"tail" * 10_000]
        expected = b"".join(bytes(x) for x in segments + later)
        assert not a.send_segments_nowait(segments)
        assert a.unsent > 0
        assert not a.send_segments_nowait(later)  # behind the unsent bytes
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(a.flush)
                assert await receive_exactly(b, len(expected)) == expected
            assert a.unsent == 0
            more: list[Any] = [bytearray(b"h2"), big, memoryview(b"end")]
            async with anyio.create_task_group() as tg:
                tg.start_soon(a.send_segments, more)
                assert await receive_exactly(b, len(big) + 5) == b"h2" + big + b"end"


async def test_a_view_of_wider_items_is_sent_as_its_bytes(anyio_backend: str) -> None:
    dialer, listener = await handshake(Tls(KeyPair.generate()), Tls(KeyPair.generate()))
    data = bytes(range(64))
    await dialer.send(memoryview(data).cast("I"))  # 16 items of 4 bytes
    dialer.send_nowait(memoryview(data)[::2])  # strided; what the stream cannot take waits
    await dialer.flush()
    assert await receive_exactly(listener, 96) == data + data[::2]


async def test_raw_eof_without_close_notify_reads_as_end(anyio_backend: str) -> None:
    dialer, listener = await handshake(Tls(KeyPair.generate()), Tls(KeyPair.generate()))
    await dialer.send(b"last")
    await dialer._raw.aclose()  # no close_notify
    assert await listener.receive() == b"last"
    with pytest.raises(anyio.EndOfStream):
        await listener.receive()


def plain_certificate() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed certificate without the libp2p extension."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not libp2p")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


async def plain_tls_client(raw: anyio.abc.ByteStream) -> None:
    """A TLS 1.3 client presenting a certificate without the libp2p extension; runs until
    the server gives up on it."""
    cert, key = plain_certificate()
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.use_certificate(cert)
    ctx.use_privatekey(key)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
    conn = SSL.Connection(ctx, None)
    conn.set_alpn_protos([b"libp2p"])
    conn.set_connect_state()
    try:
        while True:
            try:
                conn.do_handshake()
            except SSL.WantReadError:
                pass
            out = take_outgoing(conn)
            if out:
                await raw.send(out)
            conn.bio_write(await raw.receive())
    except (SSL.Error, anyio.EndOfStream, anyio.BrokenResourceError):
        pass


async def test_certificate_without_libp2p_extension_is_refused(anyio_backend: str) -> None:
    raw_client, raw_server = memory_stream_pair()
    async with anyio.create_task_group() as tg:
        tg.start_soon(plain_tls_client, raw_client)
        with pytest.raises(CertificateError, match="extension"):
            await Tls(KeyPair.generate()).secure_inbound(raw_server)
        await raw_server.aclose()


async def test_server_certificate_without_libp2p_extension_is_refused(anyio_backend: str) -> None:
    raw_client, raw_server = memory_stream_pair()
    cert, key = plain_certificate()
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.use_certificate(cert)
    ctx.use_privatekey(key)
    server = SSL.Connection(ctx, None)
    server.set_accept_state()

    async def serve() -> None:
        try:
            while True:
                server.bio_write(await raw_server.receive())
                try:
                    server.do_handshake()
                except SSL.WantReadError:
                    pass
                await raw_server.send(take_outgoing(server))
        except (SSL.Error, anyio.EndOfStream, anyio.BrokenResourceError):
            pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with pytest.raises(CertificateError):
            await Tls(KeyPair.generate()).secure_outbound(raw_client, None)
        await raw_client.aclose()


async def test_garbage_instead_of_client_hello(anyio_backend: str) -> None:
    raw_client, raw_server = memory_stream_pair()
    await raw_client.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    with pytest.raises(HandshakeError) as info:
        await Tls(KeyPair.generate()).secure_inbound(raw_server)
    assert not isinstance(info.value, CertificateError)


async def test_eof_during_handshake(anyio_backend: str) -> None:
    raw_client, raw_server = memory_stream_pair()
    await raw_client.aclose()
    with pytest.raises(HandshakeError, match="closed"):
        await Tls(KeyPair.generate()).secure_inbound(raw_server)


async def test_two_hosts_ping_over_tls_only(anyio_backend: str) -> None:
    key_a, key_b = KeyPair.generate(), KeyPair.generate()
    async with (
        Host(key_a, listen_addrs=["/ip4/127.0.0.1/tcp/0"], security=[Tls(key_a)]) as a,
        Host(key_b, listen_addrs=["/ip4/127.0.0.1/tcp/0"], security=[Tls(key_b)]) as b,
    ):
        with anyio.fail_after(10):
            await a.connect(f"{b.addrs[0]}/p2p/{b.peer_id}")
            assert len(await a.ping(b.peer_id)) == 1
            await b.connect(f"{a.addrs[0]}/p2p/{a.peer_id}")
            assert len(await b.ping(a.peer_id)) == 1


async def test_default_hosts_negotiate_noise_or_tls(anyio_backend: str) -> None:
    """The default dialer offers noise then tls; a tls-only listener still gets a dial."""
    key_a, key_b = KeyPair.generate(), KeyPair.generate()
    async with (
        Host(key_a) as a,
        Host(key_b, listen_addrs=["/ip4/127.0.0.1/tcp/0"], security=[Tls(key_b)]) as b,
    ):
        with anyio.fail_after(10):
            await a.connect(f"{b.addrs[0]}/p2p/{b.peer_id}")
            assert len(await a.ping(b.peer_id)) == 1


async def test_a_peer_is_offered_the_security_it_used_last(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dialing a peer again, the default host proposes the protocol it chose last time
    alone (pipelined, no round trip); a peer that no longer speaks it (restarted TLS-only
    on the same port) refuses, and the dial negotiates again among both."""
    key_a, key_b = KeyPair.generate(), KeyPair.generate()
    async with Host(key_a) as a:
        upgrader = a.swarm.upgrader
        async with Host(key_b, listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as b:
            addr = f"{b.addrs[0]}/p2p/{b.peer_id}"
            port = b.addrs[0].value_for_protocol("tcp")
            with anyio.fail_after(10):
                assert upgrader.remembered_security(b.peer_id) is None
                await a.connect(addr)
                assert upgrader.remembered_security(b.peer_id) == "/noise"
                await a.disconnect(b.peer_id)
                proposals: list[list[str]] = []
                original = negotiate_module.DialerNegotiation.__init__

                def recording(self: Any, protocols: Any) -> None:
                    proposals.append(list(protocols))
                    original(self, protocols)

                monkeypatch.setattr(negotiate_module.DialerNegotiation, "__init__", recording)
                await a.connect(addr)
                assert len(await a.ping(b.peer_id)) == 1
                monkeypatch.undo()
                assert proposals[0] == ["/noise"]  # the security proposal, alone
                await a.disconnect(b.peer_id)
        await reached_after_restart(a, key_b, port, Tls(key_b), "/tls/1.0.0", again=True)


async def reached_after_restart(
    a: Host, key: KeyPair, port: str, security: Any, protocol: str, *, again: bool = False
) -> None:
    """``key``'s host back on ``port`` with ``security`` only: ``a`` reaches and pings it,
    and remembers ``protocol`` for it; with ``again``, it reconnects (``protocol`` alone)."""
    listen = f"/ip4/127.0.0.1/tcp/{port}"
    async with Host(key, listen_addrs=[listen], security=[security]) as b2:
        addr = f"{b2.addrs[0]}/p2p/{b2.peer_id}"
        with anyio.fail_after(10):
            await a.connect(addr)
            assert len(await a.ping(b2.peer_id)) == 1
            assert a.swarm.upgrader.remembered_security(b2.peer_id) == protocol
            if again:
                await a.disconnect(b2.peer_id)
                await a.connect(addr)
                assert len(await a.ping(b2.peer_id)) == 1


async def test_a_peer_remembered_as_tls_is_reached_when_it_speaks_only_noise(
    anyio_backend: str,
) -> None:
    """The other way round: the TLS handshake meets the refusal of ``/tls/1.0.0``
    proposed alone, and the dial negotiates again."""
    key_a, key_b = KeyPair.generate(), KeyPair.generate()
    async with Host(key_a) as a:
        upgrader = a.swarm.upgrader
        async with Host(key_b, listen_addrs=["/ip4/127.0.0.1/tcp/0"], security=[Tls(key_b)]) as b:
            port = b.addrs[0].value_for_protocol("tcp")
            with anyio.fail_after(10):
                await a.connect(f"{b.addrs[0]}/p2p/{b.peer_id}")
                assert upgrader.remembered_security(b.peer_id) == "/tls/1.0.0"
                await a.disconnect(b.peer_id)
        await reached_after_restart(a, key_b, port, Noise(key_b), "/noise")
