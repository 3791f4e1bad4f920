"""The peerstore: addresses with TTLs, keys, protocols and metadata of known peers."""

from p2pstack.peerstore.peerstore import Peerstore

__all__ = ["Peerstore"]
