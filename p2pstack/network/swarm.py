"""The swarm: listens, dials, keeps the connections per peer and serves their streams.

One task per connection serves it (the muxer's ``run`` and an accept loop); every inbound
stream is handed to ``stream_handler`` in that connection's task group, so closing a
connection cancels what runs on it. A dial to a peer we are connected to returns the live
connection; concurrent dials to one peer share one attempt.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from multiaddr import Multiaddr

from p2pstack import lowlevel
from p2pstack.errors import ConfigError, DialError, ProtocolNotSupported, ResourceLimitExceeded
from p2pstack.identity import PeerID
from p2pstack.muxer.abc import MuxedConnection, MuxedStream
from p2pstack.network.connection import (
    Connection,
    ConnectionClosed,
    ConnectionEvent,
    ConnectionOpened,
    Direction,
)
from p2pstack.transport.abc import Listener, MuxedListener, MuxedTransport, Transport
from p2pstack.upgrader import Upgrader

log = logging.getLogger(__name__)

StreamHandler = Callable[[Connection, MuxedStream], Coroutine[Any, Any, None]]
ConnectionCallback = Callable[[Connection], None]

#: A dial attempt to one address (TCP connect + upgrade) gives up after this long.
DIAL_TIMEOUT = 15.0
#: An inbound connection must finish its upgrade within this long.
UPGRADE_TIMEOUT = 15.0
EVENT_BUFFER = 256


class _PendingDial:
    """A dial in progress, which concurrent dials to the same peer wait for."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: Exception | None = None


