"""What we know about other peers: addresses (with TTLs), keys, protocols, metadata.

Time is passed in (``now``, in the clock of the caller's choice, e.g.
``anyio.current_time()``); nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from multiaddr import Multiaddr

from p2pstack.identity import PeerID, PublicKey

#: How long addresses stay: learnt from a connected peer's identify, dialed explicitly
#: by the user (permanent until removed), and recently seen (go-libp2p's TTLs).
CONNECTED_ADDR_TTL = float("inf")
PERMANENT_ADDR_TTL = float("inf")
RECENTLY_CONNECTED_ADDR_TTL = 15 * 60.0
TEMP_ADDR_TTL = 2 * 60.0
#: Addresses kept per peer at most; a peer cannot make us store an unbounded list.
MAX_ADDRS_PER_PEER = 64
MAX_PROTOCOLS_PER_PEER = 256


@dataclass
class PeerRecord:
    addrs: dict[Multiaddr, float] = field(default_factory=dict)  # address -> expiry
    public_key: PublicKey | None = None
    protocols: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


class Peerstore:
    def __init__(self) -> None:
        self._peers: dict[PeerID, PeerRecord] = {}

    def _record(self, peer: PeerID) -> PeerRecord:
        rec = self._peers.get(peer)
        if rec is None:
            rec = self._peers[peer] = PeerRecord()
        return rec

    def peers(self) -> list[PeerID]:
        return list(self._peers)

    def add_addrs(self, peer: PeerID, addrs: Iterable[Multiaddr], ttl: float, now: float) -> None:
        """Add addresses valid until ``now + ttl``; a longer TTL extends an existing one."""
        rec = self._record(peer)
        expiry = now + ttl
        for addr in addrs:
            if addr in rec.addrs:
                rec.addrs[addr] = max(rec.addrs[addr], expiry)
            elif len(rec.addrs) < MAX_ADDRS_PER_PEER:
                rec.addrs[addr] = expiry

    def set_addrs(self, peer: PeerID, addrs: Iterable[Multiaddr], ttl: float, now: float) -> None:
        """Replace the addresses of ``peer``."""
        self._record(peer).addrs.clear()
        self.add_addrs(peer, addrs, ttl, now)

    def addrs(self, peer: PeerID, now: float) -> list[Multiaddr]:
        """Unexpired addresses, dropping expired ones."""
        rec = self._peers.get(peer)
        if rec is None:
            return []
        for addr in [a for a, exp in rec.addrs.items() if exp <= now]:
            del rec.addrs[addr]
        return list(rec.addrs)

    def add_public_key(self, peer: PeerID, key: PublicKey) -> None:
        if not peer.matches_public_key(key):
            raise ValueError(f"public key does not belong to {peer}")
        self._record(peer).public_key = key

    def public_key(self, peer: PeerID) -> PublicKey | None:
        rec = self._peers.get(peer)
        if rec is not None and rec.public_key is not None:
            return rec.public_key
        return peer.extract_public_key()

    def set_protocols(self, peer: PeerID, protocols: Iterable[str]) -> None:
        self._record(peer).protocols = tuple(protocols)[:MAX_PROTOCOLS_PER_PEER]

    def protocols(self, peer: PeerID) -> tuple[str, ...]:
        rec = self._peers.get(peer)
        return rec.protocols if rec is not None else ()

    def put(self, peer: PeerID, key: str, value: Any) -> None:
        self._record(peer).metadata[key] = value

    def get(self, peer: PeerID, key: str, default: Any = None) -> Any:
        rec = self._peers.get(peer)
        return rec.metadata.get(key, default) if rec is not None else default

    def remove_peer(self, peer: PeerID) -> None:
        self._peers.pop(peer, None)
