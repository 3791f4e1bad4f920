"""The two text codecs peer IDs need: base58btc and RFC 4648 base32 (lower case, no padding).

Both decoders are strict: a character outside the alphabet, an impossible length or
non-zero padding bits raise ``ValueError``, so that every accepted string has exactly one
byte sequence and every byte sequence exactly one string. Neither adds a multibase prefix;
callers that need one (CIDs use ``'b'`` for base32) add it themselves.
"""

from __future__ import annotations

__all__ = ["base32_decode", "base32_encode", "base58btc_decode", "base58btc_encode"]

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}

_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_B32_INDEX = {c: i for i, c in enumerate(_B32_ALPHABET)}
# Unpadded base32 text lengths (mod 8) that some whole number of bytes produces.
_B32_VALID_TAIL = {0, 2, 4, 5, 7}


def base58btc_encode(data: bytes) -> str:
    """Encode ``data`` in base58 with the bitcoin alphabet; each leading zero byte is a '1'."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    digits: list[str] = []
    while n:
        n, rem = divmod(n, 58)
        digits.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def base58btc_decode(text: str) -> bytes:
    """Decode base58btc ``text``; raise ``ValueError`` on a character outside the alphabet.

    The cost grows with the square of the length: bound untrusted input before calling.
    """
    zeros = len(text) - len(text.lstrip("1"))
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise ValueError(f"invalid base58btc character {c!r}") from None
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def base32_encode(data: bytes) -> str:
    """Encode ``data`` in lower-case RFC 4648 base32 without '=' padding."""
    n = int.from_bytes(data, "big")
    nbits = len(data) * 8
    pad = -nbits % 5
    n <<= pad
    count = (nbits + pad) // 5
    return "".join(_B32_ALPHABET[(n >> (5 * (count - 1 - i))) & 31] for i in range(count))


def base32_decode(text: str) -> bytes:
    """Decode lower-case unpadded base32; raise ``ValueError`` unless ``text`` is canonical."""
    if len(text) % 8 not in _B32_VALID_TAIL:
        raise ValueError(f"invalid base32 length {len(text)}")
    n = 0
    for c in text:
        try:
            n = (n << 5) | _B32_INDEX[c]
        except KeyError:
            raise ValueError(f"invalid base32 character {c!r}") from None
    nbytes = len(text) * 5 // 8
    pad = len(text) * 5 - nbytes * 8
    # Non-zero leftover bits would let two strings decode to the same bytes.
    if n & ((1 << pad) - 1):
        raise ValueError("non-zero padding bits in base32")
    return (n >> pad).to_bytes(nbytes, "big")
