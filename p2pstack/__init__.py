"""p2pstack: a libp2p-compatible peer-to-peer networking stack (trio and asyncio, via anyio).

The public API is re-exported here; see README.md for a tour.
"""

from typing import TYPE_CHECKING

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
from p2pstack.muxer.yamux import Yamux
from p2pstack.network import Connection, ConnectionClosed, ConnectionEvent, ConnectionOpened
from p2pstack.protocols.identify import IdentifyInfo
from p2pstack.protocols.perf import PerfResult
from p2pstack.security.noise import Noise
from p2pstack.security.tls import Tls
from p2pstack.transport import QuicTransport, TcpTransport

if TYPE_CHECKING:
    from p2pstack.pubsub import FloodSub, GossipSub, GossipSubParams, PubSub, ValidationResult

__version__ = "0.1.0"

# Pubsub is re-exported lazily: most programs never use it, and importing it eagerly added
# its modules and protobufs to every start-up.
_PUBSUB = ("FloodSub", "GossipSub", "GossipSubParams", "PubSub", "ValidationResult")


def __getattr__(name: str) -> object:
    if name in _PUBSUB:
        import p2pstack.pubsub

        return getattr(p2pstack.pubsub, name)
    raise AttributeError(f"module 'p2pstack' has no attribute {name!r}")


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
    "Noise",
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
    "QuicTransport",
    "RemoteProtocolError",
    "ResourceLimitExceeded",
    "StreamReset",
    "TcpTransport",
    "Tls",
    "ValidationResult",
    "Yamux",
    "__version__",
]
