"""libp2p key pairs: the four key types, their wire encodings, signing and verification.

Rules of this module (libp2p/specs peer-ids/peer-ids.md):

* A key travels as a ``PublicKey``/``PrivateKey`` protobuf ``{Type = 1, Data = 2}``. We
  always *encode* deterministically (field 1, then field 2, minimal varints) because peer
  IDs hash these bytes. We *decode* with ordinary protobuf rules, as go and rust do, but
  insist that both fields are present and the type is known.
* ``Data`` per type: Ed25519 raw 32-byte public key, private seed ‖ public (64 bytes);
  Secp256k1 33-byte compressed point, private 32-byte scalar; ECDSA (P-256 only) DER
  SubjectPublicKeyInfo, private SEC1 DER; RSA DER SubjectPublicKeyInfo, private PKCS#1 DER.
* Signatures: Ed25519 plain; Secp256k1 and ECDSA DER over SHA-256; RSA PKCS#1 v1.5 SHA-256.
* Anything undecodable raises :class:`~p2pstack.errors.InvalidKeyError`; ``verify`` never
  raises for a bad signature, it returns ``False``.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import enum
import functools
import hmac
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from google.protobuf.message import DecodeError

from p2pstack.errors import ConfigError, InvalidKeyError

if TYPE_CHECKING:
    from p2pstack.identity.peer_id import PeerID
    from p2pstack.pb import keys_pb2

__all__ = [
    "KeyPair",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "decode_private_key",
    "decode_public_key",
    "generate_private_key",
    "public_key_from_raw",
]

# go-libp2p's limits: below 2048 bits is weak, above 8192 makes verification a DoS vector.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
# Order of the secp256k1 group; a private scalar must lie in [1, n).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_K = TypeVar("_K", "PublicKey", "PrivateKey")
_P = TypeVar("_P", bound="PublicKey")

_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1 / SEC1


class KeyType(enum.IntEnum):
    """The ``KeyType`` enum of the key protobuf; values are wire values."""

    RSA = 0
    Ed25519 = 1
    Secp256k1 = 2
    ECDSA = 3


def _encode_key_message(key_type: KeyType, data: bytes) -> bytes:
    # Hand-written so the bytes are canonical whatever the protobuf runtime does.
    # Key types are < 128, so field 1 is always one varint byte.
    return bytes([0x08, key_type]) + b"\x12" + _uvarint(len(data)) + data


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _decode_key_message(
    data: bytes, message: keys_pb2.PublicKey | keys_pb2.PrivateKey
) -> tuple[KeyType, bytes]:
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise InvalidKeyError(f"malformed {type(message).__name__} protobuf") from exc
    # The protobuf runtime does not enforce proto2 `required`, and it files an unknown enum
    # value under unknown fields, so a missing and an unknown type both look absent here.
    if not message.HasField("Type"):
        raise InvalidKeyError(f"{type(message).__name__}: missing or unknown key type")
    if not message.HasField("Data"):
        raise InvalidKeyError(f"{type(message).__name__}: missing Data")
    return KeyType(message.Type), message.Data


class PublicKey(abc.ABC):
    """A public key of one of the four libp2p key types. Equal and hashed by ``encode()``."""

    @property
    @abc.abstractmethod
    def key_type(self) -> KeyType: ...

    @abc.abstractmethod
    def raw(self) -> bytes:
        """The ``Data`` field: this key in its type's wire encoding."""

    @abc.abstractmethod
    def verify(self, data: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is this key's valid signature of ``data``; never raises."""

    def encode(self) -> bytes:
        """The deterministic ``PublicKey`` protobuf; what peer IDs are derived from."""
        return _encode_key_message(self.key_type, self.raw())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.encode() == other.encode()

    def __hash__(self) -> int:
        return hash(self.encode())

    def __repr__(self) -> str:
        from p2pstack.identity.peer_id import PeerID  # peer_id imports this module

        # The peer id tells keys apart; a tail of the DER would not (RSA's is the exponent).
        return f"<{self.key_type.name} public key of {PeerID.from_public_key(self)}>"


class PrivateKey(abc.ABC):
    """A private key; equal when the encodings are (compared in constant time)."""

    @property
    @abc.abstractmethod
    def key_type(self) -> KeyType: ...

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey: ...

    @abc.abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with this key type's libp2p signature scheme."""

    @abc.abstractmethod
    def raw(self) -> bytes:
        """The ``Data`` field: this key in its type's wire encoding. Secret."""

    def encode(self) -> bytes:
        """The deterministic ``PrivateKey`` protobuf (the key file format of go and js)."""
        return _encode_key_message(self.key_type, self.raw())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self.encode(), other.encode())

    def __hash__(self) -> int:
        # Hash the public half so the secret never feeds anything but the comparison.
        return hash(self.public_key)

    def __repr__(self) -> str:
        # Never show secret material.
        return f"<{self.key_type.name} private key for {self.public_key!r}>"


