"""Tests for p2pstack.identity.peer_id (and the multibase codecs it prints with)."""

from __future__ import annotations

import copy
import hashlib
import pickle

import pytest

from p2pstack.errors import InvalidKeyError
from p2pstack.identity import KeyType, PeerID, decode_public_key, generate_private_key
from p2pstack.identity.multibase import (
    base32_decode,
    base32_encode,
    base58btc_decode,
    base58btc_encode,
)

# The peer-ids.md Ed25519 test vector public key; go-libp2p's tests print the same peer id.
ED25519_PUBLIC = bytes.fromhex(
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
ED25519_PEER_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
ECDSA_PUBLIC = bytes.fromhex(
    "0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530"
    "899d83abab44abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597"
    "fb4dcec034e9f77c409e62"
)
SECP256K1_PUBLIC = bytes.fromhex(
    "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"
)
# One peer id in both text forms, as published together by IPFS tooling.
KNOWN_BASE58 = "12D3KooWAsKeVQRVqBi2uzfVub7L6b7oByD1dGmorN644bEx6TyT"
KNOWN_CID = "bafzaajaiaejcad45sqaz4vc7ftbzbyw5clcjhifslsklqzkqn4hcghvuqmim7qok"
SPEC_SHA256_EXAMPLE = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"  # from peer-ids.md
SPEC_SHA256_CID = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"


def test_ed25519_vector_peer_id_is_identity_multihash() -> None:
    key = decode_public_key(ED25519_PUBLIC)
    pid = PeerID.from_public_key(key)
    assert pid.to_bytes() == b"\x00\x24" + ED25519_PUBLIC
    assert str(pid) == pid.to_base58() == ED25519_PEER_ID
    assert pid.to_base58().startswith("12D3KooW")
    assert repr(pid) == f"PeerID('{ED25519_PEER_ID}')"
    assert pid.extract_public_key() == key
    assert pid.matches_public_key(key)


def test_secp256k1_peer_id_is_identity_multihash() -> None:
    key = decode_public_key(SECP256K1_PUBLIC)
    pid = PeerID.from_public_key(key)
    assert pid.to_bytes() == b"\x00\x25" + SECP256K1_PUBLIC
    assert pid.to_base58().startswith("16Uiu2HAm")
    assert pid.extract_public_key() == key


def test_ecdsa_peer_id_is_sha256() -> None:
    key = decode_public_key(ECDSA_PUBLIC)
    pid = PeerID.from_public_key(key)
    assert pid.to_bytes() == b"\x12\x20" + hashlib.sha256(ECDSA_PUBLIC).digest()
    assert pid.to_base58().startswith("Qm")
    assert pid.extract_public_key() is None
    assert pid.matches_public_key(key)


def test_rsa_peer_id_is_sha256() -> None:
    key = generate_private_key(KeyType.RSA).public_key
    pid = PeerID.from_public_key(key)
    assert pid.to_bytes() == b"\x12\x20" + hashlib.sha256(key.encode()).digest()
    assert pid.to_base58().startswith("Qm")
    assert pid.extract_public_key() is None
    assert pid.matches_public_key(key)
    assert not pid.matches_public_key(generate_private_key().public_key)


def test_known_base58_and_cid_pair() -> None:
    from_b58 = PeerID.from_string(KNOWN_BASE58)
    from_cid = PeerID.from_string(KNOWN_CID)
    assert from_b58 == from_cid
    assert from_b58.to_cid() == KNOWN_CID
    assert from_cid.to_base58() == KNOWN_BASE58


@pytest.mark.parametrize("key_type", list(KeyType), ids=lambda t: t.name)
def test_text_forms_round_trip(key_type: KeyType) -> None:
    pid = PeerID.from_public_key(generate_private_key(key_type).public_key)
    cid = pid.to_cid()
    assert cid.startswith("bafz")
    assert PeerID.from_string(cid) == pid
    assert PeerID.from_string(pid.to_base58()) == pid
    assert PeerID.from_bytes(pid.to_bytes()) == pid


def test_spec_sha256_example_parses() -> None:
    pid = PeerID.from_string(SPEC_SHA256_EXAMPLE)
    assert pid.to_bytes()[:2] == b"\x12\x20"
    assert str(pid) == SPEC_SHA256_EXAMPLE
    assert pid.to_cid() == SPEC_SHA256_CID


@pytest.mark.parametrize(
    "multihash",
    [
        b"",
        b"\x00",
        b"\x12\x20" + bytes(31),  # digest shorter than declared
        b"\x12\x20" + bytes(33),  # trailing byte
        b"\x12\x1f" + bytes(31),  # sha2-256 must be 32 bytes
        b"\x11\x14" + bytes(20),  # sha1
        b"\x13\x40" + bytes(64),  # sha2-512
        b"\x00\x2b" + bytes(43),  # inlined key longer than 42 bytes
        b"\x00\x24" + ED25519_PUBLIC + b"\x00",
        b"\x80\x00\x24" + ED25519_PUBLIC,  # non-minimal varint code
    ],
)
def test_rejects_bad_multihash(multihash: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        PeerID.from_bytes(multihash)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "Qm0yQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",  # '0' is not base58
        SPEC_SHA256_EXAMPLE + "1",
        SPEC_SHA256_EXAMPLE[:-1],
        "b" + base32_encode(b"\x01\x55\x12\x20" + bytes(32)),  # raw codec, not libp2p-key
        "b" + base32_encode(b"\x00\x72\x12\x20" + bytes(32)),  # not CIDv1
        KNOWN_CID.upper(),
        "z" + KNOWN_BASE58,  # other multibases are not accepted
        SPEC_SHA256_CID[:-1] + "f",  # same but with non-zero padding bits
        KNOWN_CID + "a",  # impossible base32 length
        "1" * 200,
    ],
)
def test_from_string_rejects(text: str) -> None:
    with pytest.raises(InvalidKeyError):
        PeerID.from_string(text)


