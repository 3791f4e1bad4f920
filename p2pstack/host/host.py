"""The Host: what applications use.

::

    async with Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as host:
        host.set_stream_handler("/my/1.0.0", handler)
        peer = await host.connect("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...")
        stream = await host.new_stream(peer, ["/my/1.0.0"])

Lifetime: leaving the ``async with`` closes listeners and connections and cancels every
handler. Handlers run in the task group of the connection their stream came on; a handler
that raises gets its stream reset and is logged, and the host goes on; a stream a handler
left open is closed when it returns. An exception raised in the ``async with`` body comes
out as itself (not wrapped in an exception group) after the host has shut down.

Ping and identify are always served; identify runs on every new connection, and its result
is what :meth:`Host.identify` returns.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream
from multiaddr import Multiaddr

from p2pstack import lowlevel
from p2pstack.attributes import P2PAttribute
from p2pstack.errors import ConfigError, DialError, ProtocolNotSupported, RemoteProtocolError
from p2pstack.host.router import ProtocolRouter, StreamHandler
from p2pstack.identity import KeyPair, PeerID
from p2pstack.identity.record import PeerRecord
from p2pstack.multistream import select_inbound, select_outbound
from p2pstack.muxer.abc import MuxedStream, StreamMuxer
from p2pstack.muxer.yamux import Yamux
from p2pstack.network import Connection, ConnectionEvent, Swarm
from p2pstack.peerstore import Peerstore
from p2pstack.peerstore.peerstore import PERMANENT_ADDR_TTL, RECENTLY_CONNECTED_ADDR_TTL
from p2pstack.protocols import identify, ping
from p2pstack.protocols.identify import IdentifyInfo
from p2pstack.security.abc import SecureTransport
from p2pstack.security.noise import Noise
from p2pstack.security.tls import Tls
from p2pstack.transport.abc import MuxedTransport, Transport
from p2pstack.transport.quic import QuicTransport
from p2pstack.transport.tcp import TcpTransport
from p2pstack.upgrader import Upgrader

log = logging.getLogger(__name__)

AGENT_VERSION = "p2pstack/0.1.0"
#: An inbound stream must name its protocol within this long.
NEGOTIATION_TIMEOUT = 10.0
IDENTIFY_TIMEOUT = 10.0


def split_peer_addr(target: Multiaddr | str) -> tuple[PeerID | None, Multiaddr]:
    """``/.../p2p/<id>`` -> (PeerID, the address without /p2p)."""
    if isinstance(target, str):
        return _split_peer_text(target)
    return _split_peer_addr(target)


@functools.lru_cache(maxsize=256)
def _split_peer_text(text: str) -> tuple[PeerID | None, Multiaddr]:
    # A program dialing by string dials the same few strings again and again; both
    # results are immutable, and parsing one costs ~0.1 ms.
    return _split_peer_addr(text)


def _split_peer_addr(target: Multiaddr | str) -> tuple[PeerID | None, Multiaddr]:
    text = str(target)
    head, sep, peer_text = text.rpartition("/p2p/")
    if sep and "/" not in peer_text:
        # String surgery: py-multiaddr's decapsulate costs ~0.1 ms, a lot on a dial path.
        return PeerID.from_string(peer_text), Multiaddr(head)
    return None, target if isinstance(target, Multiaddr) else Multiaddr(text)


class Host:
    def __init__(
        self,
        key_pair: KeyPair | None = None,
        *,
        listen_addrs: Sequence[Multiaddr | str] = (),
        agent_version: str = AGENT_VERSION,
        transports: Sequence[Transport | MuxedTransport] | None = None,
        security: Sequence[SecureTransport] | None = None,
        muxers: Sequence[StreamMuxer] | None = None,
        max_connections: int = 1024,
    ) -> None:
        self.key_pair = key_pair or KeyPair.generate()
        self.peer_id: PeerID = self.key_pair.peer_id
        self.agent_version = agent_version
        self.peerstore = Peerstore()
        self._initial_listen = [
            a if isinstance(a, Multiaddr) else Multiaddr(a) for a in listen_addrs
        ]
        self._router = ProtocolRouter()
        self._inbound_counts: dict[tuple[PeerID, str], int] = {}
        self._identified: dict[Connection, anyio.Event] = {}
        self._identify_info: dict[Connection, IdentifyInfo | BaseException] = {}
        self._ping_locks: dict[PeerID, anyio.Lock] = {}
        upgrader = Upgrader(
            security if security is not None else [Noise(self.key_pair), Tls(self.key_pair)],
            muxers if muxers is not None else [Yamux()],
        )
        self.swarm = Swarm(
            self.peer_id,
            transports
            if transports is not None
            else [TcpTransport(), QuicTransport(self.key_pair)],
            upgrader,
            self._on_stream,
            max_connections=max_connections,
        )
        self.swarm.on_connection.append(self._on_connection)
        self.swarm.on_disconnection.append(self._on_disconnection)
        self._exit: AsyncExitStack | None = None
        self._identify_cache: bytes | None = None  # our Identify, less observedAddr
        self._tg: lowlevel.TaskSpawner | None = None
        self.set_stream_handler(
            ping.PROTOCOL_ID,
            ping.handle_ping,
            max_inbound_per_peer=ping.MAX_INBOUND_STREAMS_PER_PEER,
        )
        self.set_stream_handler(identify.PROTOCOL_ID, self._serve_identify)
        self.set_stream_handler(identify.PUSH_PROTOCOL_ID, self._serve_identify_push)

    # ------------------------------------------------------------------ lifetime

    async def __aenter__(self) -> Host:
        async with AsyncExitStack() as stack:
            # A task per connection (identify): spawned the backend's cheapest way.
            tg = await stack.enter_async_context(lowlevel.current().open_task_group())
            stack.callback(tg.cancel_scope.cancel)
            await tg.start(self.swarm.run)
            self._tg = tg
            for addr in self._initial_listen:
                await self.listen(addr)
            self._exit = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._exit is not None
        exit_stack, self._exit, self._tg = self._exit, None, None
        try:
            return await exit_stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The host's task group wraps what the ``async with`` body raised; when that
            # exception is all there is, let it through as itself, not as a group.
            if exc is not None and _sole_exception(group) is exc:
                return False
            raise

    async def listen(self, addr: Multiaddr | str) -> list[Multiaddr]:
        """Listen on another address; returns the bound addresses."""
        addr = addr if isinstance(addr, Multiaddr) else Multiaddr(addr)
        bound = await self.swarm.listen(addr)
        self._identify_cache = None
        self._push_identify_soon()
        return bound

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        return self.swarm.listen_addrs

    @property
    def addrs(self) -> list[Multiaddr]:
        """Full listen addresses, each ending in ``/p2p/<our peer id>``."""
        suffix = Multiaddr(f"/p2p/{self.peer_id}")
        return [a.encapsulate(suffix) for a in self.listen_addrs]

    # ------------------------------------------------------------------ handlers

    def set_stream_handler(
        self, protocol: str, handler: StreamHandler, *, max_inbound_per_peer: int | None = None
    ) -> None:
        """Serve ``protocol``: each inbound stream runs ``await handler(stream)``.

        When the dialer's proposal came with data, our multistream answer is held back and
        sent with the handler's first ``send()`` (or before its first ``receive()`` that has
        to wait): a handler should read or write before it awaits anything else, or the
        dialer waits for the answer meanwhile."""
        self._router.add(protocol, handler, max_inbound_per_peer=max_inbound_per_peer)
        self._push_identify_soon()

    def remove_stream_handler(self, protocol: str) -> None:
        self._router.remove(protocol)
        self._push_identify_soon()

    @property
    def protocols(self) -> list[str]:
        return list(self._router.protocols)

    async def _on_stream(self, conn: Connection, stream: MuxedStream) -> None:
        peer = conn.remote_peer
        try:
            protocol, negotiated = await select_inbound(
                stream, self._router.protocols, timeout=NEGOTIATION_TIMEOUT
            )
        except Exception as exc:
            log.debug("inbound stream from %s: negotiation failed: %r", peer, exc)
            await stream.reset()
            return
        route = self._router.get(protocol)
        if route is None:  # removed while negotiating
            await stream.reset()
            return
        setattr(stream, "protocol", protocol)  # noqa: B010 - muxer streams carry it
        key = (peer, protocol)
        limit = route.max_inbound_per_peer
        if limit is not None:
            if self._inbound_counts.get(key, 0) >= limit:
                log.debug("%s: too many inbound %s streams", peer, protocol)
                await stream.reset()
                return
            self._inbound_counts[key] = self._inbound_counts.get(key, 0) + 1
        try:
            await route.handler(negotiated)
        except (anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError) as exc:
            # The peer went away or reset the stream: routine, not the handler's fault.
            log.debug("stream %s from %s ended abruptly: %r", protocol, peer, exc)
            await stream.reset()
        except Exception as exc:
            log.warning("handler for %s from %s failed: %r", protocol, peer, exc)
            await stream.reset()
        finally:
            if limit is not None:
                remaining = self._inbound_counts[key] - 1
                if remaining:
                    self._inbound_counts[key] = remaining
                else:
                    del self._inbound_counts[key]
            with anyio.CancelScope(shield=True):
                try:
                    await negotiated.aclose()
                except Exception as exc:  # closing must never take the connection down
                    log.debug("closing a %s stream failed: %r", protocol, exc)

    # ------------------------------------------------------------------ dialing, streams

    async def connect(self, target: Multiaddr | str | PeerID) -> PeerID:
        """Connect to a peer (reusing a live connection); returns its PeerID.

        ``target`` is a multiaddr (with ``/p2p/<id>`` to have the identity checked), or a
        PeerID whose addresses the peerstore knows.
        """
        conn = await self._connection(target)
        return conn.remote_peer

    async def _connection(self, target: Multiaddr | str | PeerID) -> Connection:
        if isinstance(target, PeerID):
            live = self.swarm.connections(target)
            if live:  # the common case of every new_stream: no address lookup
                await anyio.lowlevel.checkpoint_if_cancelled()
                return live[0]
        now = anyio.current_time()
        if isinstance(target, PeerID):
            peer: PeerID | None = target
            addrs = self.peerstore.addrs(target, now)
            if not addrs and not self.swarm.connections(target):
                raise DialError(target, [])
        else:
            peer, addr = split_peer_addr(target)
            addrs = [addr]
            if peer is not None:
                self.peerstore.add_addrs(peer, addrs, PERMANENT_ADDR_TTL, now)
        conn = await self.swarm.dial(peer, addrs)
        return conn

    async def new_stream(
        self, peer: PeerID | Multiaddr | str, protocols: Sequence[str]
    ) -> anyio.abc.ByteStream:
        """Open a stream to ``peer`` speaking the first of ``protocols`` it supports.

        With a single protocol the proposal is pipelined with the first data (no round
        trip); a refusal then surfaces on the first ``receive()`` as ProtocolNotSupported.
        The stream's ``extra(P2PAttribute.protocol)`` names the protocol chosen.
        """
        if not protocols:
            raise ConfigError("new_stream needs at least one protocol")
        conn = await self._connection(peer)
        stream = await conn.open_stream()
        try:
            protocol, negotiated = await select_outbound(
                stream, list(protocols), lazy=len(protocols) == 1
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.reset()
            raise
        setattr(stream, "protocol", protocol)  # noqa: B010
        return negotiated

    def connections(self, peer: PeerID | None = None) -> list[Connection]:
        return self.swarm.connections(peer)

    async def disconnect(self, peer: PeerID) -> None:
        await self.swarm.close_peer(peer)

    @asynccontextmanager
    async def events(self) -> AsyncIterator[MemoryObjectReceiveStream[ConnectionEvent]]:
        """``async with host.events() as events: async for ev in events: ...``"""
        async with self.swarm.events() as receive:
            yield receive

    # ------------------------------------------------------------------ ping

    async def ping(self, peer: PeerID | Multiaddr | str, count: int = 1) -> list[float]:
        """Ping ``count`` times on one stream; returns the round trips in seconds."""
        conn = await self._connection(peer)
        # fast_acquire: an uncontended ping starts without a scheduler pass, so that on a new
        # connection its stream goes out ahead of (and in one write with) identify's.
        lock = self._ping_locks.setdefault(conn.remote_peer, anyio.Lock(fast_acquire=True))
        async with lock:
            stream = await self.new_stream(conn.remote_peer, [ping.PROTOCOL_ID])
            async with stream:
                return [await ping.ping_once(stream) for _ in range(count)]

    # ------------------------------------------------------------------ identify

    def _on_connection(self, conn: Connection) -> None:
        if conn.remote_addr is not None:
            self.peerstore.add_addrs(
                conn.remote_peer,
                [conn.remote_addr],
                RECENTLY_CONNECTED_ADDR_TTL,
                anyio.current_time(),
            )
        self._identified[conn] = anyio.Event()
        if self._tg is not None:
            self._tg.start_soon(self._identify_connection, conn)

    def _on_disconnection(self, conn: Connection) -> None:
        self._identify_info.pop(conn, None)
        lock = self._ping_locks.get(conn.remote_peer)
        if lock is not None and not lock.locked() and not self.swarm.connections(conn.remote_peer):
            del self._ping_locks[conn.remote_peer]
        event = self._identified.pop(conn, None)
        if event is not None:
            event.set()

    async def _identify_connection(self, conn: Connection) -> None:
        try:
            if conn.direction == "inbound":
                # The dialer's first streams came with the handshake's end and were
                # accepted in the step that made the connection: their handlers start in
                # the next scheduler pass, and our request waits for the one after, so as
                # not to go first in half the passes (trio runs a pass in either order).
                await anyio.lowlevel.checkpoint()
            with anyio.fail_after(IDENTIFY_TIMEOUT):
                stream = await conn.open_stream()
                async with stream:
                    _, negotiated = await select_outbound(stream, [identify.PROTOCOL_ID], lazy=True)
                    messages = await identify.read_identify_messages(negotiated)
            # Parsing (a signature check and some hundred microseconds of Python) waits one
            # scheduler pass: replies that came with the answer to streams the application
            # opened on the new connection are handled first.
            await anyio.lowlevel.checkpoint()
            info = identify.parse_identify(messages)
            if info is None:
                raise RemoteProtocolError("identify stream ended without a message")
            if info.public_key is not None and info.peer_id != conn.remote_peer:
                raise RemoteProtocolError("identify carried another peer's public key")
            self._store_identify(conn.remote_peer, info)
            self._identify_info[conn] = info
        except Exception as exc:
            log.debug("identify of %s failed: %r", conn.remote_peer, exc)
            self._identify_info[conn] = exc
        finally:
            event = self._identified.pop(conn, None)
            if event is not None:
                event.set()

    def _store_identify(self, peer: PeerID, info: IdentifyInfo) -> None:
        store = self.peerstore
        if info.public_key is not None:
            store.add_public_key(peer, info.public_key)
        addrs = info.listen_addrs
        record = info.peer_record
        if record is not None and record.peer_id == peer:
            # Addresses the peer signed itself are preferred, as go does.
            addrs = list(record.addrs)
            store.put(peer, "peer_record", record)
        store.add_addrs(peer, addrs, RECENTLY_CONNECTED_ADDR_TTL, anyio.current_time())
        if info.protocols:
            store.set_protocols(peer, info.protocols)
        if info.agent_version is not None:
            store.put(peer, "agent_version", info.agent_version)
        if info.protocol_version is not None:
            store.put(peer, "protocol_version", info.protocol_version)

    async def identify(self, peer: PeerID | Multiaddr | str) -> IdentifyInfo:
        """What ``peer`` told us in identify on our connection to it (waits for it)."""
        conn = await self._connection(peer)
        event = self._identified.get(conn)
        if event is not None:
            await event.wait()
        result = self._identify_info.get(conn)
        if result is None:
            raise RemoteProtocolError("no identify result for this connection")
        if isinstance(result, BaseException):
            raise result
        return result

    def _identify_message(self, conn: Connection | None) -> bytes:
        if self._identify_cache is None:
            addrs = self.listen_addrs
            record = None
            if addrs:
                # The sequence number must grow across restarts too: go uses the time.
                record = PeerRecord(self.peer_id, time.time_ns(), tuple(addrs))
            self._identify_cache = identify.encode_identify(
                self.key_pair.public,
                addrs,
                self.protocols,
                None,
                self.agent_version,
                signed_peer_record=record.seal(self.key_pair.private) if record else None,
            )
        return identify.with_observed_addr(
            self._identify_cache, conn.remote_addr if conn is not None else None
        )

    async def _serve_identify(self, stream: anyio.abc.ByteStream) -> None:
        conn = self._conn_of(stream)
        await identify.write_identify(stream, self._identify_message(conn))

    async def _serve_identify_push(self, stream: anyio.abc.ByteStream) -> None:
        conn = self._conn_of(stream)
        info = await identify.read_identify_push(stream)
        if info is None:
            log.debug("empty identify push (the peer closed the stream unsent)")
            return
        if conn is not None:
            if info.public_key is not None and info.peer_id != conn.remote_peer:
                raise RemoteProtocolError("identify push carried another peer's public key")
            self._store_identify(conn.remote_peer, info)
            previous = self._identify_info.get(conn)
            if isinstance(previous, IdentifyInfo):
                _merge_info(previous, info)

    def _conn_of(self, stream: anyio.abc.ByteStream) -> Connection | None:
        peer = stream.extra(P2PAttribute.remote_peer, None)
        conns = self.swarm.connections(peer) if peer is not None else []
        remote = stream.extra(P2PAttribute.remote_addr, None)
        for conn in conns:
            if conn.remote_addr == remote:
                return conn
        return conns[0] if conns else None

    def _push_identify_soon(self) -> None:
        self._identify_cache = None
        if self._tg is None:
            return
        for conn in self.swarm.connections():
            self._tg.start_soon(self._push_identify, conn)

    async def _push_identify(self, conn: Connection) -> None:
        supported = self.peerstore.protocols(conn.remote_peer)
        if supported and identify.PUSH_PROTOCOL_ID not in supported:
            return
        try:
            with anyio.fail_after(IDENTIFY_TIMEOUT):
                stream = await conn.open_stream()
                async with stream:
                    _, negotiated = await select_outbound(stream, [identify.PUSH_PROTOCOL_ID])
                    await identify.write_identify(negotiated, self._identify_message(conn))
        except (Exception, ProtocolNotSupported) as exc:
            log.debug("identify push to %s failed: %r", conn.remote_peer, exc)


def _sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside (possibly nested) single-member groups, else None."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner


def _merge_info(into: IdentifyInfo, new: IdentifyInfo) -> None:
    for name in IdentifyInfo.__slots__:
        value: Any = getattr(new, name)
        if value:
            setattr(into, name, value)
