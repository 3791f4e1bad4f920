import pytest

from p2pstack.errors import MessageTooLarge, RemoteProtocolError
from p2pstack.framing.length_prefixed import LengthPrefixedDecoder, encode_length_prefixed


def test_encode() -> None:
    assert encode_length_prefixed(b"") == b"\x00"
    assert encode_length_prefixed(b"abc") == b"\x03abc"
    assert encode_length_prefixed(b"x" * 200) == b"\xc8\x01" + b"x" * 200
    assert encode_length_prefixed(memoryview(b"ab")) == b"\x02ab"


MESSAGES = [b"", b"a", b"hello", b"x" * 300, b"\x00\n" * 70]
STREAM = b"".join(encode_length_prefixed(m) for m in MESSAGES)


def drain(decoder: LengthPrefixedDecoder) -> list[bytes]:
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    return out


def test_all_at_once() -> None:
    decoder = LengthPrefixedDecoder(max_size=1000)
    decoder.feed(STREAM + b"tail")
    assert drain(decoder) == MESSAGES
    assert decoder.unconsumed() == b"tail"
    assert len(decoder) == 4


def test_byte_at_a_time() -> None:
    decoder = LengthPrefixedDecoder(max_size=1000)
    got: list[bytes] = []
    for i in range(len(STREAM)):
        decoder.feed(STREAM[i : i + 1])
        got += drain(decoder)
    assert got == MESSAGES
    assert decoder.unconsumed() == b""


def test_partial_message_kept() -> None:
    decoder = LengthPrefixedDecoder(max_size=10)
    decoder.feed(b"\x05ab")
    assert decoder.next_message() is None
    assert decoder.unconsumed() == b"\x05ab"
    decoder.feed(b"cde\x02")
    assert decoder.next_message() == b"abcde"
    assert decoder.next_message() is None
    assert decoder.unconsumed() == b"\x02"


def test_limit_is_inclusive() -> None:
    decoder = LengthPrefixedDecoder(max_size=5)
    decoder.feed(encode_length_prefixed(b"12345"))
    assert decoder.next_message() == b"12345"


def test_too_large_refused_before_body() -> None:
    decoder = LengthPrefixedDecoder(max_size=1024)
    decoder.feed(b"\x81\x08")  # 1025, no body yet
    with pytest.raises(MessageTooLarge):
        decoder.next_message()
    assert issubclass(MessageTooLarge, RemoteProtocolError)


def test_bad_prefix() -> None:
    decoder = LengthPrefixedDecoder(max_size=1024)
    decoder.feed(b"\x80\x00")
    with pytest.raises(RemoteProtocolError):
        decoder.next_message()
