"""Noise transport messages after the handshake, sans-IO.

Each message is a u16 big-endian length and a ChaCha20-Poly1305 ciphertext (plaintext plus a
16-byte tag), at most 65535 bytes, so at most 65519 plaintext bytes per message. Nonces are
the Noise ones: 4 zero bytes and a 64-bit little-endian counter, one counter per direction.
We use the `cryptography` AEAD directly with the keys the handshake produced, encrypting
straight into the outgoing buffer.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from p2pstack.errors import RemoteProtocolError

MAX_MESSAGE = 65535
TAG = 16
MAX_PLAINTEXT = MAX_MESSAGE - TAG
_NONCE = struct.Struct("<4xQ")
_LEN = struct.Struct(">H")
_MAX_NONCE = 2**64 - 1


class NoiseDecryptError(RemoteProtocolError):
    """A transport message failed authentication: corrupted, forged or out of order."""


class NoiseEncoder:
    """Encrypts plaintext into framed transport messages."""

    __slots__ = ("_aead", "_nonce")

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._nonce = 0

    def encode(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Frame and encrypt ``data`` (any length, split at 65519 bytes) into one buffer."""
        total = len(data)
        count = (total + MAX_PLAINTEXT - 1) // MAX_PLAINTEXT or 1
        out = bytearray(total + count * (2 + TAG))
        out_view = memoryview(out)
        src = memoryview(data)
        encrypt_into = self._aead.encrypt_into
        nonce = self._nonce
        if nonce + count > _MAX_NONCE:
            raise RemoteProtocolError("noise nonce exhausted")
        pos = 0
        at = 0
        pack_len = _LEN.pack_into
        pack_nonce = _NONCE.pack
        while True:
            size = min(MAX_PLAINTEXT, total - pos)
            pack_len(out, at, size + TAG)
            encrypt_into(
                pack_nonce(nonce),
                src[pos : pos + size],
                None,
                out_view[at + 2 : at + 2 + size + TAG],
            )
            nonce += 1
            at += 2 + size + TAG
            pos += size
            if pos >= total:
                break
        self._nonce = nonce
        return out


class NoiseDecoder:
    """Splits received bytes into transport messages and decrypts them."""

    __slots__ = ("_aead", "_buf", "_nonce")

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._nonce = 0
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    def next_plaintext(self) -> bytes | None:
        """Decrypt the next whole message, or ``None`` until one has arrived."""
        buf = self._buf
        if len(buf) < 2:
            return None
        (length,) = _LEN.unpack_from(buf)
        end = 2 + length
        if len(buf) < end:
            return None
        if length < TAG:
            raise NoiseDecryptError(f"noise message of {length} bytes is shorter than its tag")
        try:
            plain = self._aead.decrypt(_NONCE.pack(self._nonce), memoryview(buf)[2:end], None)
        except InvalidTag:
            raise NoiseDecryptError("noise message failed authentication") from None
        self._nonce += 1
        del buf[:end]
        return plain

    @property
    def buffered(self) -> int:
        return len(self._buf)
