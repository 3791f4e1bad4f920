"""``p2pstack.security.tls.records``: the copy-free path through pyOpenSSL's memory BIOs
(private cffi bindings) must behave exactly like the public methods it replaces, and the
internals it relies on must exist in the pinned pyOpenSSL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from OpenSSL import SSL

from p2pstack.identity import KeyPair
from p2pstack.security.tls import records
from p2pstack.security.tls.handshake import make_context, new_connection
from p2pstack.security.tls.records import (
    RecordBuffer,
    read_into,
    read_records,
    take,
    take_outgoing,
    take_view,
    write_all,
    write_incoming,
)


@pytest.fixture(params=[True, False], ids=["fast", "public"])
def fast(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    monkeypatch.setattr(records, "FAST", request.param)
    yield request.param


def test_the_private_bindings_are_there() -> None:
    """A pyOpenSSL upgrade that moves these fails here, not silently slow."""
    assert records.FAST
    for name in ("SSL_read", "SSL_write", "BIO_read", "BIO_write"):
        assert hasattr(SSL._lib, name)  # type: ignore[attr-defined]
    assert hasattr(SSL.Connection, "_raise_ssl_error")
    assert hasattr(SSL.Connection, "_handle_bio_errors")
    conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    assert hasattr(conn, "_ssl") and hasattr(conn, "_from_ssl") and hasattr(conn, "_into_ssl")


def connected_pair() -> tuple[SSL.Connection, SSL.Connection]:
    client, _ = new_connection(make_context(KeyPair.generate()), [])
    server, _ = new_connection(make_context(KeyPair.generate()), [])
    client.set_connect_state()
    server.set_accept_state()
    for _ in range(10):
        for a, b in ((client, server), (server, client)):
            try:
                a.do_handshake()
            except SSL.WantReadError:
                pass
            out = take_outgoing(a)
            if out:
                b.bio_write(out)
    # the client's last flight (its Finished) must have reached the server
    return client, server


def drain(conn: SSL.Connection, view: memoryview) -> bytes:
    got = bytearray()
    while True:
        try:
            n = read_into(conn, view, 16384)
        except SSL.WantReadError:
            return bytes(got)
        got += view[:n]


@pytest.mark.parametrize("length", [1, 16384, 16385, 300_000])
def test_roundtrip(fast: bool, length: int) -> None:
    client, server = connected_pair()
    data = os.urandom(length)
    write_all(client, memoryview(data))
    out = take(client)
    assert out and take(client) == b""  # all of it came out the first time
    # fed in small pieces (a byte at a time at first), nothing is readable until a whole
    # record is there, and the plaintext comes out whole
    view = memoryview(bytearray(20000))
    with pytest.raises(SSL.WantReadError):
        read_into(server, view, 16384)
    got = bytearray()
    i = 0
    while i < len(out):
        step = 1 if i < 64 else 997
        write_incoming(server, memoryview(out)[i : i + step])
        i += step
        got += drain(server, view)
    assert bytes(got) == data


def test_close_notify_and_bad_records(fast: bool) -> None:
    client, server = connected_pair()
    client.shutdown()
    server.bio_write(take(client))
    with pytest.raises(SSL.ZeroReturnError):
        read_into(server, memoryview(bytearray(100)), 100)

    client, server = connected_pair()
    write_all(client, b"secret")
    record = bytearray(take(client))
    record[-1] ^= 1  # break the record's authentication tag
    server.bio_write(bytes(record))
    with pytest.raises(SSL.Error) as info:
        read_into(server, memoryview(bytearray(100)), 100)
    assert not isinstance(info.value, SSL.WantReadError | SSL.ZeroReturnError)


def test_take_on_an_empty_bio(fast: bool) -> None:
    client, _ = connected_pair()
    take(client)
    assert take(client) == b""
    assert take_outgoing(client) == b""


@pytest.mark.parametrize("limit", [1, 16384, 100_000, 1 << 20])
def test_read_records_takes_every_whole_record(fast: bool, limit: int) -> None:
    """Several records in one call, up to the limit (and the buffer); an empty BIO, the
    end and a bad record raise as recv_into does, but only when nothing came out."""
    client, server = connected_pair()
    data = os.urandom(300_000)
    write_all(client, data)
    write_incoming(server, take(client))
    buffer = RecordBuffer(memoryview(bytearray(200_000)))
    got = bytearray()
    while len(got) < len(data):
        n = read_records(server, buffer, limit)
        assert 0 < n <= min(limit, 200_000)
        got += buffer.view[:n]
    assert bytes(got) == data
    with pytest.raises(SSL.WantReadError):
        read_records(server, buffer, limit)
    write_all(client, b"last words")
    client.shutdown()
    write_incoming(server, take(client))
    n = read_records(server, buffer, limit)  # the data first; the end is kept for later
    assert bytes(buffer.view[:n]) == b"last words"[:n]
    if n == len(b"last words"):
        with pytest.raises(SSL.ZeroReturnError):
            read_records(server, buffer, limit)


def test_take_view_is_a_view_until_the_next_take(fast: bool) -> None:
    """take_view hands out the scratch buffer (no copy); take copies. A send bigger than the
    scratch buffer still comes out whole."""
    client, server = connected_pair()
    for size in (10, 300_000, 3_000_000):
        data = os.urandom(size)
        write_all(client, data)
        out = take_view(client)
        kept = bytes(out)
        write_incoming(server, kept)
        assert drain(server, memoryview(bytearray(1 << 20))) == data
    write_all(client, b"abc")
    copied = take(client)
    write_all(client, b"defgh")
    take_view(client)  # overwrites the scratch buffer, not the copy
    write_incoming(server, copied)
    assert drain(server, memoryview(bytearray(100))) == b"abc"
