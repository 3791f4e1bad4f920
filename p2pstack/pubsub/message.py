"""Authoring, signing, verifying and naming pubsub messages (pubsub/README.md).

- ``StrictSign`` (the default): every message carries ``from``, ``seqno`` and a signature
  by the author over ``"libp2p-pubsub:" + the Message protobuf without signature and key``;
  ``key`` carries the author's public key only when the peer ID does not embed it (RSA).
  Unsigned or badly signed messages are rejected.
- ``StrictNoSign``: messages carry none of ``from``, ``seqno``, ``signature``, ``key``; a
  message with any of them is rejected. Use a content-based message ID with it.

The default message ID is ``from + seqno`` (go, rust and js agree; js-libp2p's gossipsub
default differs only under StrictNoSign, where it hashes the data).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable

from p2pstack.errors import InvalidKeyError
from p2pstack.identity import KeyPair, PeerID, decode_public_key
from p2pstack.pubsub.gossipsub.score import RejectReason
from p2pstack.pubsub.rpc import Message, message_to_pb

SIGN_PREFIX = b"libp2p-pubsub:"

MessageIdFn = Callable[[Message], bytes]


class SignaturePolicy(enum.Enum):
    STRICT_SIGN = "StrictSign"
    STRICT_NO_SIGN = "StrictNoSign"


def default_message_id(msg: Message) -> bytes:
    """``from`` followed by ``seqno`` (both as sent)."""
    return (msg.source or b"") + (msg.seqno or b"")


def js_message_id(msg: Message) -> bytes:
    """js-libp2p gossipsub's default under StrictSign: the author's public key protobuf
    followed by ``seqno`` (not ``from + seqno``). Use it on a topic shared with js nodes
    that keep js's default. For an inlined key it is ``from`` without its 2-byte identity
    multihash prefix; otherwise (RSA) the message's ``key``."""
    source, seqno = msg.source or b"", msg.seqno or b""
    if len(source) >= 2 and source[0] == 0x00:  # identity multihash: the key is inlined
        return source[2:] + seqno
    return (msg.key or b"") + seqno


def content_message_id(msg: Message) -> bytes:
    """SHA-256 of the data: for StrictNoSign topics, where there is no from/seqno."""
    return hashlib.sha256(msg.data).digest()


def _signing_bytes(msg: Message) -> bytes:
    unsigned = Message(topic=msg.topic, data=msg.data, source=msg.source, seqno=msg.seqno)
    return SIGN_PREFIX + message_to_pb(unsigned).SerializeToString()


def author_message(
    key_pair: KeyPair, policy: SignaturePolicy, topic: str, data: bytes, seqno: int
) -> Message:
    """A message we publish: signed under StrictSign, anonymous under StrictNoSign."""
    if policy is SignaturePolicy.STRICT_NO_SIGN:
        return Message(topic=topic, data=data)
    source = key_pair.peer_id.to_bytes()
    unsigned = Message(topic=topic, data=data, source=source, seqno=seqno.to_bytes(8, "big"))
    signature = key_pair.private.sign(_signing_bytes(unsigned))
    key = None if key_pair.peer_id.extract_public_key() is not None else key_pair.public.encode()
    return Message(
        topic=topic,
        data=data,
        source=unsigned.source,
        seqno=unsigned.seqno,
        signature=signature,
        key=key,
    )


def check_message(msg: Message, policy: SignaturePolicy) -> RejectReason | None:
    """``None`` when ``msg`` follows the policy (and its signature verifies), else why not."""
    if policy is SignaturePolicy.STRICT_NO_SIGN:
        if msg.signature is not None:
            return RejectReason.UNEXPECTED_SIGNATURE
        if msg.source is not None or msg.seqno is not None or msg.key is not None:
            return RejectReason.UNEXPECTED_AUTH_INFO
        return None
    if msg.signature is None or msg.source is None or msg.seqno is None:
        return RejectReason.MISSING_SIGNATURE
    try:
        author = PeerID.from_bytes(msg.source)
        key = author.extract_public_key()
        if msg.key is not None:
            given = decode_public_key(msg.key)
            if (key is not None and given != key) or not author.matches_public_key(given):
                return RejectReason.INVALID_SIGNATURE
            key = given
    except (InvalidKeyError, ValueError):
        return RejectReason.INVALID_SIGNATURE
    if key is None or not key.verify(_signing_bytes(msg), msg.signature):
        return RejectReason.INVALID_SIGNATURE
    return None
