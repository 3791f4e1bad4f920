"""Noise transport messages (libp2p/specs noise/README.md): NoiseEncoder/NoiseDecoder, and
the NoiseStream shell that carries them over a byte stream.

Each message is a u16 big-endian length and a ChaCha20-Poly1305 ciphertext (at most 65535
bytes, 16 of them the tag); nonces are 4 zero bytes and a 64-bit little-endian counter.
"""

from __future__ import annotations

import math
import socket
import struct

import anyio
import anyio.abc
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import KeyPair
from p2pstack.security.noise import (
    Noise,
    NoiseDecoder,
    NoiseDecryptError,
    NoiseEncoder,
    NoiseStream,
)
from p2pstack.testing import memory_stream_pair, noise_stream_pair, tcp_stream_pair

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
MAX_MESSAGE = 65535
MAX_PLAINTEXT = MAX_MESSAGE - 16


def encode(encoder: NoiseEncoder, data: bytes) -> bytes:
    """A copy of ``encoder.encode(data)``, whose result is only valid until the next call."""
    return bytes(encoder.encode(data))


def split_frames(data: bytes | bytearray) -> list[bytes]:
    """The ciphertext of each u16-length-prefixed message in ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from(">H", data, pos)
        out.append(bytes(data[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    assert pos == len(data)
    return out


def decode_all(decoder: NoiseDecoder) -> list[bytes]:
    out = []
    while (plain := decoder.next_plaintext()) is not None:
        out.append(plain)
    return out


def pattern(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


@pytest.mark.parametrize("size", [0, 1, 65519, 65520, 1024 * 1024])
def test_round_trip_and_framing(size: int) -> None:
    data = pattern(size)
    wire = encode(NoiseEncoder(KEY), data)

    ciphertexts = split_frames(wire)
    plain_sizes = [MAX_PLAINTEXT] * (size // MAX_PLAINTEXT)
    if size % MAX_PLAINTEXT or size == 0:
        plain_sizes.append(size % MAX_PLAINTEXT)
    assert [len(c) for c in ciphertexts] == [n + 16 for n in plain_sizes]
    assert all(len(c) <= MAX_MESSAGE for c in ciphertexts)

    decoder = NoiseDecoder(KEY)
    decoder.feed(wire)
    plaintexts = decode_all(decoder)
    assert [len(p) for p in plaintexts] == plain_sizes
    assert b"".join(plaintexts) == data
    assert decoder.buffered == 0


def test_one_mebibyte_is_seventeen_messages() -> None:
    ciphertexts = split_frames(encode(NoiseEncoder(KEY), bytes(1024 * 1024)))
    assert len(ciphertexts) == 17
    assert [len(c) for c in ciphertexts[:16]] == [MAX_MESSAGE] * 16
    assert len(ciphertexts[16]) == 1024 * 1024 - 16 * MAX_PLAINTEXT + 16 == 288


def test_nonces_are_the_spec_counter() -> None:
    # Each message, also those one encode() call splits off, uses the next nonce.
    encoder = NoiseEncoder(KEY)
    wire = encode(encoder, pattern(MAX_PLAINTEXT + 10)) + encode(encoder, b"third")
    aead = ChaCha20Poly1305(KEY)
    plaintexts = [
        aead.decrypt(bytes(4) + struct.pack("<Q", n), ciphertext, None)
        for n, ciphertext in enumerate(split_frames(wire))
    ]
    long = pattern(MAX_PLAINTEXT + 10)
    assert plaintexts == [long[:MAX_PLAINTEXT], long[MAX_PLAINTEXT:], b"third"]


def test_byte_at_a_time_decoding() -> None:
    messages = [b"", b"x", pattern(300), pattern(MAX_PLAINTEXT)]
    encoder = NoiseEncoder(KEY)
    wire = b"".join(encode(encoder, m) for m in messages)
    decoder = NoiseDecoder(KEY)
    got = []
    for i in range(len(wire)):
        decoder.feed(wire[i : i + 1])
        got += decode_all(decoder)
    assert got == messages
    assert decoder.buffered == 0


def test_partial_message_stays_buffered() -> None:
    wire = encode(NoiseEncoder(KEY), b"hello")
    decoder = NoiseDecoder(KEY)
    decoder.feed(wire[:-1])
    assert decoder.next_plaintext() is None
    assert decoder.buffered == len(wire) - 1
    decoder.feed(wire[-1:])
    assert decoder.next_plaintext() == b"hello"


def test_more_than_the_buffer_fed_before_decoding() -> None:
    # A shell may hand over several MiB before it decodes anything.
    data = pattern(3 * 1024 * 1024 + 5)
    decoder = NoiseDecoder(KEY)
    decoder.feed(encode(NoiseEncoder(KEY), data))
    assert b"".join(decode_all(decoder)) == data
    assert decoder.buffered == 0


def test_receiving_into_the_writable_buffer() -> None:
    # The zero-copy path: receive_into(writable()), then wrote(n).
    encoder = NoiseEncoder(KEY)
    messages = [pattern(n) for n in (0, 7, MAX_PLAINTEXT, 1000, MAX_PLAINTEXT, 3)]
    wire = b"".join(encode(encoder, m) for m in messages)
    decoder = NoiseDecoder(KEY)
    got: list[bytes] = []
    pos = 0
    while pos < len(wire):
        space = decoder.writable()
        assert len(space) >= 4096  # room to receive, and for the rest of a partial message
        n = min(len(space), 40_000, len(wire) - pos)
        space[:n] = wire[pos : pos + n]
        decoder.wrote(n)
        pos += n
        got += decode_all(decoder)
    assert got == messages


@pytest.mark.parametrize("position", [2, 3, 10, -17, -1], ids=str)
def test_tampered_ciphertext_is_refused(position: int) -> None:
    wire = bytearray(encode(NoiseEncoder(KEY), b"attack at dawn"))
    wire[position] ^= 0x01  # the ciphertext body or its tag; the length is left alone
    decoder = NoiseDecoder(KEY)
    decoder.feed(wire)
    with pytest.raises(NoiseDecryptError) as info:
        decoder.next_plaintext()
    assert isinstance(info.value, RemoteProtocolError)


def test_wrong_key_is_refused() -> None:
    decoder = NoiseDecoder(OTHER_KEY)
    decoder.feed(encode(NoiseEncoder(KEY), b"secret"))
    with pytest.raises(NoiseDecryptError):
        decoder.next_plaintext()


@pytest.mark.parametrize("length", [0, 1, 15])
def test_message_shorter_than_the_tag_is_refused(length: int) -> None:
    decoder = NoiseDecoder(KEY)
    decoder.feed(struct.pack(">H", length) + bytes(length))
    with pytest.raises(NoiseDecryptError):
        decoder.next_plaintext()


def test_out_of_order_message_is_refused() -> None:
    encoder = NoiseEncoder(KEY)
    first, second = encode(encoder, b"first"), encode(encoder, b"second")
    decoder = NoiseDecoder(KEY)
    decoder.feed(second + first)
    with pytest.raises(NoiseDecryptError):
        decoder.next_plaintext()


def test_replayed_message_is_refused() -> None:
    first = encode(NoiseEncoder(KEY), b"first")
    decoder = NoiseDecoder(KEY)
    decoder.feed(first + first)
    assert decoder.next_plaintext() == b"first"
    with pytest.raises(NoiseDecryptError):
        decoder.next_plaintext()


def test_each_segment_is_sealed_into_messages_of_its_own() -> None:
    encoder = NoiseEncoder(KEY)
    big = pattern(MAX_PLAINTEXT + 10)
    encoder.append([b"head", b"", big, bytearray(b"tail")])
    wire = bytes(encoder.pending)
    assert [len(c) - 16 for c in split_frames(wire)] == [4, MAX_PLAINTEXT, 10, 4]
    decoder = NoiseDecoder(KEY)
    decoder.feed(wire)
    assert decode_all(decoder) == [b"head", big[:MAX_PLAINTEXT], big[MAX_PLAINTEXT:], b"tail"]


def test_pending_bytes_stay_until_consumed_across_appends() -> None:
    encoder = NoiseEncoder(KEY)
    decoder = NoiseDecoder(KEY)
    sent = bytearray()
    expected = []
    for i in range(200):  # enough to grow the buffer and to move the pending bytes often
        message = pattern(1000 + 997 * i % 70000)
        expected.append(message)
        encoder.append([message])
        # What a socket that takes a bit over half of what is offered would do.
        take = encoder.pending_bytes // 2 + 1
        sent += encoder.pending[:take]
        encoder.consumed(take)
    sent += encoder.pending
    encoder.consumed(encoder.pending_bytes)
    assert encoder.pending_bytes == 0
    decoder.feed(sent)
    plain = decode_all(decoder)
    assert b"".join(plain) == b"".join(expected)


def test_encode_matches_append() -> None:
    data = pattern(3 * MAX_PLAINTEXT)
    appended = NoiseEncoder(KEY)
    appended.append([data])
    assert encode(NoiseEncoder(KEY), data) == bytes(appended.pending)
    # An empty segment is one empty message only when asked for.
    assert len(encode(NoiseEncoder(KEY), b"")) == 2 + 16
    empty = NoiseEncoder(KEY)
    empty.append([b""])
    assert empty.pending_bytes == 0
    empty.append([b""], empty=True)
    assert empty.pending_bytes == 2 + 16


# ---------------------------------------------------------------------------- NoiseStream


async def secure_pair() -> tuple[NoiseStream, NoiseStream]:
    """A dialer and a listener NoiseStream over an in-memory pipe."""
    raw_dialer, raw_listener = memory_stream_pair(math.inf)
    dialer_key, listener_key = KeyPair.generate(), KeyPair.generate()
    streams: dict[str, NoiseStream] = {}

    async def accept() -> None:
        streams["listener"] = await Noise(listener_key).secure_inbound(raw_listener)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            streams["dialer"] = await Noise(dialer_key).secure_outbound(
                raw_dialer, listener_key.peer_id
            )
    assert streams["dialer"].remote_peer == listener_key.peer_id
    assert streams["listener"].remote_peer == dialer_key.peer_id
    return streams["dialer"], streams["listener"]


async def receive_exactly(stream: NoiseStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        data += await stream.receive()
    return bytes(data)


@pytest.mark.anyio
async def test_noise_stream_round_trip(anyio_backend: str) -> None:
    dialer, listener = await secure_pair()
    payload = pattern(1024 * 1024 + 3)
    with anyio.fail_after(10):
        await dialer.send(payload)
        assert await receive_exactly(listener, len(payload)) == payload
        await listener.send(b"reply")
        assert await dialer.receive(2) == b"re"  # max_bytes splits a message
        assert await dialer.receive() == b"ply"
        await dialer.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await listener.receive()


async def _send_raw_messages(dialer: NoiseStream, messages: list[bytes]) -> None:
    # What a peer's encoder would put on the wire, bypassing NoiseStream.send.
    encoder = dialer._encoder  # the dialer's own encoder keeps the nonces in step
    await dialer._raw.send(b"".join(encode(encoder, m) for m in messages))


@pytest.mark.anyio
async def test_noise_stream_skips_empty_messages(anyio_backend: str) -> None:
    dialer, listener = await secure_pair()
    with anyio.fail_after(5):
        await _send_raw_messages(dialer, [b"", b"", b"data", b"", b"more"])
        assert await listener.receive() == b"data"
        assert await listener.receive() == b"more"


@pytest.mark.anyio
async def test_noise_stream_skips_many_empty_messages(anyio_backend: str) -> None:
    dialer, listener = await secure_pair()
    with anyio.fail_after(5):
        await _send_raw_messages(dialer, [b""] * 5000 + [b"data"])
        assert await listener.receive() == b"data"


@pytest.mark.anyio
async def test_noise_stream_refuses_a_forged_message(anyio_backend: str) -> None:
    dialer, listener = await secure_pair()
    forged = encode(NoiseEncoder(OTHER_KEY), b"forged")
    with anyio.fail_after(5):
        await dialer._raw.send(forged)
        with pytest.raises(NoiseDecryptError):
            await listener.receive()


@pytest.mark.anyio
async def test_a_partly_written_send_keeps_the_rest_encrypted_once(anyio_backend: str) -> None:
    """send_segments_nowait() on a full socket writes what fits and keeps the rest as
    ciphertext (not sent twice, not re-encrypted); flush() writes it; the peer reads all
    of it in order."""
    async with tcp_stream_pair() as (raw_a, raw_b):
        for raw in (raw_a, raw_b):  # small buffers: the socket fills at once
            sock = raw.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        a, b = await noise_stream_pair(raw_a, raw_b)
        chunks = [pattern(200_000), bytes(range(256)) * 300, pattern(70_000)]
        assert not a.send_segments_nowait(chunks[:2])
        assert a.unsent > 0
        assert not a.send_segments_nowait(chunks[2:])  # behind the unsent bytes
        got = bytearray()

        async def read_all() -> None:
            while len(got) < sum(map(len, chunks)):
                got.extend(await b.receive())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read_all)
                await a.flush()
                assert a.unsent == 0
        assert bytes(got) == b"".join(chunks)
