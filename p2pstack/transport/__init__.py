"""Transports: the interfaces and TCP."""

from p2pstack.transport.abc import Listener, Transport
from p2pstack.transport.tcp import TcpTransport

__all__ = ["Listener", "TcpTransport", "Transport"]
