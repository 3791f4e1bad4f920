"""Tests for p2pstack.identity.keys against the peer-ids.md test vectors and edge cases."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from p2pstack.errors import ConfigError, InvalidKeyError
from p2pstack.identity import (
    KeyPair,
    KeyType,
    PeerID,
    PrivateKey,
    decode_private_key,
    decode_public_key,
    generate_private_key,
    public_key_from_raw,
)

# libp2p/specs peer-ids/peer-ids.md, "Test vectors": (type, private key, public key).
VECTORS = [
    (
        KeyType.ECDSA,
        "08031279307702010104203E5B1FE9712E6C314942A750BD67485DE3C1EFE85B1BFB520AE8F9AE3DFA4A"
        "4CA00A06082A8648CE3D030107A14403420004DE3D300FA36AE0E8F5D530899D83ABAB44ABF3161F162A"
        "4BC901D8E6ECDA020E8B6D5F8DA30525E71D6851510C098E5C47C646A597FB4DCEC034E9F77C409E62",
        "0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530"
        "899d83abab44abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597"
        "fb4dcec034e9f77c409e62",
    ),
    (
        KeyType.Ed25519,
        "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4"
        "a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
        "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
    ),
    (
        KeyType.Secp256k1,
        "0802122053DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB",
        "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99",
    ),
]
VECTOR_IDS = [v[0].name for v in VECTORS]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ED25519_VECTOR_SEED = bytes.fromhex(VECTORS[1][1])[4:36]
ED25519_VECTOR_PUB = bytes.fromhex(VECTORS[1][2])[4:]


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return generate_private_key(KeyType.RSA)


@pytest.fixture(params=list(KeyType), ids=lambda t: t.name)
def any_key(request: pytest.FixtureRequest, rsa_key: PrivateKey) -> PrivateKey:
    if request.param is KeyType.RSA:
        return rsa_key
    return generate_private_key(request.param)


def key_message(field1: int, data: bytes) -> bytes:
    """A key protobuf built by hand, so tests can build ones our encoder would refuse."""
    length, n = bytearray(), len(data)
    while n >= 0x80:
        length.append(n & 0x7F | 0x80)
        n >>= 7
    length.append(n)
    return bytes([0x08, field1, 0x12]) + bytes(length) + data


# --- spec vectors ----------------------------------------------------------------------


@pytest.mark.parametrize(("key_type", "private_hex", "public_hex"), VECTORS, ids=VECTOR_IDS)
def test_vector_private_key_derives_vector_public_key(
    key_type: KeyType, private_hex: str, public_hex: str
) -> None:
    private = decode_private_key(bytes.fromhex(private_hex))
    assert private.key_type is key_type
    assert private.public_key.key_type is key_type
    assert private.public_key.encode() == bytes.fromhex(public_hex)


@pytest.mark.parametrize(("key_type", "private_hex", "public_hex"), VECTORS, ids=VECTOR_IDS)
def test_vector_round_trips(key_type: KeyType, private_hex: str, public_hex: str) -> None:
    private_bytes, public_bytes = bytes.fromhex(private_hex), bytes.fromhex(public_hex)
    assert decode_private_key(private_bytes).encode() == private_bytes
    public = decode_public_key(public_bytes)
    assert public.encode() == public_bytes
    assert public == decode_private_key(private_bytes).public_key
    assert public_key_from_raw(key_type, public.raw()) == public


@pytest.mark.parametrize(("key_type", "private_hex", "public_hex"), VECTORS, ids=VECTOR_IDS)
def test_vector_signatures(key_type: KeyType, private_hex: str, public_hex: str) -> None:
    private = decode_private_key(bytes.fromhex(private_hex))
    public = decode_public_key(bytes.fromhex(public_hex))
    signature = private.sign(b"libp2p")
    assert public.verify(b"libp2p", signature)
    assert not public.verify(b"libp2q", signature)


# --- every key type --------------------------------------------------------------------


def test_generated_key_round_trips(any_key: PrivateKey) -> None:
    assert decode_private_key(any_key.encode()) == any_key
    public = any_key.public_key
    assert decode_public_key(public.encode()) == public
    assert public_key_from_raw(public.key_type, public.raw()) == public


def test_sign_verify_and_tamper(any_key: PrivateKey) -> None:
    public = any_key.public_key
    data = b"some data to sign"
    signature = any_key.sign(data)
    assert public.verify(data, signature)
    assert not public.verify(data + b"!", signature)
    tampered = bytearray(signature)
    tampered[len(tampered) // 2] ^= 0x01
    assert not public.verify(data, bytes(tampered))
    if any_key.key_type is not KeyType.RSA:  # a second RSA key would cost a slow keygen
        other = generate_private_key(any_key.key_type)
        assert not other.public_key.verify(data, signature)


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"\x30\x02\x02\x00", b"\xff" * 600])
def test_verify_never_raises_on_garbage(any_key: PrivateKey, garbage: bytes) -> None:
    assert any_key.public_key.verify(b"data", garbage) is False


def test_private_key_repr_hides_secret(any_key: PrivateKey) -> None:
    assert any_key.raw().hex() not in repr(any_key)
    assert any_key.raw()[:8].hex() not in repr(any_key)


def test_equality_and_hash() -> None:
    a, b = generate_private_key(), generate_private_key()
    a2 = decode_private_key(a.encode())
    assert a == a2 and hash(a) == hash(a2) and a != b
    assert a.public_key == a2.public_key and hash(a.public_key) == hash(a2.public_key)
    assert a.public_key != b.public_key
    assert len({a.public_key, a2.public_key, b.public_key}) == 2


# --- decoding rejects bad input --------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        key_message(4, ED25519_VECTOR_PUB),  # unknown key type
        key_message(0x7F, ED25519_VECTOR_PUB),
        b"\x12\x20" + ED25519_VECTOR_PUB,  # Type missing
        b"\x08\x01",  # Data missing
        b"\x08\x01\x12\x21" + ED25519_VECTOR_PUB,  # Data shorter than its length
        b"\x08\x01\x12\x20" + ED25519_VECTOR_PUB + b"\xff",  # trailing junk
        key_message(1, ED25519_VECTOR_PUB[:31]),  # Ed25519 key of wrong length
        key_message(2, b"\x04" + b"\x01" * 64),  # uncompressed secp256k1 point
        key_message(2, b"\x02" + b"\x00" * 32),  # x = 0 is not on secp256k1
        key_message(3, b"\x30\x03\x02\x01\x01"),  # ECDSA Data that is not an SPKI
        key_message(0, b"not DER"),
    ],
)
def test_decode_public_key_rejects(data: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        decode_public_key(data)


def test_decode_accepts_fields_out_of_order_and_reencodes_canonically() -> None:
    canonical = bytes.fromhex(VECTORS[1][2])
    reordered = b"\x12\x20" + ED25519_VECTOR_PUB + b"\x08\x01"
    assert decode_public_key(reordered).encode() == canonical


@pytest.mark.parametrize(
    "data",
    [
        key_message(1, ED25519_VECTOR_SEED + bytes(32)),  # public half does not match
        key_message(1, ED25519_VECTOR_SEED + ED25519_VECTOR_PUB + bytes(32)),
        key_message(1, ED25519_VECTOR_SEED[:31]),
        key_message(2, bytes(32)),  # scalar 0
        key_message(2, SECP256K1_N.to_bytes(32, "big")),  # scalar n
        key_message(2, b"\x01" * 31),
        key_message(3, b"\x30\x00"),
        key_message(5, ED25519_VECTOR_SEED),
        b"\x12\x20" + ED25519_VECTOR_SEED,
    ],
)
def test_decode_private_key_rejects(data: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        decode_private_key(data)


def test_ed25519_private_key_accepts_seed_and_legacy_forms() -> None:
    full = bytes.fromhex(VECTORS[1][1])
    for data in (
        ED25519_VECTOR_SEED,
        ED25519_VECTOR_SEED + ED25519_VECTOR_PUB + ED25519_VECTOR_PUB,
    ):
        assert decode_private_key(key_message(1, data)).encode() == full


def test_secp256k1_signatures_are_low_s() -> None:
    key = generate_private_key(KeyType.Secp256k1)
    for i in range(32):
        _, s = decode_dss_signature(key.sign(i.to_bytes(4, "big")))
        assert s <= SECP256K1_N // 2


def test_ecdsa_is_p256_only() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    spki = p384.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sec1 = p384.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidKeyError):
        public_key_from_raw(KeyType.ECDSA, spki)
    with pytest.raises(InvalidKeyError):
        decode_private_key(key_message(3, sec1))


def test_ecdsa_rejects_compressed_point_spki() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    compressed = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    # The SPKI header of an id-ecPublicKey P-256 key, followed by a compressed point.
    header = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200")
    with pytest.raises(InvalidKeyError):
        public_key_from_raw(KeyType.ECDSA, header + compressed)


def test_rsa_refuses_small_keys() -> None:
    with pytest.raises(InvalidKeyError):
        generate_private_key(KeyType.RSA, bits=1024)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    spki = small.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = small.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidKeyError):
        public_key_from_raw(KeyType.RSA, spki)
    with pytest.raises(InvalidKeyError):
        decode_private_key(key_message(0, pkcs1))


def test_rsa_encoding_formats(rsa_key: PrivateKey) -> None:
    # Public Data is PKIX SubjectPublicKeyInfo, private Data PKCS#1, as go writes them.
    public = serialization.load_der_public_key(rsa_key.public_key.raw())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    # PKCS#1: SEQUENCE { version 0, modulus INTEGER, ... }; PKCS#8 would have a SEQUENCE
    # (the AlgorithmIdentifier) where the modulus is.
    assert rsa_key.raw()[:7] == b"\x30\x82" + rsa_key.raw()[2:4] + b"\x02\x01\x00"
    assert rsa_key.raw()[7] == 0x02
    assert len(rsa_key.public_key.encode()) > 42


def test_public_key_from_raw_unknown_type() -> None:
    with pytest.raises(InvalidKeyError):
        public_key_from_raw(7, ED25519_VECTOR_PUB)  # type: ignore[arg-type]


# --- KeyPair ---------------------------------------------------------------------------


def test_keypair_generate_and_peer_id() -> None:
    pair = KeyPair.generate()
    assert pair.public == pair.private.public_key
    assert pair.public.key_type is KeyType.Ed25519
    assert pair.peer_id == PeerID.from_public_key(pair.public)
    assert pair.peer_id is pair.peer_id  # cached
    assert pair.private.raw().hex() not in repr(pair)


def test_keypair_rejects_mismatched_halves() -> None:
    with pytest.raises(ConfigError):
        KeyPair(generate_private_key(), generate_private_key().public_key)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_keypair_save_and_load(tmp_path: Path) -> None:
    pair = KeyPair.from_private(decode_private_key(bytes.fromhex(VECTORS[1][1])))
    path = tmp_path / "identity.key"
    path.write_bytes(b"old contents")
    os.chmod(path, 0o644)
    pair.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == bytes.fromhex(VECTORS[1][1])
    assert KeyPair.load(str(path)) == pair
    assert [p.name for p in tmp_path.iterdir()] == ["identity.key"]


def test_keypair_load_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(b"\x08\x01\x12\x05hello")
    with pytest.raises(InvalidKeyError):
        KeyPair.load(path)