class Swarm:
    def __init__(
        self,
        local_peer: PeerID,
        transports: Sequence[Transport | MuxedTransport],
        upgrader: Upgrader,
        stream_handler: StreamHandler,
        *,
        max_connections: int = 1024,
    ) -> None:
        self.local_peer = local_peer
        self.transports = list(transports)
        self.upgrader = upgrader
        self._stream_handler = stream_handler
        self.max_connections = max_connections
        self._tg: lowlevel.TaskSpawner | None = None
        self._listeners: list[Listener | MuxedListener] = []
        self._conns: dict[PeerID, list[Connection]] = {}
        self._pending: dict[PeerID, _PendingDial] = {}
        self._subscribers: list[MemoryObjectSendStream[ConnectionEvent]] = []
        #: called (synchronously) when a connection is up, and when it is gone
        self.on_connection: list[ConnectionCallback] = []
        self.on_disconnection: list[ConnectionCallback] = []
        self.dropped_events = 0

    # ------------------------------------------------------------------ lifetime

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; on the way out every listener and connection is closed."""
        try:
            # A task per connection: spawned the backend's cheapest way.
            async with lowlevel.current().open_task_group() as tg:
                for transport in self.transports:
                    if isinstance(transport, MuxedTransport):
                        await tg.start(transport.run)
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await self._close_all()

    async def _close_all(self) -> None:
        for listener in self._listeners:
            await anyio.aclose_forcefully(listener)  # type: ignore[arg-type]
        self._listeners.clear()
        for conns in list(self._conns.values()):
            for conn in list(conns):
                with anyio.move_on_after(2):
                    await conn.aclose()
        for sub in self._subscribers:
            sub.close()
        self._subscribers.clear()

    def _task_group(self) -> lowlevel.TaskSpawner:
        if self._tg is None:
            raise anyio.ClosedResourceError("the swarm is not running")
        return self._tg

    # ------------------------------------------------------------------ listening

    async def listen(self, addr: Multiaddr) -> list[Multiaddr]:
        tg = self._task_group()
        for transport in self.transports:
            if not transport.can_listen(addr):
                continue
            if isinstance(transport, MuxedTransport):
                muxed_listener = await transport.listen(addr)
                self._listeners.append(muxed_listener)
                await tg.start(muxed_listener.serve, self._on_inbound_muxed)
                return muxed_listener.addrs
            listener = await transport.listen(addr)
            self._listeners.append(listener)
            await tg.start(listener.serve, self._on_inbound)
            return listener.addrs
        raise ConfigError(f"no transport can listen on {addr}")

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        return [a for listener in self._listeners for a in listener.addrs]

    async def _on_inbound(self, raw: anyio.abc.ByteStream) -> None:
        if self.connection_count >= self.max_connections:
            log.debug("refusing inbound connection: %d connections", self.connection_count)
            await anyio.aclose_forcefully(raw)
            return
        try:
            with anyio.fail_after(UPGRADE_TIMEOUT):
                muxed = await self.upgrader.upgrade_inbound(raw)
        except Exception as exc:
            log.debug("inbound upgrade failed: %r", exc)
            return
        await self._serve(await self._adopt(muxed, "inbound"))

    async def _on_inbound_muxed(self, muxed: MuxedConnection) -> None:
        if self.connection_count >= self.max_connections:
            log.debug("refusing inbound connection: %d connections", self.connection_count)
            await muxed.aclose()
            return
        await self._serve(await self._adopt(muxed, "inbound"))

    # ------------------------------------------------------------------ dialing

    def connections(self, peer: PeerID | None = None) -> list[Connection]:
        if peer is None:
            return [c for conns in self._conns.values() for c in conns]
        return [c for c in self._conns.get(peer, ()) if not c.is_closed]

    @property
    def connection_count(self) -> int:
        return sum(len(conns) for conns in self._conns.values())

    async def dial(self, peer: PeerID | None, addrs: Sequence[Multiaddr]) -> Connection:
        """A connection to ``peer``: a live one if we have it, else a new one from ``addrs``
        (tried in order). ``peer=None`` accepts whoever answers at the first address."""
        if peer is not None:
            if peer == self.local_peer:
                raise DialError(peer, [(None, ConfigError("cannot dial ourselves"))])
            while True:
                live = self.connections(peer)
                if live:
                    return live[0]
                pending = self._pending.get(peer)
                if pending is None:
                    break
                # Someone is dialing this peer already: share the outcome of that dial.
                await pending.done.wait()
                if pending.error is not None and not self.connections(peer):
                    raise pending.error
                # (A dial that was cancelled leaves no error: try again ourselves.)
        attempt = _PendingDial()
        if peer is not None:
            self._pending[peer] = attempt
        try:
            return await self._dial_addrs(peer, addrs)
        except Exception as exc:
            attempt.error = exc
            raise
        finally:
            if peer is not None:
                del self._pending[peer]
            attempt.done.set()

    async def _dial_addrs(self, peer: PeerID | None, addrs: Sequence[Multiaddr]) -> Connection:
        attempts: list[tuple[object, BaseException]] = []
        if self.connection_count >= self.max_connections:
            raise ResourceLimitExceeded(f"{self.max_connections} connections open")
        for addr in addrs:
            transport = next((t for t in self.transports if t.can_dial(addr)), None)
            if transport is None:
                attempts.append((addr, ConfigError("no transport for this address")))
                continue
            try:
                with anyio.fail_after(DIAL_TIMEOUT):
                    if isinstance(transport, MuxedTransport):
                        muxed = await transport.dial(addr, peer)
                    else:
                        muxed = await self._dial_upgraded(transport, addr, peer)
            except Exception as exc:
                attempts.append((addr, exc))
                continue
            conn = await self._adopt(muxed, "outbound")
            self._task_group().start_soon(self._serve, conn)
            return conn
        raise DialError(peer, attempts)

    async def _dial_upgraded(
        self, transport: Transport, addr: Multiaddr, peer: PeerID | None
    ) -> MuxedConnection:
        """Dial and upgrade; once more should the peer refuse the security protocol the
        upgrader remembered for it (it then negotiates among all)."""
        while True:
            guessed = self.upgrader.remembered_security(peer) is not None
            raw = await transport.dial(addr)
            try:
                return await self.upgrader.upgrade_outbound(raw, peer)
            except ProtocolNotSupported:
                if not guessed:
                    raise
                log.debug("%s refused the security protocol it used last; negotiating", peer)

    # ------------------------------------------------------------------ serving

    async def _adopt(self, muxed: MuxedConnection, direction: Direction) -> Connection:
        """:meth:`_register` ``muxed`` while the swarm runs; if it is not running, or a
        callback fails, the muxed connection is closed and the error raised."""
        try:
            self._task_group()
            return self._register(muxed, direction)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await muxed.aclose()
            raise

    def _register(self, muxed: MuxedConnection, direction: Direction) -> Connection:
        """Add a new connection to the pool and announce it. The caller must then run
        :meth:`_serve` for it, which removes it again when it ends."""
        conn = Connection(muxed, direction, anyio.current_time())
        self._conns.setdefault(conn.remote_peer, []).append(conn)
        self._publish(ConnectionOpened(conn))
        try:
            for callback in self.on_connection:
                callback(conn)
        except BaseException:
            self._unregister(conn)
            raise
        return conn

    def _unregister(self, conn: Connection) -> None:
        conns = self._conns.get(conn.remote_peer)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self._conns[conn.remote_peer]
            self._publish(ConnectionClosed(conn))
            for callback in self.on_disconnection:
                callback(conn)

    async def _serve(self, conn: Connection) -> None:
        # The muxer's run() is started with start_soon, not start(): a connection can be
        # used (streams opened and accepted) before its tasks first run, and nursery.start
        # costs a few scheduler passes on the way to the first stream of every connection.
        muxed = conn.muxed
        try:
            # A task per inbound stream: spawned the backend's cheapest way.
            async with lowlevel.current().open_task_group() as tg:
                tg.start_soon(muxed.run)
                while True:
                    try:
                        stream = await muxed.accept_stream()
                    except anyio.EndOfStream:
                        break
                    tg.start_soon(self._stream_handler, conn, stream)
                tg.cancel_scope.cancel()
        finally:
            self._unregister(conn)
            with anyio.CancelScope(shield=True):
                await muxed.aclose()

    async def close_peer(self, peer: PeerID) -> None:
        for conn in list(self._conns.get(peer, ())):
            await conn.aclose()

    # ------------------------------------------------------------------ events

    @asynccontextmanager
    async def events(
        self, buffer: int = EVENT_BUFFER
    ) -> AsyncIterator[MemoryObjectReceiveStream[ConnectionEvent]]:
        """Subscribe to connection events. A subscriber that falls ``buffer`` events behind
        misses events (counted in ``dropped_events``) rather than slowing the swarm."""
        send, receive = anyio.create_memory_object_stream[ConnectionEvent](buffer)
        self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()

    def _publish(self, event: ConnectionEvent) -> None:
        for sub in list(self._subscribers):
            try:
                sub.send_nowait(event)
            except anyio.WouldBlock:
                self.dropped_events += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(sub)
