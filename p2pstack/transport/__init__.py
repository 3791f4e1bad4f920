"""Transports: the interfaces, TCP and QUIC v1 (aioquic loads on first QUIC use)."""

from p2pstack.transport.abc import Listener, MuxedListener, MuxedTransport, Transport
from p2pstack.transport.quic import QuicTransport
from p2pstack.transport.tcp import TcpTransport

__all__ = [
    "Listener",
    "MuxedListener",
    "MuxedTransport",
    "QuicTransport",
    "TcpTransport",
    "Transport",
]
