"""Peer IDs: the multihash of a peer's encoded public key (libp2p/specs peer-ids/peer-ids.md).

A key whose ``PublicKey`` protobuf is at most 42 bytes (Ed25519, secp256k1) is inlined in an
identity multihash ``00 <len> <key>``; larger ones (RSA, ECDSA) are hashed,
``12 20 <sha-256>``. No other multihash is a peer ID. Text is base58btc of the multihash
("12D3KooW…" for Ed25519, "Qm…" for sha-256); CIDv1 text, ``'b'`` + base32 of
``01 72 <multihash>`` (version 1, codec libp2p-key), is accepted too and printed by
:meth:`PeerID.to_cid`.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, NoReturn

from p2pstack.errors import InvalidKeyError
from p2pstack.identity.keys import PublicKey, decode_public_key
from p2pstack.identity.multibase import (
    base32_decode,
    base32_encode,
    base58btc_decode,
    base58btc_encode,
)

__all__ = ["PeerID"]

_IDENTITY = 0x00
_SHA2_256 = 0x12
MAX_INLINE_KEY_LENGTH = 42
_CID_PREFIX = b"\x01\x72"  # CID version 1, multicodec libp2p-key
# Longest valid text is a CID of an inlined key (~77 chars); anything much longer is not
# a peer ID, and refusing it early keeps base58's quadratic decoding cheap.
_MAX_TEXT_LENGTH = 128


@functools.total_ordering
class PeerID:
    """An immutable, hashable peer ID; ordered by its multihash bytes."""

    __slots__ = ("_multihash",)
    _multihash: bytes

    def __init__(self, multihash: bytes) -> None:
        """Wrap ``multihash``; InvalidKeyError unless it is an identity multihash of at most
        42 bytes or a sha2-256 multihash, with nothing after it."""
        multihash = bytes(multihash)
        # Both codes and every allowed length are below 0x80, so each varint is one byte;
        # a longer (or non-minimal) varint can only be invalid.
        if len(multihash) < 2:
            raise InvalidKeyError("peer id: truncated multihash")
        code, length = multihash[0], multihash[1]
        if code == _SHA2_256:
            if length != 32:
                raise InvalidKeyError(f"peer id: sha2-256 digest length {length}, need 32")
        elif code == _IDENTITY:
            if length > MAX_INLINE_KEY_LENGTH:
                raise InvalidKeyError(f"peer id: inlined key of {length} bytes exceeds 42")
        else:
            raise InvalidKeyError(f"peer id: unsupported multihash code 0x{code:02x}")
        if len(multihash) != 2 + length:
            raise InvalidKeyError("peer id: multihash length does not match its digest")
        object.__setattr__(self, "_multihash", multihash)

    @classmethod
    def from_public_key(cls, key: PublicKey) -> PeerID:
        """The peer ID of ``key``: its encoding inlined if <= 42 bytes, else its sha-256."""
        encoded = key.encode()
        if len(encoded) <= MAX_INLINE_KEY_LENGTH:
            return cls(bytes([_IDENTITY, len(encoded)]) + encoded)
        return cls(bytes([_SHA2_256, 32]) + hashlib.sha256(encoded).digest())

    @classmethod
    def from_bytes(cls, data: bytes) -> PeerID:
        """Parse the binary form (the multihash), as carried in protobufs and multiaddrs."""
        return cls(data)

    @classmethod
    def from_string(cls, text: str) -> PeerID:
        """Parse base58btc multihash text or CIDv1 base32 text; InvalidKeyError if neither."""
        if len(text) > _MAX_TEXT_LENGTH:
            raise InvalidKeyError("peer id: text too long")
        # A base58 peer id starts with '1' or 'Q', never 'b', so the prefix is unambiguous.
        if text.startswith("b"):
            try:
                cid = base32_decode(text[1:])
            except ValueError as exc:
                raise InvalidKeyError(f"peer id: bad CID text: {exc}") from exc
            if not cid.startswith(_CID_PREFIX):
                raise InvalidKeyError("peer id: not a CIDv1 with the libp2p-key codec")
            return cls(cid[len(_CID_PREFIX) :])
        try:
            multihash = base58btc_decode(text)
        except ValueError as exc:
            raise InvalidKeyError(f"peer id: bad base58btc text: {exc}") from exc
        return cls(multihash)

    def to_bytes(self) -> bytes:
        """The multihash."""
        return self._multihash

    def to_base58(self) -> str:
        """The canonical text form: base58btc of the multihash, no multibase prefix."""
        return base58btc_encode(self._multihash)

    def to_cid(self) -> str:
        """CIDv1 text (libp2p-key codec, base32 lower case); starts with "bafz"."""
        return "b" + base32_encode(_CID_PREFIX + self._multihash)

    def extract_public_key(self) -> PublicKey | None:
        """The inlined public key, or None for a hashed peer id.

        InvalidKeyError if the inlined bytes are not a valid ``PublicKey`` protobuf.
        """
        if self._multihash[0] != _IDENTITY:
            return None
        return decode_public_key(self._multihash[2:])

    def matches_public_key(self, key: PublicKey) -> bool:
        """True iff this is the peer id of ``key``."""
        return PeerID.from_public_key(key) == self

    def __str__(self) -> str:
        return self.to_base58()

    def __repr__(self) -> str:
        return f"PeerID({self.to_base58()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerID):
            return NotImplemented
        return self._multihash == other._multihash

    def __lt__(self, other: PeerID) -> bool:
        if not isinstance(other, PeerID):
            return NotImplemented
        return self._multihash < other._multihash

    def __hash__(self) -> int:
        return hash(self._multihash)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("PeerID is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("PeerID is immutable")

    def __reduce__(self) -> tuple[type[PeerID], tuple[bytes]]:
        # Slots plus a refusing __setattr__ defeat the default pickle/copy protocol.
        return (PeerID, (self._multihash,))
