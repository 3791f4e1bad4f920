"""yamux frame header codec (libp2p/specs yamux/README.md).

Every frame starts with a 12-byte big-endian header::

    version u8 (always 0) | type u8 | flags u16 | stream id u32 | length u32

``length`` is the payload size for Data frames, the window delta for WindowUpdate, the
opaque value for Ping and the error code for GoAway. Only Data frames carry a payload.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag

HEADER = struct.Struct(">BBHII")
HEADER_SIZE = HEADER.size  # 12
VERSION = 0

#: The initial receive window of every stream; counts data bytes only.
INITIAL_WINDOW = 256 * 1024
#: go-yamux's default maximum stream window.
MAX_WINDOW = 16 * 1024 * 1024
#: Largest payload we copy into one Data frame. 65507 + 12 header bytes = 65519, the most
#: plaintext one Noise frame carries, so a copied frame maps to one Noise frame.
#: Peers accept any frame length up to the window they granted (js sends frames of up to
#: the whole window, 1 MiB and more; go sends 64 KiB).
DEFAULT_MAX_FRAME_DATA = 65519 - HEADER_SIZE
#: Largest payload of a Data frame whose payload is sent from the sender's own buffer,
#: encrypted apart from its header (see ``YamuxSession.segments_to_send``): four whole
#: Noise messages, just inside the initial window. Fewer, larger frames cost fewer
#: messages (rust-yamux takes frame bodies of up to 1 MiB).
DEFAULT_MAX_REFERENCED_FRAME_DATA = 4 * 65519


class FrameType(IntEnum):
    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class Flag(IntFlag):
    NONE = 0
    SYN = 1
    ACK = 2
    FIN = 4
    RST = 8


ALL_FLAGS = int(Flag.SYN | Flag.ACK | Flag.FIN | Flag.RST)


class GoAwayCode(IntEnum):
    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


def encode_header(frame_type: int, flags: int, stream_id: int, length: int) -> bytes:
    return HEADER.pack(VERSION, frame_type, flags, stream_id, length)
