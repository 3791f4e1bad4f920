"""The pubsub shell: drives a router core (gossipsub or floodsub) on a :class:`Host`.

::

    async with PubSub(host, GossipSub(GossipSubParams())) as ps:
        sub = await ps.subscribe("chat")
        await ps.publish("chat", b"hello")
        async for msg in sub:
            print(msg.data)

Per peer there is one outbound stream (ours, opened when a connection appears, proposing
the router's protocols in order: the one chosen is the peer's version) and one inbound
stream (theirs). RPCs are length-prefixed protobufs of at most ``max_rpc_size`` bytes.

Bounds and their semantics:

- each peer's outbound queue holds ``outbound_queue_size`` RPCs; when full, the RPC is
  dropped and counted in ``stats["rpc_dropped_queue_full"]`` (a slow peer never grows our
  memory, and gossip repairs the loss);
- each subscription buffers ``subscription_buffer`` messages; when its reader falls
  behind, new messages for it are dropped and counted (``Subscription.dropped``);
- at most ``max_concurrent_validations`` async validations run at once; beyond that a
  message is ignored (``validation-throttled``, no penalty for its sender).

``direct_peers`` (full multiaddrs) are gossipsub v1.1 direct peers: they get every message
of our topics, are never in a mesh, and we keep connecting to them (1 s after start, then
every ``direct_connect_ticks`` heartbeats while disconnected).

Lifetime: leaving ``async with`` stops the heartbeat, closes every pubsub stream and ends
every subscription's iteration. ``Subscription.aclose()`` unsubscribes (when it was the last
subscription to the topic). Cancellation of a ``publish`` cannot leave half a message
queued: queuing is synchronous.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from multiaddr import Multiaddr

from p2pstack.attributes import P2PAttribute
from p2pstack.errors import ConfigError, P2PError, PublishError
from p2pstack.framing.length_prefixed import LengthPrefixedDecoder, encode_length_prefixed
from p2pstack.host import Host
from p2pstack.host.host import split_peer_addr
from p2pstack.identity import PeerID
from p2pstack.identity.record import PeerRecord
from p2pstack.network import ConnectionClosed, ConnectionOpened
from p2pstack.pubsub.gossipsub.router import GossipSub
from p2pstack.pubsub.router import (
    ConnectTo,
    Deliver,
    Event,
    RouterBase,
    Validate,
    ValidationResult,
)
from p2pstack.pubsub.rpc import RPC, Message, decode_rpc, encode_rpc

log = logging.getLogger(__name__)

DIRECT_CONNECT_INITIAL_DELAY = 1.0

#: the most bytes of queued RPCs the writer joins into one send
WRITE_BATCH = 256 * 1024

Validator = Callable[[Message], "ValidationResult | bool | Awaitable[ValidationResult | bool]"]


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message delivered to a subscription."""

    topic: str
    data: bytes
    msg_id: bytes
    source: PeerID | None  # the author (None under StrictNoSign)
    received_from: PeerID | None  # the peer that sent it to us (None: we published it)
    seqno: int | None


