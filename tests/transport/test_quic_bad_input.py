"""p2pstack.transport.quic against peers that misbehave: datagrams that are not QUIC v1 (or
not QUIC at all) sent from a plain UDP socket, and TLS handshakes with bad libp2p
certificates. After each, the listener must still accept a good connection.

A datagram the listener ignores leaves no trace, so the tests send a Version Negotiation
probe after the junk: the first datagram that comes back must be the answer to the probe.
Bad certificates are presented by :class:`CertificateTransport`, a transport whose
certificate is replaced (built with ``cryptography`` as ``tests/security`` does).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from multiaddr import Multiaddr

from p2pstack.errors import CertificateError, HandshakeError, PeerIDMismatch
from p2pstack.identity import KeyPair
from p2pstack.muxer.abc import MuxedConnection
from p2pstack.security.tls import EXTENSION_OID, SignedKey, generate_certificate
from p2pstack.transport.quic import QuicConnectionClosed, QuicListener, QuicTransport
from p2pstack.transport.quic.core import QuicCore
from p2pstack.transport.quic.transport import CID_LENGTH

pytestmark = pytest.mark.anyio

LOOPBACK = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")
CRYPTO_ERROR = 0x100  # + the TLS alert (RFC 9001 4.8)
BAD_CERTIFICATE = 42
UNKNOWN_VERSION = 0x1A2A3A4A  # a reserved "greasing" version (RFC 9000 15)


# ---------------------------------------------------------------------------- helpers


@asynccontextmanager
async def listening(
    transport: QuicTransport | None = None,
) -> AsyncIterator[tuple[QuicTransport, QuicListener, MemoryObjectReceiveStream[MuxedConnection]]]:
    transport = transport or QuicTransport(KeyPair.generate())
    hand_over, accepted = anyio.create_memory_object_stream[MuxedConnection](16)

    async def handler(conn: MuxedConnection) -> None:
        await hand_over.send(conn)

    async with anyio.create_task_group() as tg:
        await tg.start(transport.run)
        listener = await transport.listen(LOOPBACK)
        await tg.start(listener.serve, handler)
        yield transport, listener, accepted
        tg.cancel_scope.cancel()


async def check_good_dial(
    server: QuicTransport,
    listener: QuicListener,
    accepted: MemoryObjectReceiveStream[MuxedConnection],
) -> None:
    """A well-behaved client connects, and a stream carries data both ways."""
    client = QuicTransport(KeyPair.generate())
    async with anyio.create_task_group() as tg:
        await tg.start(client.run)
        conn = await client.dial(listener.addrs[0], server.local_peer)
        served = await accepted.receive()
        assert served.remote_peer == client.local_peer
        stream = await conn.open_stream()
        await stream.send(b"ping")
        inbound = await served.accept_stream()
        assert await inbound.receive() == b"ping"
        await inbound.send(b"pong")
        assert await stream.receive() == b"pong"
        await conn.aclose()
        await served.aclose()
        tg.cancel_scope.cancel()


def udp_port(listener: QuicListener) -> int:
    return int(listener.addrs[0].value_for_protocol("udp"))


def real_initial() -> bytes:
    """A client's first datagram (an Initial padded to 1200 bytes), made sans-IO."""
    core = QuicCore(configuration=QuicTransport(KeyPair.generate()).configuration(is_client=True))
    core.connect(("127.0.0.1", 9), now=0.0)
    (datagram, _), *_ = core.datagrams_to_send(now=0.0)
    return datagram


def long_header(first: int, version: int, dcid: bytes, scid: bytes, rest: bytes) -> bytes:
    return (
        bytes([first])
        + version.to_bytes(4, "big")
        + bytes([len(dcid)])
        + dcid
        + bytes([len(scid)])
        + scid
        + rest
    )


def version_probe(dcid: bytes, scid: bytes, *, first: int = 0xC0, size: int = 1200) -> bytes:
    """A long-header packet of an unknown version, ``size`` bytes long."""
    head = long_header(first, UNKNOWN_VERSION, dcid, scid, b"")
    return head + random.Random(dcid).randbytes(size - len(head))


def parse_version_negotiation(datagram: bytes) -> tuple[int, int, bytes, bytes, list[int]]:
    """(first byte, version, dcid, scid, supported versions), by RFC 9000 17.2.1."""
    first, version = datagram[0], int.from_bytes(datagram[1:5], "big")
    dcid_end = 6 + datagram[5]
    dcid = datagram[6:dcid_end]
    scid_end = dcid_end + 1 + datagram[dcid_end]
    scid = datagram[dcid_end + 1 : scid_end]
    tail = datagram[scid_end:]
    assert len(tail) % 4 == 0, "supported versions are 4 bytes each"
    versions = [int.from_bytes(tail[i : i + 4], "big") for i in range(0, len(tail), 4)]
    return first, version, dcid, scid, versions


