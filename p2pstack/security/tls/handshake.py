"""The TLS 1.3 handshake of ``/tls/1.0.0`` (libp2p/specs tls/tls.md) on pyOpenSSL: the
context :func:`make_context` builds and :func:`handshake` runs over a raw ByteStream to give a
:class:`~p2pstack.security.tls.stream.TlsStream`. :class:`~p2pstack.security.tls.transport.Tls`
loads this module on its first handshake, so a host that never speaks TLS never loads OpenSSL.

Rules of the handshake, from the spec:

* TLS 1.3 only; both sides present a self-signed libp2p certificate (see
  :mod:`p2pstack.security.tls.certificate`), so the server requests the client's and the
  handshake fails without one. No SNI, no session tickets or resumption.
* OpenSSL's own chain checks cannot pass (self-signed, an unknown critical extension), so
  its verify callback accepts; instead, the callback runs the libp2p check on the peer's
  certificate, and a failure aborts the handshake with an alert. After the handshake the
  peer must have sent exactly one certificate; its verified identity key names the peer.
* Early muxer negotiation (connections/inlined-muxer-negotiation.md) by ALPN: the client
  offers its muxers in preference order, then ``"libp2p"``; the server picks the first of
  the client's that it also has, else ``"libp2p"``. ``"libp2p"`` (or no ALPN at all) means
  the muxer is negotiated with multistream-select afterwards.

Any failure raises :class:`~p2pstack.errors.HandshakeError`: a
:class:`~p2pstack.errors.CertificateError` for an unacceptable certificate, a
:class:`~p2pstack.errors.PeerIDMismatch` when the dialer finds another peer than expected.
The handshake never closes ``raw``: on failure or cancellation its owner does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from p2pstack.errors import CertificateError, HandshakeError, PeerIDMismatch
from p2pstack.identity import KeyPair, PeerID, PublicKey
from p2pstack.security.tls.certificate import generate_certificate, verify_certificate_key
from p2pstack.security.tls.records import take_outgoing
from p2pstack.security.tls.stream import RECEIVE_SIZE, TlsStream

#: The ALPN protocol that means "negotiate the muxer afterwards".
ALPN_LIBP2P = b"libp2p"


@dataclass
class _PeerCheck:
    """What one connection's callbacks need and find (the connection's app data)."""

    muxers: tuple[bytes, ...]
    public_key: PublicKey | None = None
    error: CertificateError | None = None
    seen: set[bytes] = field(default_factory=set)


def _verify_callback(
    conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int
) -> bool:
    """Run the libp2p certificate check instead of OpenSSL's (which fails on self-signed
    certificates and on the libp2p extension when it is critical)."""
    check: _PeerCheck = conn.get_app_data()
    if depth != 0:
        check.error = CertificateError("peer sent more than one certificate")
        return False
    der = cert.to_cryptography().public_bytes(serialization.Encoding.DER)
    if der in check.seen:  # OpenSSL calls once per error it found, then once more
        return check.error is None
    check.seen.add(der)
    if len(check.seen) > 1:
        check.error = CertificateError("peer presented more than one leaf certificate")
        return False
    try:
        check.public_key = verify_certificate_key(der, dt.datetime.now(dt.UTC))
    except CertificateError as exc:
        check.error = exc
        return False
    return True


def _alpn_select(conn: SSL.Connection, offered: list[bytes]) -> object:
    """The server's choice: the client's first muxer that we also have, else libp2p."""
    check: _PeerCheck = conn.get_app_data()
    for proto in offered:
        if proto in check.muxers:
            return proto
    if ALPN_LIBP2P in offered:
        return ALPN_LIBP2P
    return SSL.NO_OVERLAPPING_PROTOCOLS


def make_context(identity: KeyPair) -> SSL.Context:
    """An OpenSSL context holding a fresh libp2p certificate for ``identity`` (valid for a
    hundred years, like go-libp2p's); one serves every connection of a transport."""
    cert_der, key_der = generate_certificate(identity)
    certificate = x509.load_der_x509_certificate(cert_der)
    private_key = serialization.load_der_private_key(key_der, password=None)
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_3_VERSION)
    ctx.use_certificate(certificate)
    ctx.use_privatekey(private_key)  # type: ignore[arg-type]  # an EC key
    ctx.check_privatekey()
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_callback)
    ctx.set_options(SSL.OP_NO_TICKET)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_alpn_select_callback(_alpn_select)  # type: ignore[arg-type]  # or the sentinel
    return ctx


