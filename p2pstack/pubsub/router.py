"""What every pubsub router core shares: peers and their topics, our subscriptions, the seen
cache, the validation pipeline, local delivery, the per-peer outbox and events.

A router is sans-IO. The shell (or a simulation) calls :meth:`add_peer`,
:meth:`remove_peer`, :meth:`handle_rpc`, :meth:`publish`, :meth:`join`, :meth:`leave`,
:meth:`report_validation` and :meth:`heartbeat`, each with ``now`` in seconds; after each
call it takes :meth:`rpcs_to_send` (one merged RPC per peer) and :meth:`events`.

A message we have not seen before is marked seen at once and handed out as a
:class:`Validate` event; nothing is forwarded or delivered until the shell answers with
:meth:`report_validation` (accept, reject or ignore). Copies arriving meanwhile are
duplicates. Accepted messages become :class:`Deliver` events when we are subscribed.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from p2pstack.errors import LocalProtocolError
from p2pstack.identity import KeyPair, PeerID
from p2pstack.pubsub.message import (
    MessageIdFn,
    SignaturePolicy,
    author_message,
    check_message,
    default_message_id,
)
from p2pstack.pubsub.rpc import RPC, Message, PeerInfo
from p2pstack.pubsub.timecache import TimeCache

FLOODSUB = "/floodsub/1.0.0"
MESHSUB_V10 = "/meshsub/1.0.0"
MESHSUB_V11 = "/meshsub/1.1.0"
MESHSUB_V12 = "/meshsub/1.2.0"
GOSSIPSUB_PROTOCOLS = (MESHSUB_V12, MESHSUB_V11, MESHSUB_V10)


class ValidationResult(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Validate:
    """Run the topic's validators on ``message``, then call ``report_validation``."""

    msg_id: bytes
    message: Message
    received_from: PeerID


@dataclass(frozen=True, slots=True)
class Deliver:
    """A valid message for a topic we subscribe to (``received_from`` is None: our own)."""

    msg_id: bytes
    message: Message
    received_from: PeerID | None


@dataclass(frozen=True, slots=True)
class PeerJoined:
    peer: PeerID
    topic: str


@dataclass(frozen=True, slots=True)
class PeerLeft:
    peer: PeerID
    topic: str


@dataclass(frozen=True, slots=True)
class Grafted:
    """``peer`` entered our mesh for ``topic`` (we grafted it, or accepted its GRAFT)."""

    peer: PeerID
    topic: str


@dataclass(frozen=True, slots=True)
class Pruned:
    peer: PeerID
    topic: str


@dataclass(frozen=True, slots=True)
class ConnectTo:
    """Peer exchange: the router would like a connection to ``info`` (shell decides)."""

    info: PeerInfo


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message was dropped; ``reason`` is a :class:`~.gossipsub.score.RejectReason`."""

    msg_id: bytes | None
    peer: PeerID
    reason: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A copy of a message we had already seen arrived from ``peer`` (for tracing)."""

    msg_id: bytes
    peer: PeerID
    topic: str


Event = (
    Validate | Deliver | PeerJoined | PeerLeft | Grafted | Pruned | ConnectTo | Rejected | Duplicate
)


@dataclass(slots=True)
class PeerState:
    protocol: str
    outbound: bool
    topics: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Pending:
    message: Message
    received_from: PeerID


