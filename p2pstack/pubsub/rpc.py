"""Pubsub RPCs as plain values, and their protobuf codec (libp2p/specs pubsub/README.md).

The routers work on these frozen dataclasses, never on protobuf objects, so that an
in-process simulation can hand RPCs from router to router without encoding them. The shell
calls :func:`encode_rpc` / :func:`decode_rpc` at the stream boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from p2pstack.errors import RemoteProtocolError
from p2pstack.pb import pubsub_pb2 as pb


@dataclass(frozen=True, slots=True)
class Message:
    """A published message as it travels (``from`` is ``source`` here)."""

    topic: str
    data: bytes
    source: bytes | None = None  # the author's peer ID bytes (absent with StrictNoSign)
    seqno: bytes | None = None
    signature: bytes | None = None
    key: bytes | None = None  # the author's public key, when the peer ID does not hold it

    @property
    def size(self) -> int:
        """Roughly the encoded size, for limits and IDONTWANT thresholds."""
        return (
            len(self.data)
            + len(self.topic)
            + len(self.source or b"")
            + len(self.seqno or b"")
            + len(self.signature or b"")
            + len(self.key or b"")
        )


@dataclass(frozen=True, slots=True)
class PeerInfo:
    peer_id: bytes
    signed_peer_record: bytes | None = None


@dataclass(frozen=True, slots=True)
class Prune:
    topic: str
    peers: tuple[PeerInfo, ...] = ()
    backoff: int | None = None  # seconds; None: the receiver's default


@dataclass(slots=True)
class Control:
    ihave: list[tuple[str, list[bytes]]] = field(default_factory=list)
    iwant: list[bytes] = field(default_factory=list)
    graft: list[str] = field(default_factory=list)
    prune: list[Prune] = field(default_factory=list)
    idontwant: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ihave or self.iwant or self.graft or self.prune or self.idontwant)


@dataclass(slots=True)
class RPC:
    subscriptions: list[tuple[str, bool]] = field(default_factory=list)  # (topic, subscribe)
    messages: list[Message] = field(default_factory=list)
    control: Control = field(default_factory=Control)

    def __bool__(self) -> bool:
        return bool(self.subscriptions or self.messages or self.control)

    def merge(self, other: RPC) -> None:
        self.subscriptions += other.subscriptions
        self.messages += other.messages
        c, o = self.control, other.control
        c.ihave += o.ihave
        c.iwant += o.iwant
        c.graft += o.graft
        c.prune += o.prune
        c.idontwant += o.idontwant


def message_to_pb(msg: Message) -> pb.Message:
    out = pb.Message(topic=msg.topic, data=msg.data)
    if msg.source is not None:
        setattr(out, "from", msg.source)  # "from" is a Python keyword
    if msg.seqno is not None:
        out.seqno = msg.seqno
    if msg.signature is not None:
        out.signature = msg.signature
    if msg.key is not None:
        out.key = msg.key
    return out


def message_from_pb(m: pb.Message) -> Message:
    return Message(
        topic=m.topic,
        data=m.data,
        source=getattr(m, "from") if m.HasField("from") else None,
        seqno=m.seqno if m.HasField("seqno") else None,
        signature=m.signature if m.HasField("signature") else None,
        key=m.key if m.HasField("key") else None,
    )


def encode_rpc(rpc: RPC) -> bytes:
    out = pb.RPC()
    for topic, subscribe in rpc.subscriptions:
        out.subscriptions.add(subscribe=subscribe, topicid=topic)
    for msg in rpc.messages:
        out.publish.append(message_to_pb(msg))
    c = rpc.control
    if c:
        ctl = out.control
        for topic, ids in c.ihave:
            ctl.ihave.add(topicID=topic, messageIDs=ids)
        if c.iwant:
            ctl.iwant.add(messageIDs=c.iwant)
        for topic in c.graft:
            ctl.graft.add(topicID=topic)
        for prune in c.prune:
            p = ctl.prune.add(topicID=prune.topic)
            for info in prune.peers:
                pi = p.peers.add(peerID=info.peer_id)
                if info.signed_peer_record is not None:
                    pi.signedPeerRecord = info.signed_peer_record
            if prune.backoff is not None:
                p.backoff = prune.backoff
        if c.idontwant:
            ctl.idontwant.add(messageIDs=c.idontwant)
    return out.SerializeToString()


def decode_rpc(data: bytes) -> RPC:
    """Raises ``RemoteProtocolError`` for bytes that are not an RPC."""
    raw = pb.RPC()
    try:
        raw.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"malformed pubsub RPC: {exc}") from None
    rpc = RPC(
        subscriptions=[(s.topicid, s.subscribe) for s in raw.subscriptions],
        messages=[message_from_pb(m) for m in raw.publish],
    )
    if raw.HasField("control"):
        ctl, c = raw.control, rpc.control
        c.ihave = [(h.topicID, list(h.messageIDs)) for h in ctl.ihave]
        c.iwant = [i for w in ctl.iwant for i in w.messageIDs]
        c.graft = [g.topicID for g in ctl.graft]
        c.prune = [
            Prune(
                p.topicID,
                tuple(
                    PeerInfo(
                        i.peerID, i.signedPeerRecord if i.HasField("signedPeerRecord") else None
                    )
                    for i in p.peers
                ),
                p.backoff if p.HasField("backoff") else None,
            )
            for p in ctl.prune
        ]
        c.idontwant = [i for d in ctl.idontwant for i in d.messageIDs]
    return rpc
