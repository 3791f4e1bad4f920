"""p2pstack: a libp2p-compatible peer-to-peer networking stack (trio and asyncio, via anyio).

The public API is re-exported here; see README.md for a tour.
"""

from p2pstack.attributes import P2PAttribute
from p2pstack.errors import (
    CertificateError,
    ConfigError,
    DialError,
    HandshakeError,
    InvalidKeyError,
    LocalProtocolError,
    MessageTooLarge,
    P2PError,
    PeerIDMismatch,
    ProtocolNotSupported,
    PublishError,
    RemoteProtocolError,
    ResourceLimitExceeded,
    StreamReset,
)
from p2pstack.host import Host
from p2pstack.identity import KeyPair, KeyType, PeerID, PrivateKey, PublicKey
from p2pstack.network import Connection, ConnectionClosed, ConnectionEvent, ConnectionOpened
from p2pstack.protocols.identify import IdentifyInfo
from p2pstack.protocols.perf import PerfResult
from p2pstack.pubsub import FloodSub, GossipSub, GossipSubParams, PubSub, ValidationResult

__version__ = "0.1.0"

__all__ = [
    "CertificateError",
    "ConfigError",
    "Connection",
    "ConnectionClosed",
    "ConnectionEvent",
    "ConnectionOpened",
    "DialError",
    "FloodSub",
    "GossipSub",
    "GossipSubParams",
    "HandshakeError",
    "Host",
    "IdentifyInfo",
    "InvalidKeyError",
    "KeyPair",
    "KeyType",
    "LocalProtocolError",
    "MessageTooLarge",
    "P2PAttribute",
    "P2PError",
    "PeerID",
    "PeerIDMismatch",
    "PerfResult",
    "PrivateKey",
    "ProtocolNotSupported",
    "PubSub",
    "PublicKey",
    "PublishError",
    "RemoteProtocolError",
    "ResourceLimitExceeded",
    "StreamReset",
    "ValidationResult",
    "__version__",
]
