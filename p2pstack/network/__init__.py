"""The swarm and its connections."""

from p2pstack.network.connection import (
    Connection,
    ConnectionClosed,
    ConnectionEvent,
    ConnectionOpened,
)
from p2pstack.network.swarm import Swarm

__all__ = ["Connection", "ConnectionClosed", "ConnectionEvent", "ConnectionOpened", "Swarm"]
