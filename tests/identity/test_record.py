"""Signed envelopes and peer records (RFC 0002 / 0003)."""

from __future__ import annotations

import pytest
from multiaddr import Multiaddr

from p2pstack import InvalidKeyError, KeyPair, KeyType
from p2pstack.framing import encode_uvarint
from p2pstack.identity.record import (
    PEER_RECORD_DOMAIN,
    PEER_RECORD_PAYLOAD_TYPE,
    Envelope,
    PeerRecord,
)
from p2pstack.pb import envelope_pb2

ADDRS = (Multiaddr("/ip4/127.0.0.1/tcp/4001"), Multiaddr("/ip6/::1/udp/4001/quic-v1"))


@pytest.mark.parametrize("key_type", [KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA])
def test_peer_record_round_trip(key_type: KeyType) -> None:
    key = KeyPair.generate(key_type)
    sealed = PeerRecord(key.peer_id, 42, ADDRS).seal(key.private)
    record = PeerRecord.open(sealed)
    assert record == PeerRecord(key.peer_id, 42, ADDRS)


def test_signature_covers_domain_type_and_payload_as_the_spec_says() -> None:
    key = KeyPair.generate()
    payload = PeerRecord(key.peer_id, 1, ADDRS).encode()
    msg = envelope_pb2.Envelope.FromString(PeerRecord(key.peer_id, 1, ADDRS).seal(key.private))
    assert msg.payload_type == b"\x03\x01" == PEER_RECORD_PAYLOAD_TYPE
    assert msg.public_key == key.public.encode()
    signed = (
        encode_uvarint(len(PEER_RECORD_DOMAIN))
        + PEER_RECORD_DOMAIN.encode()
        + encode_uvarint(2)
        + b"\x03\x01"
        + encode_uvarint(len(payload))
        + payload
    )
    assert key.public.verify(signed, msg.signature)
    # field numbers: public_key 1, payload_type 2, payload 3, signature 5
    assert {f.number for f, _ in msg.ListFields()} == {1, 2, 3, 5}


def test_wrong_domain_tampering_and_foreign_signer_are_refused() -> None:
    key, other = KeyPair.generate(), KeyPair.generate()
    sealed = PeerRecord(key.peer_id, 1, ADDRS).seal(key.private)
    with pytest.raises(InvalidKeyError):
        Envelope.open(sealed, "libp2p-routing-state")
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(InvalidKeyError):
        PeerRecord.open(bytes(tampered))
    # a record about `key`, signed by `other`
    forged = PeerRecord(key.peer_id, 1, ADDRS).seal(other.private)
    with pytest.raises(InvalidKeyError, match="another peer"):
        PeerRecord.open(forged)
    wrong_type = Envelope.seal(key.private, PEER_RECORD_DOMAIN, b"\x03\x02", b"").encode()
    with pytest.raises(InvalidKeyError, match="payload type"):
        PeerRecord.open(wrong_type)
    with pytest.raises(InvalidKeyError):
        PeerRecord.open(b"\xff\xff garbage")
