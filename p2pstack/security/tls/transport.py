"""The ``/tls/1.0.0`` secure channel (libp2p/specs tls/tls.md): :class:`Tls` runs a TLS 1.3
handshake over a raw ByteStream and returns a :class:`~p2pstack.security.tls.stream.TlsStream`.

The handshake itself lives in :mod:`p2pstack.security.tls.handshake`, loaded (with pyOpenSSL
and the X.509 code) on a transport's first handshake: a host offers TLS by default, and most
connections never use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio.abc

from p2pstack.identity import KeyPair, PeerID
from p2pstack.security.abc import SecureTransport

if TYPE_CHECKING:
    from OpenSSL import SSL

    from p2pstack.security.tls.stream import TlsStream

#: The secure channel's multistream protocol ID.
PROTOCOL_ID = "/tls/1.0.0"


class Tls(SecureTransport):
    """The ``/tls/1.0.0`` secure channel for ``identity``.

    One certificate (and one OpenSSL context) per transport, made on its first handshake,
    like go-libp2p's; the certificate is valid for a hundred years. Failures raise
    :class:`~p2pstack.errors.HandshakeError` (see :mod:`p2pstack.security.tls.handshake`).
    """

    protocol_id = PROTOCOL_ID

    def __init__(self, identity: KeyPair) -> None:
        self.identity = identity
        self._ssl_context: SSL.Context | None = None

    def _context(self) -> SSL.Context:
        if self._ssl_context is None:
            from p2pstack.security.tls.handshake import make_context

            self._ssl_context = make_context(self.identity)
        return self._ssl_context

    async def secure_outbound(
        self,
        raw: anyio.abc.ByteStream,
        expected_peer: PeerID | None,
        muxers: Sequence[str] = (),
    ) -> TlsStream:
        from p2pstack.security.tls.handshake import handshake

        return await handshake(
            raw,
            self._context(),
            self.identity.peer_id,
            muxers,
            initiator=True,
            expected_peer=expected_peer,
        )

    async def secure_inbound(
        self, raw: anyio.abc.ByteStream, muxers: Sequence[str] = ()
    ) -> TlsStream:
        from p2pstack.security.tls.handshake import handshake

        return await handshake(raw, self._context(), self.identity.peer_id, muxers, initiator=False)
