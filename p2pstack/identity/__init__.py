"""Keys, key pairs and peer IDs (libp2p/specs peer-ids/peer-ids.md)."""

from p2pstack.identity.keys import (
    KeyPair,
    KeyType,
    PrivateKey,
    PublicKey,
    decode_private_key,
    decode_public_key,
    generate_private_key,
    public_key_from_raw,
)
from p2pstack.identity.peer_id import PeerID

__all__ = [
    "KeyPair",
    "KeyType",
    "PeerID",
    "PrivateKey",
    "PublicKey",
    "decode_private_key",
    "decode_public_key",
    "generate_private_key",
    "public_key_from_raw",
]
