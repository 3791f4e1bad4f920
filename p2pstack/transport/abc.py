"""Transport interfaces: raw byte pipes to and from multiaddrs (TCP), or connections that
come secure and multiplexed (QUIC: :class:`MuxedTransport`).

``dial`` returns a connected ByteStream (unauthenticated) whose ``extra()`` holds
``P2PAttribute.remote_addr`` and ``local_addr`` as multiaddrs. A ``Listener`` is served by
``serve(handler)``, which runs ``handler(stream)`` in its own task per inbound connection
until the listener is closed or the serving task is cancelled; the handler owns the stream.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

import anyio.abc
from multiaddr import Multiaddr

from p2pstack.identity import PeerID
from p2pstack.muxer.abc import MuxedConnection

ConnectionHandler = Callable[[anyio.abc.ByteStream], Awaitable[None]]


class Listener(ABC):
    @property
    @abstractmethod
    def addrs(self) -> list[Multiaddr]:
        """The bound addresses (a port 0 request shows the port the system chose)."""

    @abstractmethod
    async def serve(
        self,
        handler: ConnectionHandler,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class Transport(ABC):
    @abstractmethod
    def can_dial(self, addr: Multiaddr) -> bool: ...

    @abstractmethod
    def can_listen(self, addr: Multiaddr) -> bool: ...

    @abstractmethod
    async def dial(self, addr: Multiaddr) -> anyio.abc.ByteStream: ...

    @abstractmethod
    async def listen(self, addr: Multiaddr) -> Listener: ...


MuxedConnectionHandler = Callable[[MuxedConnection], Awaitable[None]]


class MuxedListener(ABC):
    """A listener whose connections come secure and multiplexed (QUIC): ``serve(handler)``
    runs ``handler(connection)`` in its own task per authenticated inbound connection until
    the listener is closed or the serving task is cancelled; the handler owns it."""

    @property
    @abstractmethod
    def addrs(self) -> list[Multiaddr]: ...

    @abstractmethod
    async def serve(
        self,
        handler: MuxedConnectionHandler,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class MuxedTransport(ABC):
    """A transport that authenticates and multiplexes by itself (QUIC): ``dial`` returns a
    :class:`MuxedConnection` whose remote peer is proven (and equal to ``expected_peer``
    when one is given). ``run()`` serves the transport's sockets; it must be running (the
    swarm starts it) for anything to move, and cancelling it closes them all."""

    @abstractmethod
    def can_dial(self, addr: Multiaddr) -> bool: ...

    @abstractmethod
    def can_listen(self, addr: Multiaddr) -> bool: ...

    @abstractmethod
    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None: ...

    @abstractmethod
    async def dial(self, addr: Multiaddr, expected_peer: PeerID | None) -> MuxedConnection: ...

    @abstractmethod
    async def listen(self, addr: Multiaddr) -> MuxedListener: ...
