"""libp2p's TLS 1.3 identity check (libp2p/specs tls/tls.md) plugged into aioquic's TLS.

aioquic verifies certificates against certificate authorities; libp2p certificates are
self-signed and carry the identity in an extension instead. Two hooks of aioquic's
``tls.Context`` are private API, pinned by the version range in ``pyproject.toml`` and
exercised by ``tests/transport/test_quic_core.py``:

- ``_request_client_certificate``: the server asks for the client's certificate (mutual
  authentication is mandatory in libp2p); ``_supported_groups``: the key-exchange groups
  (X25519 first; the client sends shares for X25519 and P-256 only);
- ``_check_certificate_verify_signature`` runs once the peer proved possession of its
  certificate key (its CertificateVerify); that is where we verify the libp2p certificate and
  derive the remote PeerID. ``_server_handle_certificate`` refuses a client that sent none.

A failure raises a TLS alert (aioquic closes the connection with it) and keeps the typed
error (``CertificateError`` / ``PeerIDMismatch``) in :attr:`Libp2pTlsContext.libp2p_error`
for the transport to raise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aioquic import tls
from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # a C extension
from cryptography.hazmat.primitives import serialization

from p2pstack.errors import CertificateError, HandshakeError, PeerIDMismatch
from p2pstack.identity import PeerID, PublicKey
from p2pstack.security.tls.certificate import verify_certificate_key


class AlertCertificateRequired(tls.Alert):
    description = tls.AlertDescription.certificate_required


class Libp2pTlsContext(tls.Context):
    """aioquic's TLS context with the libp2p peer check. Installed by
    :class:`~p2pstack.transport.quic.core.QuicCore` on the context aioquic made, with
    :meth:`setup`."""

    expected_peer: PeerID | None
    remote_peer: PeerID | None
    remote_public_key: PublicKey | None
    libp2p_error: HandshakeError | None

    def setup(self, expected_peer: PeerID | None) -> None:
        self.expected_peer = expected_peer
        self.remote_peer = None
        self.remote_public_key = None
        self.libp2p_error = None
        if self._is_client:
            # aioquic's client makes a key share for each of its four groups (P-384 and
            # X448 cost ~0.7 ms); every libp2p implementation takes X25519.
            self._supported_groups = [tls.Group.X25519, tls.Group.SECP256R1]
        else:
            self._request_client_certificate = True
            self._supported_groups = [
                tls.Group.X25519,
                tls.Group.SECP256R1,
                tls.Group.SECP384R1,
                tls.Group.X448,
            ]

    def _server_handle_certificate(self, input_buf: Buffer) -> None:
        super()._server_handle_certificate(input_buf)
        if self._peer_certificate is None:  # an empty Certificate message
            self.libp2p_error = CertificateError("the client sent no certificate")
            raise AlertCertificateRequired("libp2p requires a client certificate")

    def _check_certificate_verify_signature(self, verify: Any) -> None:
        super()._check_certificate_verify_signature(verify)
        certificate = self._peer_certificate
        assert certificate is not None  # aioquic checked the signature with it
        try:
            if self._peer_certificate_chain:
                raise CertificateError("a libp2p peer presents exactly one certificate")
            der = certificate.public_bytes(serialization.Encoding.DER)
            key = verify_certificate_key(der, dt.datetime.now(dt.UTC))
            peer = PeerID.from_public_key(key)
            if self.expected_peer is not None and peer != self.expected_peer:
                raise PeerIDMismatch(self.expected_peer, peer)
        except HandshakeError as exc:
            self.libp2p_error = exc
            raise tls.AlertBadCertificate(str(exc)) from exc
        self.remote_peer = peer
        self.remote_public_key = key