def new_connection(
    context: SSL.Context, muxers: Sequence[str]
) -> tuple[SSL.Connection, _PeerCheck]:
    """One connection's OpenSSL state, and what its callbacks will check and find."""
    check = _PeerCheck(tuple(m.encode() for m in muxers))
    conn = SSL.Connection(context, None)
    conn.set_app_data(check)
    return conn, check


async def handshake(
    raw: anyio.abc.ByteStream,
    context: SSL.Context,
    local_peer: PeerID,
    muxers: Sequence[str],
    *,
    initiator: bool,
    expected_peer: PeerID | None = None,
) -> TlsStream:
    """Run the handshake as client (``initiator``) or server and return the secured stream.
    The client offers ``muxers`` then ``"libp2p"`` by ALPN; the server picks among them."""
    conn, check = new_connection(context, muxers)
    if initiator:
        conn.set_alpn_protos([*check.muxers, ALPN_LIBP2P])
        conn.set_connect_state()
    else:
        conn.set_accept_state()
    while True:
        try:
            conn.do_handshake()
            done = True
        except SSL.WantReadError:
            done = False
        except SSL.Error as exc:
            await _send_alert(raw, conn)
            if check.error is not None:
                raise check.error from exc
            raise HandshakeError(f"tls handshake failed: {exc}") from exc
        out = take_outgoing(conn)
        if out:
            await raw.send(out)
        if done:
            break
        try:
            data = await raw.receive(RECEIVE_SIZE)
        except anyio.EndOfStream:
            raise HandshakeError("connection closed during the tls handshake") from None
        conn.bio_write(data)
    stream = TlsStream(
        raw,
        conn,
        local_peer=local_peer,
        remote_public_key=_remote_key(conn, check, initiator),
        early_muxer=_early_muxer(conn),
    )
    if expected_peer is not None and stream.remote_peer != expected_peer:
        raise PeerIDMismatch(expected_peer, stream.remote_peer)
    return stream


async def _send_alert(raw: anyio.abc.ByteStream, conn: SSL.Connection) -> None:
    """Best effort: tell the peer why (OpenSSL queued an alert)."""
    out = take_outgoing(conn)
    if out:
        try:
            await raw.send(out)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


def _remote_key(conn: SSL.Connection, check: _PeerCheck, initiator: bool) -> PublicKey:
    leaf = conn.get_peer_certificate(as_cryptography=True)
    if leaf is None or check.public_key is None:
        raise CertificateError("peer presented no certificate")
    # A client sees the server's whole chain, leaf included; a server sees the client's
    # chain without its leaf (OpenSSL's SSL_get_peer_cert_chain).
    chain = conn.get_peer_cert_chain(as_cryptography=True) or []
    count = len(chain) if initiator else len(chain) + 1
    if count != 1:
        raise CertificateError(f"peer presented {count} certificates, not one")
    if leaf.public_bytes(serialization.Encoding.DER) not in check.seen:
        raise CertificateError("peer certificate is not the one verified")
    return check.public_key


def _early_muxer(conn: SSL.Connection) -> str | None:
    proto = conn.get_alpn_proto_negotiated()
    if not proto or proto == ALPN_LIBP2P:
        return None
    try:
        return proto.decode()
    except UnicodeDecodeError:
        raise HandshakeError(f"ALPN agreed on a non-UTF-8 protocol {proto!r}") from None
