"""The yamux frame header codec against libp2p/specs yamux/README.md."""

import pytest

from p2pstack.muxer.yamux.frame import (
    ALL_FLAGS,
    DEFAULT_MAX_FRAME_DATA,
    HEADER,
    HEADER_SIZE,
    INITIAL_WINDOW,
    MAX_WINDOW,
    VERSION,
    Flag,
    FrameType,
    GoAwayCode,
    encode_header,
)
from p2pstack.security.noise.transport import MAX_PLAINTEXT


def decode_header(data: bytes) -> tuple[int, int, int, int, int]:
    version, ftype, flags, sid, length = HEADER.unpack(data)
    return version, ftype, flags, sid, length


def test_constants_are_the_spec_values() -> None:
    assert HEADER_SIZE == 12
    assert VERSION == 0
    assert INITIAL_WINDOW == 262144
    assert MAX_WINDOW == 16 * 1024 * 1024  # go-yamux's default
    assert [int(t) for t in FrameType] == [0, 1, 2, 3]
    assert [FrameType.DATA, FrameType.WINDOW_UPDATE, FrameType.PING, FrameType.GO_AWAY] == [
        0,
        1,
        2,
        3,
    ]
    assert (Flag.SYN, Flag.ACK, Flag.FIN, Flag.RST) == (1, 2, 4, 8)
    assert ALL_FLAGS == 0xF
    assert (GoAwayCode.NORMAL, GoAwayCode.PROTOCOL_ERROR, GoAwayCode.INTERNAL_ERROR) == (0, 1, 2)


def test_one_full_data_frame_fits_one_noise_message() -> None:
    assert DEFAULT_MAX_FRAME_DATA + HEADER_SIZE == MAX_PLAINTEXT == 65519


def test_header_bytes_are_big_endian() -> None:
    # A stream opening (WindowUpdate + SYN) on stream 1 and a GoAway(protocol error).
    assert encode_header(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0) == bytes.fromhex(
        "00 01 0001 00000001 00000000"
    )
    assert encode_header(FrameType.GO_AWAY, 0, 0, GoAwayCode.PROTOCOL_ERROR) == bytes.fromhex(
        "00 03 0000 00000000 00000001"
    )
    assert encode_header(FrameType.DATA, Flag.FIN | Flag.ACK, 0x01020304, 0x0A0B0C0D) == (
        bytes.fromhex("00 00 0006 01020304 0a0b0c0d")
    )


@pytest.mark.parametrize(
    ("ftype", "flags", "sid", "length"),
    [
        (FrameType.DATA, 0, 1, 0),
        (FrameType.DATA, Flag.SYN, 3, INITIAL_WINDOW),
        (FrameType.WINDOW_UPDATE, Flag.ACK, 2, 0),
        (FrameType.WINDOW_UPDATE, Flag.FIN | Flag.RST, 0xFFFFFFFF, 0xFFFFFFFF),
        (FrameType.PING, Flag.SYN, 0, 0xDEADBEEF),
        (FrameType.PING, Flag.ACK, 0, 1),
        (FrameType.GO_AWAY, 0, 0, GoAwayCode.INTERNAL_ERROR),
        (0xFF, 0xFFFF, 7, 9),  # the codec itself does not judge; the session does
    ],
)
def test_round_trip(ftype: int, flags: int, sid: int, length: int) -> None:
    encoded = encode_header(ftype, flags, sid, length)
    assert len(encoded) == HEADER_SIZE
    assert decode_header(encoded) == (VERSION, ftype, flags, sid, length)
