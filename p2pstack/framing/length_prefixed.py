"""uvarint-length-prefixed messages, sans-IO.

Wire format: ``uvarint(len(body)) || body``. Used by multistream-select, identify, pubsub
and others, each with its own size limit. A declared length over the limit is refused as
soon as the prefix is complete, before any of the body is buffered.
"""

from __future__ import annotations

from p2pstack.errors import MessageTooLarge
from p2pstack.framing.varint import decode_uvarint, encode_uvarint


def encode_length_prefixed(body: bytes | bytearray | memoryview) -> bytes:
    """Return ``uvarint(len(body)) || body``."""
    return encode_uvarint(len(body)) + body


class LengthPrefixedDecoder:
    """Splits a byte stream into length-prefixed messages.

    ``feed()`` bytes as they arrive, then call ``next_message()`` until it returns ``None``.
    ``next_message()`` raises :class:`MessageTooLarge` when a prefix declares more than
    ``max_size`` bytes, and :class:`RemoteProtocolError` for a malformed prefix; the decoder
    is unusable afterwards (the stream cannot be resynchronised).
    """

    __slots__ = ("_buf", "_pos", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        # Consumed bytes are skipped by offset and compacted lazily, so that splitting one
        # large chunk into many small messages stays linear.
        self._pos = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_message(self) -> bytes | None:
        """Return the next complete message body, or ``None`` if more bytes are needed."""
        buf = self._buf
        decoded = decode_uvarint(buf, self._pos)
        if decoded is None:
            return None
        length, start = decoded
        if length > self.max_size:
            raise MessageTooLarge(
                f"length-prefixed message of {length} bytes exceeds limit of {self.max_size}"
            )
        end = start + length
        if end > len(buf):
            return None
        body = bytes(buf[start:end])
        self._pos = end
        return body

    def unconsumed(self) -> bytes:
        """Bytes fed but not yet returned as a message (a partial message, or bytes that
        belong to whatever follows the messages on the stream)."""
        return bytes(self._buf[self._pos :])

    def __len__(self) -> int:
        """Number of bytes buffered and not yet returned."""
        return len(self._buf) - self._pos
