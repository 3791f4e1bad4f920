"""``p2pstack.security.tls.records``: the copy-free path through pyOpenSSL's memory BIOs
(private cffi bindings) must behave exactly like the public methods it replaces, and the
internals it relies on must exist in the pinned pyOpenSSL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from OpenSSL import SSL

from p2pstack.identity import KeyPair
from p2pstack.security.tls import Tls, records
from p2pstack.security.tls.records import read_into, take, take_outgoing, write_all


@pytest.fixture(params=[True, False], ids=["fast", "public"])
def fast(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    monkeypatch.setattr(records, "FAST", request.param)
    yield request.param


def test_the_private_bindings_are_there() -> None:
    """A pyOpenSSL upgrade that moves these fails here, not silently slow."""
    assert records.FAST
    for name in ("SSL_read", "SSL_write", "BIO_read"):
        assert hasattr(SSL._lib, name)  # type: ignore[attr-defined]
    assert hasattr(SSL.Connection, "_raise_ssl_error")
    conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    assert hasattr(conn, "_ssl") and hasattr(conn, "_from_ssl")


def connected_pair() -> tuple[SSL.Connection, SSL.Connection]:
    client, _ = Tls(KeyPair.generate())._connection([])
    server, _ = Tls(KeyPair.generate())._connection([])
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
        server.bio_write(out[i : i + step])
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