async def expect_version_negotiation(
    udp: anyio.abc.ConnectedUDPSocket, probe_dcid: bytes, probe_scid: bytes
) -> None:
    answer = await udp.receive()
    first, version, dcid, scid, versions = parse_version_negotiation(answer)
    assert first & 0x80, "a long header"
    assert version == 0, "Version Negotiation has version 0"
    assert (dcid, scid) == (probe_scid, probe_dcid), "the probe's connection IDs, swapped"
    assert versions == [1]


# ---------------------------------------------------------------------------- datagrams

_rng = random.Random(7)
_cid = _rng.randbytes(CID_LENGTH)
JUNK = {
    "empty": b"",
    "one-byte": b"\x00",
    "random-short-header": bytes([0x40 | _rng.randrange(64)]) + _rng.randbytes(60),
    "random-1300-short-header": bytes([0x40]) + _rng.randbytes(1299),
    "short-header-unknown-cid": bytes([0x41]) + _cid + _rng.randbytes(200),
    "short-header-no-fixed-bit": bytes([0x01]) + _cid + _rng.randbytes(200),
    "truncated-initial": real_initial()[:600],
    "initial-one-byte-short": real_initial()[:1199],
    "long-header-cid-too-long": long_header(0xC0, 1, bytes(21), b"", bytes(1200)),
    "long-header-truncated": bytes([0xC0, 0, 0, 0, 1, 8]) + _cid[:3],
    "v1-no-fixed-bit": long_header(0x80, 1, _cid, _cid, bytes(1200)),
    "v1-initial-length-past-end": long_header(0xC0, 1, _cid, _cid, b"\x00\x7f\xff" + bytes(1200)),
    "v1-handshake-unknown-cid": long_header(0xE0, 1, _cid, _cid, b"\x44\x00" + bytes(1200)),
    "v1-retry": long_header(0xF0, 1, _cid, _cid, bytes(1200)),
    "v1-zero-rtt": long_header(0xD0, 1, _cid, _cid, b"\x44\x00" + bytes(1200)),
    "version-negotiation": long_header(0x80, 0, _cid, _cid, bytes.fromhex("00000001")),
    "unknown-version-too-short": version_probe(b"small", b"dgram", size=1199),
}


async def test_junk_datagrams_are_ignored(anyio_backend: str) -> None:
    """None of JUNK gets an answer (the probe after them is answered first) or breaks the
    listener (a good client connects after them)."""
    with anyio.fail_after(10):
        async with listening() as (server, listener, accepted):
            async with await anyio.create_connected_udp_socket(
                "127.0.0.1", udp_port(listener)
            ) as udp:
                for datagram in JUNK.values():
                    await udp.send(datagram)
                await udp.send(version_probe(b"probe-dcid", b"probe-scid"))
                await expect_version_negotiation(udp, b"probe-dcid", b"probe-scid")
            with pytest.raises(anyio.WouldBlock):
                accepted.receive_nowait()
            await check_good_dial(server, listener, accepted)


@pytest.mark.parametrize(
    ("first", "dcid", "scid"),
    [
        pytest.param(0xC0, b"12345678", b"abcde", id="v1-shaped"),
        # RFC 8999: past the connection IDs another version may look like anything, and
        # its first byte need not have QUIC v1's fixed bit.
        pytest.param(0x80, b"12345678", b"abcde", id="no-fixed-bit"),
        pytest.param(0xFF, bytes(range(40)), b"", id="long-dcid-empty-scid"),
    ],
)
async def test_unknown_version_gets_version_negotiation(
    anyio_backend: str, first: int, dcid: bytes, scid: bytes
) -> None:
    with anyio.fail_after(10):
        async with listening() as (server, listener, accepted):
            async with await anyio.create_connected_udp_socket(
                "127.0.0.1", udp_port(listener)
            ) as udp:
                await udp.send(version_probe(dcid, scid, first=first))
                await expect_version_negotiation(udp, dcid, scid)
            await check_good_dial(server, listener, accepted)