class _BackedPublicKey(PublicKey):
    """A public key held as a ``cryptography`` object, with its ``Data`` bytes cached."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def raw(self) -> bytes:
        return self._raw

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self._check(data, signature)
        except (InvalidSignature, ValueError):  # ValueError: signature bytes that do not parse
            return False
        return True

    @abc.abstractmethod
    def _check(self, data: bytes, signature: bytes) -> None:
        """Raise InvalidSignature unless ``signature`` is valid for ``data``."""


class _BackedPrivateKey(PrivateKey):
    def __init__(self, public: PublicKey) -> None:
        self._public = public

    @property
    def public_key(self) -> PublicKey:
        return self._public


# --- Ed25519 -------------------------------------------------------------------------


class Ed25519PublicKey(_BackedPublicKey):
    key_type = KeyType.Ed25519

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        super().__init__(key.public_bytes_raw())
        self._key = key

    @classmethod
    def from_raw(cls, raw: bytes) -> Ed25519PublicKey:
        if len(raw) != 32:
            raise InvalidKeyError(f"Ed25519 public key must be 32 bytes, got {len(raw)}")
        return cls(ed25519.Ed25519PublicKey.from_public_bytes(raw))

    def _check(self, data: bytes, signature: bytes) -> None:
        self._key.verify(signature, data)


class Ed25519PrivateKey(_BackedPrivateKey):
    key_type = KeyType.Ed25519

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        super().__init__(Ed25519PublicKey(key.public_key()))
        self._key = key

    @classmethod
    def from_raw(cls, raw: bytes) -> Ed25519PrivateKey:
        """Accept seed ‖ public (64 bytes), the bare seed (32) or the old seed ‖ pub ‖ pub."""
        if len(raw) not in (32, 64, 96):
            raise InvalidKeyError(f"Ed25519 private key of {len(raw)} bytes, need 32/64/96")
        key = cls(ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32]))
        # Stored public halves must be the one the seed derives, or the key is corrupt.
        public = key.public_key.raw()
        if any(raw[i : i + 32] != public for i in range(32, len(raw), 32)):
            raise InvalidKeyError("Ed25519 private key: public half does not match the seed")
        return key

    def raw(self) -> bytes:
        return self._key.private_bytes_raw() + self._public.raw()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


# --- ECDSA over secp256k1 and P-256 ----------------------------------------------------


class _ECPublicKey(_BackedPublicKey):
    def __init__(self, key: ec.EllipticCurvePublicKey, raw: bytes) -> None:
        super().__init__(raw)
        self._key = key

    def _check(self, data: bytes, signature: bytes) -> None:
        self._key.verify(signature, data, ec.ECDSA(hashes.SHA256()))


class Secp256k1PublicKey(_ECPublicKey):
    key_type = KeyType.Secp256k1

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        point = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        super().__init__(key, point)

    @classmethod
    def from_raw(cls, raw: bytes) -> Secp256k1PublicKey:
        # Only the compressed form, so that re-encoding (and so the peer ID) is the input.
        if len(raw) != 33 or raw[0] not in (2, 3):
            raise InvalidKeyError("secp256k1 public key must be a 33-byte compressed point")
        return cls(ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw))


class EcdsaPublicKey(_ECPublicKey):
    key_type = KeyType.ECDSA

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        super().__init__(key, key.public_bytes(_DER, _SPKI))

    @classmethod
    def from_raw(cls, raw: bytes) -> EcdsaPublicKey:
        key = serialization.load_der_public_key(raw)
        if not (isinstance(key, ec.EllipticCurvePublicKey) and _is_p256(key.curve)):
            raise InvalidKeyError("ECDSA public key must be a P-256 SubjectPublicKeyInfo")
        return _canonical(cls(key), raw)


class Secp256k1PrivateKey(_BackedPrivateKey):
    key_type = KeyType.Secp256k1

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        super().__init__(Secp256k1PublicKey(key.public_key()))
        self._key = key

    @classmethod
    def from_raw(cls, raw: bytes) -> Secp256k1PrivateKey:
        scalar = int.from_bytes(raw, "big")
        if len(raw) != 32 or not 0 < scalar < _SECP256K1_N:
            raise InvalidKeyError("secp256k1 private key must be a 32-byte scalar in [1, n)")
        return cls(ec.derive_private_key(scalar, ec.SECP256K1()))

    def raw(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(32, "big")

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        # The spec cites Bitcoin's BIP 62, which wants the low-S form; strict verifiers
        # (libsecp256k1) reject the other one.
        return encode_dss_signature(r, min(s, _SECP256K1_N - s))


class EcdsaPrivateKey(_BackedPrivateKey):
    key_type = KeyType.ECDSA

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not _is_p256(key.curve):
            raise InvalidKeyError("ECDSA private key must be on P-256")
        super().__init__(EcdsaPublicKey(key.public_key()))
        self._key = key

    @classmethod
    def from_raw(cls, raw: bytes) -> EcdsaPrivateKey:
        key = serialization.load_der_private_key(raw, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidKeyError("ECDSA private key Data is not an EC private key")
        return cls(key)

    def raw(self) -> bytes:
        # SEC1 "EC PRIVATE KEY", what go's x509.MarshalECPrivateKey writes.
        return self._key.private_bytes(_DER, _TRADITIONAL, serialization.NoEncryption())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def _is_p256(curve: ec.EllipticCurve) -> bool:
    return isinstance(curve, ec.SECP256R1)


def _canonical(key: _P, raw: bytes) -> _P:
    # DER admits variants (a compressed EC point, say) whose re-encoding differs; accepting
    # them would give one key two encodings and so two peer IDs.
    if key.raw() != raw:
        raise InvalidKeyError(f"{key.key_type.name} public key is not in canonical DER form")
    return key


# --- RSA -----------------------------------------------------------------------------


def _check_rsa_bits(bits: int) -> None:
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise InvalidKeyError(f"RSA key of {bits} bits; need {MIN_RSA_BITS}..{MAX_RSA_BITS}")


class RsaPublicKey(_BackedPublicKey):
    key_type = KeyType.RSA

    def __init__(self, key: rsa.RSAPublicKey) -> None:
        _check_rsa_bits(key.key_size)
        super().__init__(key.public_bytes(_DER, _SPKI))
        self._key = key

    @classmethod
    def from_raw(cls, raw: bytes) -> RsaPublicKey:
        key = serialization.load_der_public_key(raw)
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidKeyError("RSA public key Data is not an RSA SubjectPublicKeyInfo")
        return _canonical(cls(key), raw)

    def _check(self, data: bytes, signature: bytes) -> None:
        self._key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


class RsaPrivateKey(_BackedPrivateKey):
    key_type = KeyType.RSA

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        super().__init__(RsaPublicKey(key.public_key()))
        self._key = key

    @classmethod
    def from_raw(cls, raw: bytes) -> RsaPrivateKey:
        key = serialization.load_der_private_key(raw, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidKeyError("RSA private key Data is not an RSA private key")
        return cls(key)

    def raw(self) -> bytes:
        # PKCS#1 "RSA PRIVATE KEY".
        return self._key.private_bytes(_DER, _TRADITIONAL, serialization.NoEncryption())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


# --- entry points --------------------------------------------------------------------

_PUBLIC_FROM_RAW: dict[KeyType, Callable[[bytes], PublicKey]] = {
    KeyType.RSA: RsaPublicKey.from_raw,
    KeyType.Ed25519: Ed25519PublicKey.from_raw,
    KeyType.Secp256k1: Secp256k1PublicKey.from_raw,
    KeyType.ECDSA: EcdsaPublicKey.from_raw,
}
_PRIVATE_FROM_RAW: dict[KeyType, Callable[[bytes], PrivateKey]] = {
    KeyType.RSA: RsaPrivateKey.from_raw,
    KeyType.Ed25519: Ed25519PrivateKey.from_raw,
    KeyType.Secp256k1: Secp256k1PrivateKey.from_raw,
    KeyType.ECDSA: EcdsaPrivateKey.from_raw,
}
# What cryptography raises for bytes it cannot load (TypeError: an encrypted PKCS#8 blob).
_LOAD_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


def _from_raw(table: dict[KeyType, Callable[[bytes], _K]], key_type: KeyType, raw: bytes) -> _K:
    try:
        parse = table[KeyType(key_type)]
    except (ValueError, KeyError):
        raise InvalidKeyError(f"unknown key type {key_type!r}") from None
    try:
        return parse(bytes(raw))
    except InvalidKeyError:
        raise
    except _LOAD_ERRORS as exc:
        raise InvalidKeyError(f"invalid {KeyType(key_type).name} key: {exc}") from exc


def public_key_from_raw(key_type: KeyType, raw: bytes) -> PublicKey:
    """Build a public key from its ``Data`` bytes; InvalidKeyError if they are not valid."""
    return _from_raw(_PUBLIC_FROM_RAW, key_type, raw)


def decode_public_key(data: bytes) -> PublicKey:
    """Decode a ``PublicKey`` protobuf; InvalidKeyError on anything wrong."""
    from p2pstack.pb import keys_pb2

    return public_key_from_raw(*_decode_key_message(data, keys_pb2.PublicKey()))


def decode_private_key(data: bytes) -> PrivateKey:
    """Decode a ``PrivateKey`` protobuf; InvalidKeyError on anything wrong."""
    from p2pstack.pb import keys_pb2

    return _from_raw(_PRIVATE_FROM_RAW, *_decode_key_message(data, keys_pb2.PrivateKey()))


def generate_private_key(key_type: KeyType = KeyType.Ed25519, *, bits: int = 2048) -> PrivateKey:
    """A new random key. ``bits`` applies to RSA only (InvalidKeyError outside 2048..8192)."""
    match key_type:
        case KeyType.Ed25519:
            return Ed25519PrivateKey(ed25519.Ed25519PrivateKey.generate())
        case KeyType.Secp256k1:
            return Secp256k1PrivateKey(ec.generate_private_key(ec.SECP256K1()))
        case KeyType.ECDSA:
            return EcdsaPrivateKey(ec.generate_private_key(ec.SECP256R1()))
        case KeyType.RSA:
            _check_rsa_bits(bits)
            return RsaPrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=bits))
    raise ConfigError(f"unknown key type {key_type!r}")


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A private key and its public key; ``public`` must be ``private.public_key``."""

    private: PrivateKey = dataclasses.field(repr=False)
    public: PublicKey

    def __post_init__(self) -> None:
        if self.public != self.private.public_key:
            raise ConfigError("KeyPair: public key does not belong to the private key")

    @classmethod
    def generate(cls, key_type: KeyType = KeyType.Ed25519, *, bits: int = 2048) -> KeyPair:
        return cls.from_private(generate_private_key(key_type, bits=bits))

    @classmethod
    def from_private(cls, private: PrivateKey) -> KeyPair:
        return cls(private, private.public_key)

    @functools.cached_property
    def peer_id(self) -> PeerID:
        """The peer ID of ``public`` (computed once)."""
        from p2pstack.identity.peer_id import PeerID  # peer_id imports this module

        return PeerID.from_public_key(self.public)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the encoded ``PrivateKey`` protobuf to ``path`` with mode 0o600.

        The file is written beside ``path`` and renamed over it, so a crash never leaves a
        truncated key, and it is never readable by others even for a moment.
        """
        import tempfile  # here: it pulls in shutil, bz2, lzma and random

        target = os.fspath(path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(target)), prefix=".key-")
        try:
            with os.fdopen(fd, "wb") as f:  # mkstemp creates the file with mode 0o600
                f.write(self.private.encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyPair:
        """Read a key file written by :meth:`save` (or by go/js); InvalidKeyError if bad."""
        with open(path, "rb") as f:
            return cls.from_private(decode_private_key(f.read()))
