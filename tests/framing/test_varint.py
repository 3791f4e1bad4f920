import pytest

from p2pstack.errors import LocalProtocolError, RemoteProtocolError
from p2pstack.framing.varint import MAX_UVARINT, decode_uvarint, encode_uvarint

VECTORS = [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (255, b"\xff\x01"),
    (300, b"\xac\x02"),
    (16384, b"\x80\x80\x01"),
    (2**63 - 1, b"\xff" * 8 + b"\x7f"),
]


@pytest.mark.parametrize(("value", "encoded"), VECTORS)
def test_vectors(value: int, encoded: bytes) -> None:
    assert encode_uvarint(value) == encoded
    assert decode_uvarint(encoded) == (value, len(encoded))


@pytest.mark.parametrize(("value", "encoded"), VECTORS)
def test_incomplete_prefixes_return_none(value: int, encoded: bytes) -> None:
    for cut in range(len(encoded)):
        assert decode_uvarint(encoded[:cut]) is None


def test_position_and_trailing_bytes() -> None:
    buf = b"junk" + encode_uvarint(300) + b"rest"
    assert decode_uvarint(buf, 4) == (300, 6)
    assert decode_uvarint(memoryview(buf), 4) == (300, 6)
    assert decode_uvarint(bytearray(buf), 4) == (300, 6)
    assert decode_uvarint(buf, len(buf)) is None


def test_roundtrip_many() -> None:
    for value in [*range(0, 70000, 7), 2**32, 2**56 - 1, 2**56, MAX_UVARINT]:
        encoded = encode_uvarint(value)
        assert decode_uvarint(encoded) == (value, len(encoded))


@pytest.mark.parametrize("bad", [b"\x80\x00", b"\xff\x00", b"\x81\x80\x00", b"\x80" * 8 + b"\x00"])
def test_non_minimal_refused(bad: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_uvarint(bad)


def test_too_long_refused_without_waiting() -> None:
    # The 9th byte still has the continuation bit: refused before a 10th byte arrives.
    with pytest.raises(RemoteProtocolError):
        decode_uvarint(b"\xff" * 9)
    with pytest.raises(RemoteProtocolError):
        decode_uvarint(b"\x80" * 9 + b"\x01")
    assert decode_uvarint(b"\xff" * 8) is None


@pytest.mark.parametrize("value", [-1, 2**63, 2**64])
def test_encode_out_of_range(value: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_uvarint(value)