async def test_undecryptable_initial_is_dropped_at_once(anyio_backend: str) -> None:
    """A full-size Initial whose payload is garbage decrypts to nothing: the listener keeps
    no state for it (it would hold a handshake slot until the deadline otherwise: a cheap
    way to fill them all) and answers nothing."""
    initial = bytearray(real_initial())
    for i in range(200, 1200):  # the protected payload (the header ends well before)
        initial[i] ^= 0x5A
    server = QuicTransport(KeyPair.generate())
    with anyio.fail_after(10):
        async with listening(server) as (server, listener, accepted):
            endpoint = listener._endpoint
            async with await anyio.create_connected_udp_socket(
                "127.0.0.1", udp_port(listener)
            ) as udp:
                for _ in range(3):
                    await udp.send(bytes(initial))
                await check_good_dial(server, listener, accepted)
                assert endpoint._handshaking == 0
                with anyio.move_on_after(0.2):
                    reply = await udp.receive()
                    raise AssertionError(f"answered junk with {reply[:8]!r}")


async def test_abandoned_handshake_is_given_up_at_the_deadline(anyio_backend: str) -> None:
    """A genuine Initial whose client never goes on: the listener answers, then closes the
    connection at its handshake deadline and forgets it."""
    server = QuicTransport(KeyPair.generate(), handshake_timeout=0.3)
    with anyio.fail_after(10):
        async with listening(server) as (server, listener, accepted):
            endpoint = listener._endpoint
            async with await anyio.create_connected_udp_socket(
                "127.0.0.1", udp_port(listener)
            ) as udp:
                started = anyio.current_time()
                await udp.send(real_initial())
                await wait_for(lambda: len(endpoint._connections) == 1)
                assert endpoint._handshaking == 1
                await wait_for(lambda: not endpoint._connections)
                assert anyio.current_time() - started >= 0.3 - 0.005
            assert endpoint._handshaking == 0
            await check_good_dial(server, listener, accepted)


# ---------------------------------------------------------------------------- certificates


def der_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate(
    identity: KeyPair,
    *,
    extension: bool = True,
    signed_over: ec.EllipticCurvePrivateKey | None = None,
    valid_for: tuple[dt.timedelta, dt.timedelta] = (dt.timedelta(hours=-1), dt.timedelta(days=1)),
) -> tuple[bytes, bytes]:
    """A self-signed certificate and its key (both DER), by default a valid libp2p one for
    ``identity``. ``extension=False`` leaves the libp2p extension out; ``signed_over`` has
    the identity sign another key than the certificate's; ``valid_for`` is (not before,
    not after) relative to now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "1")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid_for[0])
        .not_valid_after(now + valid_for[1])
    )
    if extension:
        signed = SignedKey.create(identity, spki(signed_over or key)).encode()
        builder = builder.add_extension(
            x509.UnrecognizedExtension(EXTENSION_OID, signed), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.DER), der_key(key)


class CertificateTransport(QuicTransport):
    """A transport that presents ``make(identity)`` as its certificate."""

    def __init__(self, identity: KeyPair, make: Callable[[KeyPair], tuple[bytes, bytes]]) -> None:
        super().__init__(identity)
        self._make = make

    @functools.cached_property
    def _certificate(self) -> tuple[x509.Certificate, Any]:
        cert_der, key_der = self._make(self.identity)
        return (
            x509.load_der_x509_certificate(cert_der),
            serialization.load_der_private_key(key_der, password=None),
        )


BAD_CERTIFICATES = [
    pytest.param(lambda me: certificate(me, extension=False), "extension", id="no-extension"),
    pytest.param(
        lambda me: certificate(me, signed_over=ec.generate_private_key(ec.SECP256R1())),
        "signature",
        id="bad-extension-signature",
    ),
    pytest.param(
        lambda me: certificate(me, valid_for=(dt.timedelta(days=-2), dt.timedelta(days=-1))),
        "expired",
        id="expired",
    ),
    pytest.param(
        lambda me: certificate(me, valid_for=(dt.timedelta(days=1), dt.timedelta(days=2))),
        "not valid before",
        id="not-yet-valid",
    ),
]


async def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, looking every few milliseconds; the caller bounds
    the wait."""
    while not condition():
        await anyio.sleep(0.002)


