"""``/ipfs/id/1.0.0`` and ``/ipfs/id/push/1.0.0`` (libp2p/specs identify/identify.md).

On every new connection each side asks the other who it is: the listener of an identify
stream writes one uvarint-length-prefixed ``Identify`` protobuf and closes. A push stream
carries the same message the other way, unasked, when our protocols or addresses change.
We read messages until EOF and merge them (go may split a large one in two), refusing more
than :data:`MAX_MESSAGE_SIZE` per message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio
import anyio.abc
from google.protobuf.message import DecodeError
from multiaddr import Multiaddr

from p2pstack.errors import InvalidKeyError, RemoteProtocolError
from p2pstack.framing import LengthPrefixedDecoder, encode_length_prefixed, encode_uvarint
from p2pstack.identity import PeerID, PublicKey, decode_public_key
from p2pstack.identity.record import PeerRecord

log = logging.getLogger(__name__)

PROTOCOL_ID = "/ipfs/id/1.0.0"
PUSH_PROTOCOL_ID = "/ipfs/id/push/1.0.0"
PROTOCOL_VERSION = "ipfs/0.1.0"
#: go and rust cap one identify message at a few KiB; we accept up to 64 KiB.
MAX_MESSAGE_SIZE = 64 * 1024
MAX_MESSAGES = 4


@dataclass(slots=True)
class IdentifyInfo:
    """What a peer told us about itself. Unparseable addresses are skipped, not fatal."""

    public_key: PublicKey | None = None
    listen_addrs: list[Multiaddr] = field(default_factory=list)
    observed_addr: Multiaddr | None = None
    protocols: list[str] = field(default_factory=list)
    protocol_version: str | None = None
    agent_version: str | None = None
    signed_peer_record: bytes | None = None
    #: the verified content of ``signed_peer_record`` (None if absent or invalid)
    peer_record: PeerRecord | None = None

    @property
    def peer_id(self) -> PeerID | None:
        return PeerID.from_public_key(self.public_key) if self.public_key else None


def encode_identify(
    public_key: PublicKey,
    listen_addrs: list[Multiaddr],
    protocols: list[str],
    observed_addr: Multiaddr | None,
    agent_version: str,
    protocol_version: str = PROTOCOL_VERSION,
    signed_peer_record: bytes | None = None,
) -> bytes:
    from p2pstack.pb import identify_pb2

    msg = identify_pb2.Identify(
        protocolVersion=protocol_version,
        agentVersion=agent_version,
        publicKey=public_key.encode(),
        listenAddrs=[a.to_bytes() for a in listen_addrs],
        protocols=protocols,
    )
    if observed_addr is not None:
        msg.observedAddr = observed_addr.to_bytes()
    if signed_peer_record is not None:
        msg.signedPeerRecord = signed_peer_record
    return msg.SerializeToString()


def with_observed_addr(encoded: bytes, observed_addr: Multiaddr | None) -> bytes:
    """``encoded`` (an Identify without observedAddr) plus field 4, observedAddr. Protobuf
    readers take fields in any order, so a host encodes the rest once for all connections."""
    if observed_addr is None:
        return encoded
    value: bytes = observed_addr.to_bytes()
    return encoded + b"\x22" + encode_uvarint(len(value)) + value


def _addr(data: bytes) -> Multiaddr | None:
    try:
        return Multiaddr(data)
    except Exception:  # py-multiaddr raises several types for unknown codes or bad bytes
        return None


def merge_identify(info: IdentifyInfo, body: bytes) -> None:
    """Merge one encoded ``Identify`` into ``info`` (later fields win, lists replace)."""
    from p2pstack.pb import identify_pb2

    try:
        msg = identify_pb2.Identify.FromString(body)
    except DecodeError as exc:
        raise RemoteProtocolError(f"undecodable identify message: {exc}") from exc
    if msg.HasField("publicKey"):
        try:
            info.public_key = decode_public_key(msg.publicKey)
        except InvalidKeyError as exc:
            raise RemoteProtocolError(f"bad public key in identify: {exc}") from exc
    if msg.listenAddrs:
        info.listen_addrs = [a for a in map(_addr, msg.listenAddrs) if a is not None]
    if msg.HasField("observedAddr"):
        info.observed_addr = _addr(msg.observedAddr)
    if msg.protocols:
        info.protocols = list(msg.protocols)
    if msg.HasField("protocolVersion"):
        info.protocol_version = msg.protocolVersion
    if msg.HasField("agentVersion"):
        info.agent_version = msg.agentVersion
    if msg.HasField("signedPeerRecord"):
        info.signed_peer_record = msg.signedPeerRecord
        try:
            info.peer_record = PeerRecord.open(msg.signedPeerRecord)
        except InvalidKeyError as exc:
            # go and js ignore a bad record too and fall back to listenAddrs.
            log.debug("ignoring an invalid signed peer record: %s", exc)
            info.peer_record = None


async def read_identify(stream: anyio.abc.ByteStream) -> IdentifyInfo:
    """Read identify messages until EOF and merge them; at least one must come."""
    info = await read_identify_push(stream)
    if info is None:
        raise RemoteProtocolError("identify stream ended without a message")
    return info


async def read_identify_push(stream: anyio.abc.ByteStream) -> IdentifyInfo | None:
    """Like :func:`read_identify`, but a stream that ends before its first byte gives
    ``None``: a push cut short by the pusher's shutdown is no protocol error."""
    return parse_identify(await read_identify_messages(stream))


async def read_identify_messages(stream: anyio.abc.ByteStream) -> list[bytes]:
    """The encoded messages of an identify stream, read until EOF, unparsed (see
    :func:`parse_identify`)."""
    decoder = LengthPrefixedDecoder(MAX_MESSAGE_SIZE)
    bodies: list[bytes] = []
    while True:
        try:
            data = await stream.receive()
        except anyio.EndOfStream:
            break
        decoder.feed(data)
        while (body := decoder.next_message()) is not None:
            if len(bodies) == MAX_MESSAGES:
                raise RemoteProtocolError("too many identify messages on one stream")
            bodies.append(body)
    if len(decoder):
        raise RemoteProtocolError("identify stream ended inside a message")
    return bodies


def parse_identify(bodies: list[bytes]) -> IdentifyInfo | None:
    """Merge the messages of one identify stream (``None`` when there were none)."""
    if not bodies:
        return None
    info = IdentifyInfo()
    for body in bodies:
        merge_identify(info, body)
    return info


async def write_identify(stream: anyio.abc.ByteStream, body: bytes) -> None:
    await stream.send(encode_length_prefixed(body))
    await stream.send_eof()
