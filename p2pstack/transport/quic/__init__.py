"""QUIC v1 (aioquic's sans-IO connection, driven by one anyio task per UDP socket)."""

from p2pstack.transport.quic.connection import QuicConnectionClosed, QuicMuxedConnection
from p2pstack.transport.quic.stream import QuicStream
from p2pstack.transport.quic.transport import QuicListener, QuicTransport, split_quic_addr

__all__ = [
    "QuicConnectionClosed",
    "QuicListener",
    "QuicMuxedConnection",
    "QuicStream",
    "QuicTransport",
    "split_quic_addr",
]
