"""Secure channel interfaces.

A :class:`SecureTransport` turns a raw, unauthenticated ByteStream into a
:class:`SecureStream`: encrypted, and bound to the remote peer's proven identity.

``secure_outbound``/``secure_inbound`` finish the whole handshake before they return (as
``anyio.streams.tls.TLSStream.wrap`` does). On failure they raise
:class:`~p2pstack.errors.HandshakeError` (or :class:`~p2pstack.errors.PeerIDMismatch`) and
leave closing the raw stream to the caller, who owns it. Cancelling a handshake leaves the
raw stream in an unknown state: close it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio.abc

if TYPE_CHECKING:
    from p2pstack.identity import PeerID, PublicKey


class SecureStream(anyio.abc.ByteStream):
    """An authenticated, encrypted ByteStream.

    Its ``extra()`` merges the raw stream's attributes with ``remote_peer``,
    ``remote_public_key``, ``local_peer`` and ``security_protocol``. ``aclose()`` closes the
    raw stream too; ``send_eof()`` half-closes it where the raw stream can.
    """

    @property
    @abstractmethod
    def remote_peer(self) -> PeerID: ...

    @property
    @abstractmethod
    def remote_public_key(self) -> PublicKey: ...

    @property
    @abstractmethod
    def early_muxer(self) -> str | None:
        """The muxer agreed inside the handshake, or ``None`` to negotiate one after."""


class SecureTransport(ABC):
    protocol_id: str

    @abstractmethod
    async def secure_outbound(
        self,
        raw: anyio.abc.ByteStream,
        expected_peer: PeerID | None,
        muxers: Sequence[str] = (),
    ) -> SecureStream:
        """Handshake as the initiator; ``expected_peer`` is checked when given."""

    @abstractmethod
    async def secure_inbound(
        self, raw: anyio.abc.ByteStream, muxers: Sequence[str] = ()
    ) -> SecureStream:
        """Handshake as the responder."""