def test_extract_public_key_rejects_garbage_inline_key() -> None:
    pid = PeerID.from_bytes(b"\x00\x04abcd")
    with pytest.raises(InvalidKeyError):
        pid.extract_public_key()


def test_value_semantics() -> None:
    a = PeerID.from_string(SPEC_SHA256_EXAMPLE)
    b = PeerID.from_string(KNOWN_BASE58)
    assert a == PeerID.from_bytes(a.to_bytes()) and hash(a) == hash(PeerID(a.to_bytes()))
    assert a != b and a != a.to_bytes()
    assert sorted([a, b]) == [b, a]  # 0x00… sorts before 0x12…
    assert b < a and a > b and a >= a
    assert len({a, b, PeerID(a.to_bytes())}) == 2
    with pytest.raises(AttributeError):
        a._multihash = b""
    assert copy.deepcopy(a) == a
    assert pickle.loads(pickle.dumps(a)) == a


# --- multibase codecs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"", ""),
        (b"\x00", "1"),
        (b"\x00\x00\x01", "112"),
        (b"hello world", "StV1DL6CwTryKyV"),
        (b"\x00\x00\x28\x7f\xb4\xcd", "11233QC4"),
    ],
)
def test_base58btc(raw: bytes, text: str) -> None:
    assert base58btc_encode(raw) == text
    assert base58btc_decode(text) == raw


@pytest.mark.parametrize(
    ("raw", "text"),
    [  # RFC 4648 section 10, lower case, padding removed
        (b"", ""),
        (b"f", "my"),
        (b"fo", "mzxq"),
        (b"foo", "mzxw6"),
        (b"foob", "mzxw6yq"),
        (b"fooba", "mzxw6ytb"),
        (b"foobar", "mzxw6ytboi"),
    ],
)
def test_base32(raw: bytes, text: str) -> None:
    assert base32_encode(raw) == text
    assert base32_decode(text) == raw


@pytest.mark.parametrize("text", ["m", "mzx", "mzxw6y", "mz", "MZXW6", "mzxw6=", "mzxw1"])
def test_base32_rejects_non_canonical(text: str) -> None:
    with pytest.raises(ValueError):
        base32_decode(text)


def test_base58_rejects_bad_characters() -> None:
    for text in ("0", "O", "I", "l", "+"):
        with pytest.raises(ValueError):
            base58btc_decode(text)
