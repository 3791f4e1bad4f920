"""Byte framing: unsigned varints, length-prefixed messages, a buffered byte stream.

``varint`` and ``length_prefixed`` are sans-IO; ``buffered`` holds the anyio helpers.
"""

from p2pstack.framing.buffered import (
    BufferedByteStream,
    read_length_prefixed,
    write_length_prefixed,
)
from p2pstack.framing.length_prefixed import LengthPrefixedDecoder, encode_length_prefixed
from p2pstack.framing.varint import MAX_UVARINT, decode_uvarint, encode_uvarint

__all__ = [
    "MAX_UVARINT",
    "BufferedByteStream",
    "LengthPrefixedDecoder",
    "decode_uvarint",
    "encode_length_prefixed",
    "encode_uvarint",
    "read_length_prefixed",
    "write_length_prefixed",
]
