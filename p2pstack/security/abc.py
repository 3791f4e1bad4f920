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
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio.abc

from p2pstack.attributes import P2PAttribute

if TYPE_CHECKING:
    from p2pstack.identity import PeerID, PublicKey


class SecureStream(anyio.abc.ByteStream):
    """An authenticated, encrypted ByteStream.

    Its ``extra()`` merges the raw stream's attributes with ``remote_peer``,
    ``remote_public_key``, ``local_peer`` and ``security_protocol``. ``aclose()`` closes the
    raw stream too; ``send_eof()`` half-closes it where the raw stream can.

    Implementations call :meth:`_bind_identity` once the handshake proved the peer.
    """

    _remote_peer: PeerID
    _remote_key: PublicKey
    _muxer: str | None
    _attrs: dict[Any, Callable[[], Any]]

    def _bind_identity(
        self,
        raw: anyio.abc.ByteStream,
        *,
        protocol_id: str,
        local_peer: PeerID,
        remote_peer: PeerID,
        remote_key: PublicKey,
        muxer: str | None,
    ) -> None:
        self._remote_peer = remote_peer
        self._remote_key = remote_key
        self._muxer = muxer
        attrs: dict[Any, Callable[[], Any]] = {**raw.extra_attributes}
        attrs[P2PAttribute.remote_peer] = lambda: remote_peer
        attrs[P2PAttribute.remote_public_key] = lambda: remote_key
        attrs[P2PAttribute.local_peer] = lambda: local_peer
        attrs[P2PAttribute.security_protocol] = lambda: protocol_id
        self._attrs = attrs

    @property
    def remote_peer(self) -> PeerID:
        return self._remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        return self._remote_key

    @property
    def early_muxer(self) -> str | None:
        """The muxer agreed inside the handshake, or ``None`` to negotiate one after."""
        return self._muxer

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._attrs


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