class Subscription:
    """``async for msg in sub`` yields :class:`ReceivedMessage` until closed."""

    def __init__(self, ps: PubSub, topic: str, size: int) -> None:
        self.topic = topic
        self._ps = ps
        self._send, self._receive = anyio.create_memory_object_stream[ReceivedMessage](size)
        self.dropped = 0

    def _offer(self, msg: ReceivedMessage) -> None:
        try:
            self._send.send_nowait(msg)
        except anyio.WouldBlock:
            self.dropped += 1
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ReceivedMessage:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def receive(self) -> ReceivedMessage:
        """The next message; ``EndOfStream`` once the subscription or the service closed."""
        return await self._receive.receive()

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()
        self._ps._drop_subscription(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _PeerLink:
    def __init__(self, size: int) -> None:
        # encoded RPCs, and flush markers that the writer sets once it got to them
        self.send, self.receive = anyio.create_memory_object_stream[bytes | anyio.Event](size)
        self.ready = anyio.Event()
        self.scope = anyio.CancelScope()
        self.closers: list[anyio.CancelScope] = []  # flush() waits to end with the link


class PubSub:
    def __init__(
        self,
        host: Host,
        router: RouterBase | None = None,
        *,
        max_rpc_size: int = (1 << 20) + 64 * 1024,
        outbound_queue_size: int = 1024,
        subscription_buffer: int = 256,
        max_concurrent_validations: int = 1024,
        event_buffer: int = 1024,
        direct_peers: Sequence[Multiaddr | str] = (),
    ) -> None:
        self.host = host
        self.router: RouterBase = router or GossipSub()
        if not self.router.is_bound:
            self.router.bind(host.key_pair)
        elif self.router.peer_id != host.peer_id:
            raise P2PError("the router must use the host's key pair")
        self.max_rpc_size = max_rpc_size
        self.outbound_queue_size = outbound_queue_size
        self.subscription_buffer = subscription_buffer
        self._validation_slots = anyio.CapacityLimiter(max_concurrent_validations)
        self._validators: dict[str, list[Validator]] = {}
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._links: dict[PeerID, _PeerLink] = {}
        self._event_send, self._event_receive = anyio.create_memory_object_stream[Event](
            event_buffer
        )
        self._observers: list[MemoryObjectSendStream[Event]] = []
        self._direct: list[tuple[PeerID, Multiaddr]] = []
        for target in direct_peers:
            peer, addr = split_peer_addr(target)
            if peer is None:
                raise ConfigError(f"direct peer address {target} lacks /p2p/<peer id>")
            if not isinstance(self.router, GossipSub):
                raise ConfigError("direct peers need a gossipsub router")
            self.router.add_direct_peer(peer)
            self._direct.append((peer, addr))
        self._tg: anyio.abc.TaskGroup | None = None
        self._exit: AsyncExitStack | None = None
        self.stats: dict[str, int] = {}

    # ------------------------------------------------------------------ lifetime

    async def __aenter__(self) -> PubSub:
        if self.router.next_seqno is None:
            self.router.next_seqno = time.time_ns()
        async with AsyncExitStack() as stack:
            # entered before the task group, so it closes after the watcher is cancelled
            events = await stack.enter_async_context(self.host.events())
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            self._tg = tg
            for protocol in self.router.protocols:
                # one inbound stream per peer, plus one while a replacement takes over
                self.host.set_stream_handler(protocol, self._serve_inbound, max_inbound_per_peer=2)
            stack.callback(self._remove_handlers)
            tg.start_soon(self._watch_connections, events)
            for conn in self.host.connections():
                self._peer_connected(conn.remote_peer, conn.direction == "outbound")
            tg.start_soon(self._heartbeat)
            if self._direct:
                tg.start_soon(self._keep_direct_peers)
            self._exit = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._exit is not None
        exit_stack, self._exit = self._exit, None
        for subs in self._subscriptions.values():
            for sub in subs:
                sub._send.close()
        for observer in self._observers:
            observer.close()
        try:
            return await exit_stack.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None

    def _remove_handlers(self) -> None:
        for protocol in self.router.protocols:
            self.host.remove_stream_handler(protocol)

    # ------------------------------------------------------------------ API

    async def subscribe(self, topic: str) -> Subscription:
        sub = Subscription(self, topic, self.subscription_buffer)
        first = topic not in self._subscriptions
        self._subscriptions.setdefault(topic, []).append(sub)
        if first:
            self.router.join(topic, anyio.current_time())
            self._pump()
        return sub

    def _drop_subscription(self, sub: Subscription) -> None:
        subs = self._subscriptions.get(sub.topic)
        if subs is None or sub not in subs:
            return
        subs.remove(sub)
        if not subs:
            del self._subscriptions[sub.topic]
            self.router.leave(sub.topic, anyio.current_time())
            self._pump()

    async def publish(self, topic: str, data: bytes) -> bytes:
        """Publish ``data``; returns the message id. Raises ``PublishError`` when the
        message is over the router's size limit."""
        if len(data) > self.router.max_message_size:
            raise PublishError(f"message of {len(data)} bytes is over the size limit")
        msg_id, _ = self.router.publish(topic, data, anyio.current_time())
        self._pump()
        return msg_id

    async def flush(self) -> None:
        """Wait until every RPC queued so far has been written to its peer's stream (or
        that peer is gone)."""
        markers = []
        for link in list(self._links.values()):
            marker = anyio.Event()
            try:
                await link.send.send(marker)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                continue
            markers.append((link, marker))
        for link, marker in markers:
            with anyio.CancelScope() as scope:
                link.closers.append(scope)
                await marker.wait()

    async def wait_for_peers(self, topic: str, count: int = 1) -> None:
        """Wait until at least ``count`` peers are subscribed to ``topic``."""
        async with self.events() as events:
            if len(self.router.peers_in(topic)) >= count:
                return
            async for _ in events:
                if len(self.router.peers_in(topic)) >= count:
                    return

    def add_validator(self, topic: str, validator: Validator) -> None:
        """``validator(message)`` returns a ValidationResult or a bool (True: accept,
        False: reject), or an awaitable of one. All of a topic's validators must accept."""
        self._validators.setdefault(topic, []).append(validator)

    def remove_validators(self, topic: str) -> None:
        self._validators.pop(topic, None)

    def peers(self, topic: str | None = None) -> list[PeerID]:
        if topic is None:
            return list(self.router.peers)
        return sorted(self.router.peers_in(topic), key=str)

    def mesh_peers(self, topic: str) -> list[PeerID]:
        mesh = getattr(self.router, "mesh", None)
        return sorted(mesh.get(topic, ()), key=str) if mesh is not None else []

    @asynccontextmanager
    async def events(self) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
        """Router events (joins, leaves, grafts, prunes, rejections) as they happen; a
        reader that falls behind loses events (counted in ``stats``)."""
        send, receive = anyio.create_memory_object_stream[Event](1024)
        self._observers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            send.close()
            if send in self._observers:
                self._observers.remove(send)

    # ------------------------------------------------------------------ driving the core

    def _pump(self) -> None:
        """Move what the router produced: events to their places, RPCs to peer queues.
        Handling an event (a synchronous validation) makes more; loop until none is left."""
        while True:
            events = self.router.events()
            for event in events:
                self._dispatch(event)
            rpcs = self.router.rpcs_to_send()
            self._queue_rpcs(rpcs)
            if not events and not rpcs:
                return

    def _queue_rpcs(self, rpcs: list[tuple[PeerID, RPC]]) -> None:
        for peer, rpc in rpcs:
            link = self._links.get(peer)
            if link is None:
                continue
            try:
                link.send.send_nowait(encode_length_prefixed(encode_rpc(rpc)))
            except anyio.WouldBlock:
                self._count("rpc_dropped_queue_full")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Validate):
            self._validate(event)
        elif isinstance(event, Deliver):
            self._deliver(event)
        elif isinstance(event, ConnectTo):
            self._connect_px(event)
        for observer in self._observers:
            try:
                observer.send_nowait(event)
            except anyio.WouldBlock:
                self._count("events_dropped")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _deliver(self, event: Deliver) -> None:
        subs = self._subscriptions.get(event.message.topic)
        if not subs:
            return
        msg = event.message
        source: PeerID | None = None
        if msg.source is not None:
            try:
                source = PeerID.from_bytes(msg.source)
            except ValueError:
                source = None
        received = ReceivedMessage(
            topic=msg.topic,
            data=msg.data,
            msg_id=event.msg_id,
            source=source,
            received_from=event.received_from,
            seqno=int.from_bytes(msg.seqno, "big") if msg.seqno else None,
        )
        for sub in subs:
            sub._offer(received)

    def _validate(self, event: Validate) -> None:
        validators = self._validators.get(event.message.topic)
        if not validators:
            self.router.report_validation(event.msg_id, ValidationResult.ACCEPT, _now())
            return
        results: list[ValidationResult] = []
        pending: list[Awaitable[ValidationResult | bool]] = []
        for validator in validators:
            try:
                outcome = validator(event.message)
            except Exception as exc:
                log.warning("validator for %s raised %r; rejecting", event.message.topic, exc)
                results.append(ValidationResult.REJECT)
                continue
            if inspect.isawaitable(outcome):
                pending.append(outcome)
            else:
                results.append(_as_result(outcome))
        verdict = _combine(results)
        if verdict is not ValidationResult.ACCEPT or not pending:
            for awaitable in pending:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
            self.router.report_validation(event.msg_id, verdict, _now())
            return
        if self._tg is None or self._validation_slots.available_tokens < 1:
            for awaitable in pending:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
            self._count("validation_throttled")
            self.router.report_validation(event.msg_id, ValidationResult.IGNORE, _now())
            return
        self._tg.start_soon(self._validate_async, event.msg_id, event.message.topic, pending)

    async def _validate_async(
        self, msg_id: bytes, topic: str, pending: list[Awaitable[ValidationResult | bool]]
    ) -> None:
        async with self._validation_slots:
            results = []
            for awaitable in pending:
                try:
                    results.append(_as_result(await awaitable))
                except Exception as exc:
                    log.warning("validator for %s raised %r; rejecting", topic, exc)
                    results.append(ValidationResult.REJECT)
        self.router.report_validation(msg_id, _combine(results), _now())
        self._pump()

    def _connect_px(self, event: ConnectTo) -> None:
        if self._tg is None:
            return
        try:
            peer = PeerID.from_bytes(event.info.peer_id)
        except ValueError:
            return
        if peer == self.host.peer_id or self.host.connections(peer):
            return
        addrs = []
        if event.info.signed_peer_record is not None:
            try:
                record = PeerRecord.open(event.info.signed_peer_record)
                if record.peer_id == peer:
                    addrs = list(record.addrs)
            except Exception as exc:
                log.debug("PX record for %s unusable: %r", peer, exc)
        self._tg.start_soon(self._dial_px, peer, addrs)

    async def _dial_px(self, peer: PeerID, addrs: list[Any]) -> None:
        try:
            with anyio.fail_after(10):
                if addrs:
                    now = anyio.current_time()
                    self.host.peerstore.add_addrs(peer, addrs, 600.0, now)
                await self.host.connect(peer)
        except Exception as exc:
            log.debug("PX dial to %s failed: %r", peer, exc)

    # ------------------------------------------------------------------ heartbeat

    async def _heartbeat(self) -> None:
        params = getattr(self.router, "params", None)
        interval = float(getattr(params, "heartbeat_interval", 1.0))
        initial = float(getattr(params, "heartbeat_initial_delay", interval))
        deadline = anyio.current_time() + initial
        while True:
            await anyio.sleep_until(deadline)
            self.router.heartbeat(anyio.current_time())
            self._pump()
            deadline += interval
            now = anyio.current_time()
            if deadline < now:  # we fell behind (a blocked loop): do not burst to catch up
                deadline = now + interval

    async def _keep_direct_peers(self) -> None:
        """Connect to the direct peers 1 s after start, then again every
        ``direct_connect_ticks`` heartbeats to any that is not connected (go's behaviour)."""
        params = getattr(self.router, "params", None)
        ticks = int(getattr(params, "direct_connect_ticks", 300))
        interval = float(getattr(params, "heartbeat_interval", 1.0))
        await anyio.sleep(DIRECT_CONNECT_INITIAL_DELAY)
        while True:
            for peer, addr in self._direct:
                if not self.host.connections(peer):
                    try:
                        with anyio.fail_after(10):
                            await self.host.connect(f"{addr}/p2p/{peer}")
                    except Exception as exc:
                        log.debug("direct peer %s: %r", peer, exc)
            await anyio.sleep(ticks * interval)

    # ------------------------------------------------------------------ peers and streams

    async def _watch_connections(
        self, events: MemoryObjectReceiveStream[ConnectionOpened | ConnectionClosed]
    ) -> None:
        async for event in events:
            peer = event.connection.remote_peer
            if isinstance(event, ConnectionOpened):
                self._peer_connected(peer, event.connection.direction == "outbound")
            elif not self.host.connections(peer):
                self._peer_gone(peer)

    def _peer_connected(self, peer: PeerID, outbound: bool) -> None:
        if peer in self._links or self._tg is None:
            return
        link = self._links[peer] = _PeerLink(self.outbound_queue_size)
        self._tg.start_soon(self._run_outbound, peer, link, outbound)

    def _peer_gone(self, peer: PeerID) -> None:
        link = self._links.pop(peer, None)
        if link is None:
            return
        link.scope.cancel()
        link.send.close()
        link.ready.set()
        for scope in link.closers:
            scope.cancel()
        self.router.remove_peer(peer, _now())
        self._pump()

    async def _run_outbound(self, peer: PeerID, link: _PeerLink, outbound: bool) -> None:
        with link.scope:
            try:
                stream = await self.host.new_stream(peer, list(self.router.protocols))
            except Exception as exc:
                # ProtocolNotSupported included: the peer may start pubsub later; its first
                # inbound pubsub stream then makes us try again (_serve_inbound).
                log.debug("pubsub stream to %s failed: %r", peer, exc)
                link.ready.set()
                if self._links.get(peer) is link:
                    del self._links[peer]
                return
            protocol = stream.extra(P2PAttribute.protocol)
            self.router.add_peer(peer, protocol, outbound, _now())
            conn = self.host.connections(peer)
            if conn and conn[0].remote_addr is not None and isinstance(self.router, GossipSub):
                ip = _ip_of(str(conn[0].remote_addr))
                if ip is not None:
                    self.router.set_peer_ips(peer, [ip])
            link.ready.set()
            self._pump()
            async with stream:
                try:
                    async for first in link.receive:
                        await self._write_batch(stream, link, first)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                    log.debug("pubsub stream to %s broke: %r", peer, exc)
                finally:
                    for scope in link.closers:  # nothing more gets written: end flush()es
                        scope.cancel()
        if self._links.get(peer) is link and not self.host.connections(peer):
            self._peer_gone(peer)

    async def _write_batch(
        self, stream: anyio.abc.ByteStream, link: _PeerLink, first: bytes | anyio.Event
    ) -> None:
        """Write ``first`` and whatever else is queued already as one send (up to
        WRITE_BATCH bytes): a backlog costs one write, not one per RPC. Flush markers are
        set once everything queued before them has been written."""
        batch: list[bytes] = []
        size = 0
        item: bytes | anyio.Event | None = first
        while item is not None:
            if isinstance(item, anyio.Event):
                if batch:
                    await stream.send(b"".join(batch))
                    batch, size = [], 0
                item.set()
            else:
                batch.append(item)
                size += len(item)
                if size >= WRITE_BATCH:
                    break
            try:
                item = link.receive.receive_nowait()
            except anyio.WouldBlock:
                item = None
        if batch:
            await stream.send(b"".join(batch) if len(batch) > 1 else batch[0])

    async def _serve_inbound(self, stream: anyio.abc.ByteStream) -> None:
        peer: PeerID = stream.extra(P2PAttribute.remote_peer)
        link = self._links.get(peer)
        if link is None:
            self._peer_connected(peer, False)
            link = self._links.get(peer)
        decoder = LengthPrefixedDecoder(self.max_rpc_size)
        while True:
            # Read before waiting for our own stream: the first receive() releases our
            # multistream answer, which the peer may need before it can answer ours.
            try:
                data = await stream.receive()
            except anyio.EndOfStream:
                return
            if link is not None and not link.ready.is_set():
                await link.ready.wait()
            decoder.feed(data)
            while (frame := decoder.next_message()) is not None:
                rpc = decode_rpc(frame)
                self.router.handle_rpc(peer, rpc, _now())
                self._pump()
                # One read can hold hundreds of RPCs: let subscribers (and writers) run
                # between them, or a burst would overflow subscription buffers that a
                # reader who keeps up would have emptied.
                await anyio.lowlevel.checkpoint()


def _now() -> float:
    return anyio.current_time()


def _as_result(value: ValidationResult | bool) -> ValidationResult:
    if isinstance(value, ValidationResult):
        return value
    return ValidationResult.ACCEPT if value else ValidationResult.REJECT


def _combine(results: list[ValidationResult]) -> ValidationResult:
    if ValidationResult.REJECT in results:
        return ValidationResult.REJECT
    if ValidationResult.IGNORE in results:
        return ValidationResult.IGNORE
    return ValidationResult.ACCEPT


def _ip_of(addr: str) -> str | None:
    parts = addr.split("/")
    for i, part in enumerate(parts[:-1]):
        if part in ("ip4", "ip6"):
            return parts[i + 1]
    return None
