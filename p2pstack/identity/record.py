"""Signed envelopes and signed peer records (libp2p/specs RFC/0002, RFC/0003).

An envelope carries a payload, its type and the signer's public key; the signature covers
``uvarint(len(domain)) ‖ domain ‖ uvarint(len(type)) ‖ type ‖ uvarint(len(payload)) ‖
payload``, so a signature made for one purpose (domain) is worthless for another.

A peer record is a peer's own list of addresses with a sequence number (newer records have
larger ones), sealed in an envelope with domain ``libp2p-peer-record`` and payload type
``0x0301`` (the multicodec ``libp2p-peer-record``), as go-libp2p and js-libp2p send it in
identify's ``signedPeerRecord``.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError
from multiaddr import Multiaddr

from p2pstack.errors import InvalidKeyError
from p2pstack.framing.varint import encode_uvarint
from p2pstack.identity.keys import PrivateKey, PublicKey, decode_public_key
from p2pstack.identity.peer_id import PeerID

PEER_RECORD_DOMAIN = "libp2p-peer-record"
PEER_RECORD_PAYLOAD_TYPE = bytes([0x03, 0x01])


def _signed_bytes(domain: str, payload_type: bytes, payload: bytes) -> bytes:
    raw_domain = domain.encode()
    return b"".join(
        (
            encode_uvarint(len(raw_domain)),
            raw_domain,
            encode_uvarint(len(payload_type)),
            payload_type,
            encode_uvarint(len(payload)),
            payload,
        )
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    public_key: PublicKey
    payload_type: bytes
    payload: bytes
    signature: bytes

    @classmethod
    def seal(cls, key: PrivateKey, domain: str, payload_type: bytes, payload: bytes) -> Envelope:
        signature = key.sign(_signed_bytes(domain, payload_type, payload))
        return cls(key.public_key, payload_type, payload, signature)

    def encode(self) -> bytes:
        from p2pstack.pb import envelope_pb2

        return envelope_pb2.Envelope(
            public_key=self.public_key.encode(),
            payload_type=self.payload_type,
            payload=self.payload,
            signature=self.signature,
        ).SerializeToString()

    @classmethod
    def open(cls, data: bytes, domain: str) -> Envelope:
        """Decode and verify; :class:`InvalidKeyError` if anything is wrong."""
        from p2pstack.pb import envelope_pb2

        try:
            msg = envelope_pb2.Envelope.FromString(data)
        except DecodeError as exc:
            raise InvalidKeyError(f"undecodable envelope: {exc}") from exc
        key = decode_public_key(msg.public_key)
        if not key.verify(_signed_bytes(domain, msg.payload_type, msg.payload), msg.signature):
            raise InvalidKeyError(f"envelope signature invalid for domain {domain!r}")
        return cls(key, msg.payload_type, msg.payload, msg.signature)

    @property
    def signer(self) -> PeerID:
        return PeerID.from_public_key(self.public_key)


@dataclass(frozen=True, slots=True)
class PeerRecord:
    peer_id: PeerID
    seq: int
    addrs: tuple[Multiaddr, ...]

    def encode(self) -> bytes:
        from p2pstack.pb import peer_record_pb2

        return peer_record_pb2.PeerRecord(
            peer_id=self.peer_id.to_bytes(),
            seq=self.seq,
            addresses=[
                peer_record_pb2.PeerRecord.AddressInfo(multiaddr=a.to_bytes()) for a in self.addrs
            ],
        ).SerializeToString()

    @classmethod
    def decode(cls, data: bytes) -> PeerRecord:
        from p2pstack.pb import peer_record_pb2

        try:
            msg = peer_record_pb2.PeerRecord.FromString(data)
        except DecodeError as exc:
            raise InvalidKeyError(f"undecodable peer record: {exc}") from exc
        addrs = []
        for info in msg.addresses:
            try:
                addrs.append(Multiaddr(info.multiaddr))
            except Exception:  # an address we cannot parse is skipped, like go does
                continue
        return cls(PeerID.from_bytes(msg.peer_id), msg.seq, tuple(addrs))

    def seal(self, key: PrivateKey) -> bytes:
        """The encoded envelope that identify sends as ``signedPeerRecord``."""
        return Envelope.seal(
            key, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, self.encode()
        ).encode()

    @classmethod
    def open(cls, data: bytes) -> PeerRecord:
        """Verify a signed peer record: the signature, the payload type, and that the
        record's peer is the signer. :class:`InvalidKeyError` otherwise."""
        envelope = Envelope.open(data, PEER_RECORD_DOMAIN)
        if envelope.payload_type != PEER_RECORD_PAYLOAD_TYPE:
            raise InvalidKeyError(f"not a peer record: payload type {envelope.payload_type!r}")
        record = cls.decode(envelope.payload)
        if record.peer_id != envelope.signer:
            raise InvalidKeyError("peer record signed by another peer")
        return record
