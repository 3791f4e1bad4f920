"""A live connection to one peer, as the swarm keeps it, and connection events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from multiaddr import Multiaddr

from p2pstack.attributes import P2PAttribute
from p2pstack.identity import PeerID
from p2pstack.muxer.abc import MuxedConnection, MuxedStream

Direction = Literal["inbound", "outbound"]


class Connection:
    """A muxed, authenticated connection. ``aclose()`` closes it and every stream on it."""

    def __init__(self, muxed: MuxedConnection, direction: Direction, opened_at: float) -> None:
        self.muxed = muxed
        self.direction: Direction = direction
        self.opened_at = opened_at
        self.remote_peer: PeerID = muxed.extra(P2PAttribute.remote_peer)
        self.remote_addr: Multiaddr | None = muxed.extra(P2PAttribute.remote_addr, None)
        self.local_addr: Multiaddr | None = muxed.extra(P2PAttribute.local_addr, None)
        self.security_protocol: str | None = muxed.extra(P2PAttribute.security_protocol, None)
        self.muxer_protocol: str | None = muxed.extra(P2PAttribute.muxer_protocol, None)

    @property
    def is_closed(self) -> bool:
        return self.muxed.is_closed

    async def open_stream(self) -> MuxedStream:
        return await self.muxed.open_stream()

    async def aclose(self) -> None:
        await self.muxed.aclose()

    def __repr__(self) -> str:
        return (
            f"<Connection {self.direction} {self.remote_peer} via {self.remote_addr}"
            f" {self.security_protocol} {self.muxer_protocol}>"
        )


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    connection: Connection

    @property
    def peer(self) -> PeerID:
        return self.connection.remote_peer


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    connection: Connection

    @property
    def peer(self) -> PeerID:
        return self.connection.remote_peer


ConnectionEvent = ConnectionOpened | ConnectionClosed
