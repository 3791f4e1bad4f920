"""Typed attributes that p2pstack streams expose through anyio's ``extra()``.

A secure stream, a muxed connection and each muxed stream merge these with the attributes
of the stream below them, so ``stream.extra(P2PAttribute.remote_peer)`` works at any layer.
"""

from __future__ import annotations

from typing import Any

from anyio import TypedAttributeSet, typed_attribute


class P2PAttribute(TypedAttributeSet):
    #: the authenticated remote :class:`~p2pstack.identity.PeerID`
    remote_peer: Any = typed_attribute()
    #: the local :class:`~p2pstack.identity.PeerID`
    local_peer: Any = typed_attribute()
    #: the remote's public key (:class:`~p2pstack.identity.PublicKey`)
    remote_public_key: Any = typed_attribute()
    #: the remote multiaddr of the underlying connection
    remote_addr: Any = typed_attribute()
    #: the local multiaddr of the underlying connection
    local_addr: Any = typed_attribute()
    #: security protocol id, e.g. "/noise"
    security_protocol: str = typed_attribute()
    #: stream muxer protocol id, e.g. "/yamux/1.0.0"
    muxer_protocol: str = typed_attribute()
    #: application protocol negotiated on a muxed stream
    protocol: str = typed_attribute()
    #: "inbound" or "outbound"
    direction: str = typed_attribute()