class RouterBase:
    """Shared machinery; subclasses decide where messages go and what control means."""

    #: protocol ids this router speaks, most preferred first
    protocols: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        key_pair: KeyPair | None = None,
        signature_policy: SignaturePolicy = SignaturePolicy.STRICT_SIGN,
        message_id: MessageIdFn = default_message_id,
        seen_ttl: float = 120.0,
        max_message_size: int = 1 << 20,
        max_topics_per_peer: int = 10_000,
        max_messages_per_rpc: int = 1000,
        first_seqno: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._key_pair: KeyPair | None = None
        self._self_bytes = b""
        self._self_peer: PeerID | None = None
        if key_pair is not None:
            self.bind(key_pair)
        self.signature_policy = signature_policy
        self.message_id = message_id
        self.max_message_size = max_message_size
        self.max_topics_per_peer = max_topics_per_peer
        self.max_messages_per_rpc = max_messages_per_rpc
        self.rng = rng or random.Random()
        self.peers: dict[PeerID, PeerState] = {}
        self.topic_peers: dict[str, set[PeerID]] = {}
        self.subscriptions: set[str] = set()
        self.seen = TimeCache(seen_ttl)
        #: the next seqno; None until set (the service starts it at the wall clock in
        #: nanoseconds, as go does, so a restarted node's messages get new ids)
        self.next_seqno: int | None = first_seqno
        self._pending: dict[bytes, _Pending] = {}
        self._outbox: dict[PeerID, RPC] = {}
        self._events: list[Event] = []
        #: counters for observability: what was dropped and why
        self.stats: dict[str, int] = {}

    # ------------------------------------------------------------------ identity

    def bind(self, key_pair: KeyPair) -> None:
        """Give the router its node's key (``PubSub`` does this with the host's key when
        the router was made without one)."""
        if self._key_pair is not None and self._key_pair.peer_id != key_pair.peer_id:
            raise LocalProtocolError("the router is already bound to another key")
        self._key_pair = key_pair
        self._self_peer = key_pair.peer_id
        self._self_bytes = self._self_peer.to_bytes()

    @property
    def key_pair(self) -> KeyPair:
        if self._key_pair is None:
            raise LocalProtocolError("the router has no key yet (bind() it, or use PubSub)")
        return self._key_pair

    @property
    def peer_id(self) -> PeerID:
        return self.key_pair.peer_id

    @property
    def is_bound(self) -> bool:
        return self._key_pair is not None

    # ------------------------------------------------------------------ shell side

    def rpcs_to_send(self) -> list[tuple[PeerID, RPC]]:
        """One RPC per peer holding everything queued for it since the last call."""
        out = [(peer, rpc) for peer, rpc in self._outbox.items() if rpc]
        self._outbox = {}
        return out

    def events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def _rpc(self, peer: PeerID) -> RPC:
        rpc = self._outbox.get(peer)
        if rpc is None:
            rpc = self._outbox[peer] = RPC()
        return rpc

    def _count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    # ------------------------------------------------------------------ peers

    def add_peer(self, peer: PeerID, protocol: str, outbound: bool, now: float) -> None:
        """A pubsub stream to ``peer`` speaking ``protocol`` is up; we greet it with our
        subscriptions."""
        if peer in self.peers:
            self.peers[peer].protocol = protocol
            return
        self.peers[peer] = PeerState(protocol, outbound)
        if self.subscriptions:
            self._rpc(peer).subscriptions += [(t, True) for t in sorted(self.subscriptions)]

    def remove_peer(self, peer: PeerID, now: float) -> None:
        state = self.peers.pop(peer, None)
        if state is None:
            return
        for topic in state.topics:
            members = self.topic_peers.get(topic)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self.topic_peers[topic]
            self._events.append(PeerLeft(peer, topic))
        self._outbox.pop(peer, None)

    def peers_in(self, topic: str) -> set[PeerID]:
        return set(self.topic_peers.get(topic, ()))

    # ------------------------------------------------------------------ our subscriptions

    def join(self, topic: str, now: float) -> None:
        if topic in self.subscriptions:
            return
        self.subscriptions.add(topic)
        for peer in self.peers:
            self._rpc(peer).subscriptions.append((topic, True))

    def leave(self, topic: str, now: float) -> None:
        if topic not in self.subscriptions:
            return
        self.subscriptions.discard(topic)
        for peer in self.peers:
            self._rpc(peer).subscriptions.append((topic, False))

    # ------------------------------------------------------------------ incoming

    def handle_rpc(self, peer: PeerID, rpc: RPC, now: float) -> None:
        state = self.peers.get(peer)
        if state is None:
            return
        if not self._accept_from(peer, now):
            self._count("rpc_graylisted")
            return
        for topic, subscribe in rpc.subscriptions:
            self._handle_subscription(peer, state, topic, subscribe, now)
        messages = rpc.messages
        if len(messages) > self.max_messages_per_rpc:
            self._count("messages_over_rpc_limit", len(messages) - self.max_messages_per_rpc)
            messages = messages[: self.max_messages_per_rpc]
        for msg in messages:
            self._handle_message(peer, msg, now)
        if rpc.control:
            self._handle_control(peer, state, rpc, now)

    def _accept_from(self, peer: PeerID, now: float) -> bool:
        return True

    def _handle_subscription(
        self, peer: PeerID, state: PeerState, topic: str, subscribe: bool, now: float
    ) -> None:
        if subscribe:
            if topic in state.topics:
                return
            if len(state.topics) >= self.max_topics_per_peer:
                self._count("subscriptions_over_limit")
                return
            state.topics.add(topic)
            self.topic_peers.setdefault(topic, set()).add(peer)
            self._events.append(PeerJoined(peer, topic))
        else:
            if topic not in state.topics:
                return
            state.topics.discard(topic)
            members = self.topic_peers.get(topic)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self.topic_peers[topic]
            self._peer_unsubscribed(peer, topic, now)
            self._events.append(PeerLeft(peer, topic))

    def _peer_unsubscribed(self, peer: PeerID, topic: str, now: float) -> None:
        pass

    def _handle_control(self, peer: PeerID, state: PeerState, rpc: RPC, now: float) -> None:
        pass

    def _reject(
        self, peer: PeerID, msg_id: bytes | None, topic: str, reason: str, now: float
    ) -> None:
        self._count(f"rejected_{reason}")
        self._events.append(Rejected(msg_id, peer, reason))

    def _handle_message(self, peer: PeerID, msg: Message, now: float) -> None:
        if msg.topic not in self.subscriptions:
            self._count("message_unsubscribed_topic")
            return
        if msg.size > self.max_message_size:
            self._reject(peer, None, msg.topic, "invalid", now)
            return
        msg_id = self.message_id(msg)
        if msg_id in self.seen:
            self._duplicate(peer, msg_id, msg, now)
            return
        if msg.source == self._self_bytes:
            self._reject(peer, msg_id, msg.topic, "self-origin", now)
            return
        why = check_message(msg, self.signature_policy)
        if why is not None:
            self._reject(peer, msg_id, msg.topic, str(why), now)
            return
        self.seen.add(msg_id, now)
        self._first_seen(peer, msg_id, msg, now)
        self._pending[msg_id] = _Pending(msg, peer)
        self._events.append(Validate(msg_id, msg, peer))

    def _duplicate(self, peer: PeerID, msg_id: bytes, msg: Message, now: float) -> None:
        self._count("duplicates")
        self._events.append(Duplicate(msg_id, peer, msg.topic))

    def _first_seen(self, peer: PeerID, msg_id: bytes, msg: Message, now: float) -> None:
        pass

    def report_validation(self, msg_id: bytes, result: ValidationResult, now: float) -> None:
        """The verdict on a :class:`Validate` event; unknown ids are ignored."""
        pending = self._pending.pop(msg_id, None)
        if pending is None:
            return
        msg, peer = pending.message, pending.received_from
        if result is ValidationResult.ACCEPT:
            self._accepted(peer, msg_id, msg, now)
            if msg.topic in self.subscriptions:
                self._events.append(Deliver(msg_id, msg, peer))
            self._forward(msg_id, msg, peer, now)
        elif result is ValidationResult.REJECT:
            self._reject(peer, msg_id, msg.topic, "invalid", now)
        else:
            self._reject(peer, msg_id, msg.topic, "ignored", now)

    def _accepted(self, peer: PeerID, msg_id: bytes, msg: Message, now: float) -> None:
        pass

    def _forward(self, msg_id: bytes, msg: Message, sender: PeerID | None, now: float) -> None:
        raise NotImplementedError

    @property
    def validating(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ publishing

    def publish(self, topic: str, data: bytes, now: float) -> tuple[bytes, int]:
        """Author, sign (per policy) and send a message; it is delivered locally too when we
        subscribe to ``topic``. Returns (message id, number of peers it was sent to)."""
        seqno = self.next_seqno if self.next_seqno is not None else 1
        msg = author_message(self.key_pair, self.signature_policy, topic, data, seqno)
        self.next_seqno = seqno + 1
        msg_id = self.message_id(msg)
        self.seen.add(msg_id, now)
        self._accepted(self.peer_id, msg_id, msg, now)
        if topic in self.subscriptions:
            self._events.append(Deliver(msg_id, msg, None))
        return msg_id, self._publish_to(msg_id, msg, now)

    def _publish_to(self, msg_id: bytes, msg: Message, now: float) -> int:
        raise NotImplementedError

    def _send_message(self, peer: PeerID, msg: Message) -> None:
        self._rpc(peer).messages.append(msg)

    # ------------------------------------------------------------------ time

    def heartbeat(self, now: float) -> None:
        self.seen.expire(now)


class FloodSub(RouterBase):
    """``/floodsub/1.0.0``: every message goes to every peer subscribed to its topic."""

    protocols: tuple[str, ...] = (FLOODSUB,)

    def _forward(self, msg_id: bytes, msg: Message, sender: PeerID | None, now: float) -> None:
        for peer in self.topic_peers.get(msg.topic, ()):
            if peer != sender and peer.to_bytes() != msg.source:
                self._send_message(peer, msg)

    def _publish_to(self, msg_id: bytes, msg: Message, now: float) -> int:
        peers = self.topic_peers.get(msg.topic, set())
        for peer in peers:
            self._send_message(peer, msg)
        return len(peers)


PeerRecordFn = Callable[[PeerID], bytes | None]