@pytest.mark.parametrize(("make", "cause"), BAD_CERTIFICATES)
async def test_server_refuses_a_bad_client_certificate(
    anyio_backend: str, make: Callable[[KeyPair], tuple[bytes, bytes]], cause: str
) -> None:
    """The client's handshake looks complete to it (its Finished is sent), then the server
    refuses its certificate and closes with a bad_certificate alert naming the cause. The
    listener never hands the connection out, forgets it, and serves the next client."""
    bad_client = CertificateTransport(KeyPair.generate(), make)
    with anyio.fail_after(10):
        async with listening() as (server, listener, accepted):
            async with anyio.create_task_group() as tg:
                await tg.start(bad_client.run)
                try:
                    conn = await bad_client.dial(listener.addrs[0], server.local_peer)
                except HandshakeError as exc:  # the refusal came before the dial returned
                    error: BaseException | None = exc
                else:
                    await conn.run()  # returns when the connection is over
                    error = conn.error  # type: ignore[attr-defined]
                tg.cancel_scope.cancel()
            assert isinstance(error, QuicConnectionClosed)
            assert error.code == CRYPTO_ERROR + BAD_CERTIFICATE
            assert cause in error.reason
            with pytest.raises(anyio.WouldBlock):
                accepted.receive_nowait()
            await check_good_dial(server, listener, accepted)


@pytest.mark.parametrize(("make", "cause"), BAD_CERTIFICATES)
async def test_client_refuses_a_bad_server_certificate(
    anyio_backend: str, make: Callable[[KeyPair], tuple[bytes, bytes]], cause: str
) -> None:
    bad_server = CertificateTransport(KeyPair.generate(), make)
    client = QuicTransport(KeyPair.generate())
    with anyio.fail_after(10):
        async with listening(bad_server) as (_, listener, accepted):
            async with anyio.create_task_group() as tg:
                await tg.start(client.run)
                with pytest.raises(CertificateError, match=cause):
                    await client.dial(listener.addrs[0], bad_server.local_peer)
                with pytest.raises(anyio.WouldBlock):
                    accepted.receive_nowait()
                # The client goes on dialing others.
                async with listening() as good:
                    await check_good_dial(*good)
                tg.cancel_scope.cancel()


@pytest.mark.parametrize("refuser", ["server", "client"])
async def test_refused_handshake_leaves_nothing_behind(anyio_backend: str, refuser: str) -> None:
    """Whichever side refused the certificate, both endpoints forget the connection (after
    the closing period) and no handshake stays counted."""
    no_extension = functools.partial(certificate, extension=False)
    if refuser == "server":
        client: QuicTransport = CertificateTransport(KeyPair.generate(), no_extension)
        server = QuicTransport(KeyPair.generate())
    else:
        client = QuicTransport(KeyPair.generate())
        server = CertificateTransport(KeyPair.generate(), no_extension)
    with anyio.fail_after(10):
        async with listening(server) as (_, listener, _accepted):
            async with anyio.create_task_group() as tg:
                await tg.start(client.run)
                with contextlib.suppress(HandshakeError):
                    await client.dial(listener.addrs[0], server.local_peer)
                endpoints = [listener._endpoint, *client._endpoints]
                assert len(endpoints) == 2
                for endpoint in endpoints:
                    await wait_for(lambda endpoint=endpoint: not endpoint._connections)
                    assert endpoint._handshaking == 0
                    assert not endpoint._by_cid
                tg.cancel_scope.cancel()


async def test_server_with_another_peers_certificate(anyio_backend: str) -> None:
    """A listener whose (valid) certificate proves another identity than the one dialed:
    PeerIDMismatch naming both."""
    impostor = KeyPair.generate()
    server = CertificateTransport(KeyPair.generate(), lambda _: generate_certificate(impostor))
    client = QuicTransport(KeyPair.generate())
    with anyio.fail_after(10):
        async with listening(server) as (_, listener, _accepted):
            async with anyio.create_task_group() as tg:
                await tg.start(client.run)
                with pytest.raises(PeerIDMismatch) as info:
                    await client.dial(listener.addrs[0], server.local_peer)
                assert info.value.expected == server.local_peer
                assert info.value.actual == impostor.peer_id
                # Dialed without an expectation, the connection proves the impostor.
                conn = await client.dial(listener.addrs[0], None)
                assert conn.remote_peer == impostor.peer_id
                tg.cancel_scope.cancel()


async def test_client_with_another_peers_certificate(anyio_backend: str) -> None:
    """The listener takes whoever the certificate proves (it expects no one): the
    connection's remote peer is the certificate's identity, not the dialer's key."""
    impostor = KeyPair.generate()
    client = CertificateTransport(KeyPair.generate(), lambda _: generate_certificate(impostor))
    with anyio.fail_after(10):
        async with listening() as (server, listener, accepted):
            async with anyio.create_task_group() as tg:
                await tg.start(client.run)
                await client.dial(listener.addrs[0], server.local_peer)
                served = await accepted.receive()
                assert served.remote_peer == impostor.peer_id
                tg.cancel_scope.cancel()
