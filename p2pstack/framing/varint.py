"""Unsigned LEB128 varints as libp2p uses them (multiformats/unsigned-varint).

Rules enforced on decode, as in the multiformats spec and go-varint:

* at most 9 bytes, so the largest value is 2**63 - 1;
* minimal encoding only: a multi-byte varint may not end in a 0x00 byte
  (``b"\\x80\\x00"`` is a padded zero and is refused).

Violations are the peer's fault and raise :class:`~p2pstack.errors.RemoteProtocolError`.
"""

from __future__ import annotations

from p2pstack.errors import LocalProtocolError, RemoteProtocolError

#: largest value a varint may carry (9 bytes of 7 bits)
MAX_UVARINT = 2**63 - 1
#: longest valid encoding, in bytes
MAX_UVARINT_LEN = 9

# Single-byte encodings are by far the common case (multistream messages, small frames).
_ONE_BYTE = [bytes((i,)) for i in range(128)]


def encode_uvarint(n: int) -> bytes:
    """Encode ``0 <= n <= 2**63 - 1`` as a minimal unsigned varint."""
    if 0 <= n < 128:
        return _ONE_BYTE[n]
    if n < 0 or n > MAX_UVARINT:
        raise LocalProtocolError(f"uvarint out of range: {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_uvarint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int] | None:
    """Decode a varint starting at ``buf[pos]``.

    Returns ``(value, new_pos)`` where ``new_pos`` is the index just past the varint, or
    ``None`` when ``buf`` ends before the varint does (feed more bytes and try again).
    Raises :class:`RemoteProtocolError` for a non-minimal or over-long varint; an over-long
    one is refused as soon as its 9th byte is seen, without waiting for more.
    """
    end = len(buf)
    if pos < end:
        first = buf[pos]
        if first < 0x80:
            return first, pos + 1
    value = 0
    shift = 0
    i = pos
    while i < end:
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            if byte == 0 and i - pos > 1:
                raise RemoteProtocolError("non-minimal uvarint encoding")
            return value, i
        if i - pos >= MAX_UVARINT_LEN:
            raise RemoteProtocolError("uvarint longer than 9 bytes")
        shift += 7
    return None
