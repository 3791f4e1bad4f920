"""Moving bytes through pyOpenSSL's memory BIOs without its per-call copies.

pyOpenSSL's ``recv_into`` allocates (and zeroes) a fresh buffer for every record and copies
it into ours; ``bio_read`` zeroes a buffer of the size asked for, and every empty read
raises an exception. At TLS's 16 KiB records that was most of the channel's cost. These
functions call the same OpenSSL functions on our own buffers through pyOpenSSL's cffi
bindings (``SSL._lib``/``SSL._ffi``, private), and report errors through pyOpenSSL's own
``_raise_ssl_error``, so they raise exactly what the public methods raise. When those
internals are missing (another pyOpenSSL), they fall back to the public methods.
``tests/security/test_tls_records.py`` checks both paths and the internals they use.
"""

from __future__ import annotations

import threading
from typing import Any

from OpenSSL import SSL

_lib: Any = getattr(SSL, "_lib", None)
_ffi: Any = getattr(SSL, "_ffi", None)
FAST = (
    _lib is not None
    and _ffi is not None
    and all(hasattr(_lib, name) for name in ("SSL_read", "SSL_write", "BIO_read", "BIO_write"))
    and all(hasattr(SSL.Connection, name) for name in ("_raise_ssl_error", "_handle_bio_errors"))
)

#: Ciphertext taken out of the outgoing BIO per call (public API).
_BIO_READ = 256 * 1024
#: The per-thread buffer that ciphertext is read into: more than one send's worth (256 KiB
#: of plaintext), so that a send comes out in one read.
_SCRATCH = 1024 * 1024


def read_into(conn: SSL.Connection, view: memoryview, size: int) -> int:
    """Decrypt up to ``size`` bytes of plaintext into ``view`` (one record's worth at most,
    as ``SSL_read`` gives). Raises what ``Connection.recv_into`` raises: ``WantReadError``
    when no whole record is buffered, ``ZeroReturnError`` at close_notify, ``Error``."""
    if not FAST:
        return int(conn.recv_into(view, size))
    ssl = conn._ssl
    n = _lib.SSL_read(ssl, _ffi.from_buffer(view, require_writable=True), min(size, len(view)))
    if n <= 0:
        conn._raise_ssl_error(ssl, n)
    return int(n)


class RecordBuffer:
    """A plaintext buffer for :func:`read_records`, with its C pointer made once."""

    __slots__ = ("pointer", "view")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.pointer = _ffi.from_buffer(view, require_writable=True) if FAST else None


def read_records(conn: SSL.Connection, buffer: RecordBuffer, limit: int) -> int:
    """Decrypt into ``buffer`` every whole record buffered in ``conn``, up to ``limit``
    bytes of plaintext (``SSL_read`` hands out one record per call). Returns the count,
    never 0. Raises what ``recv_into`` raises when not even one record's plaintext came
    out; an error met after some plaintext is left for the next call to raise."""
    limit = min(limit, len(buffer.view))
    if not FAST:
        total = read_into(conn, buffer.view, limit)
        while total < limit:
            try:
                total += read_into(conn, buffer.view[total:], limit - total)
            except SSL.Error:
                break
        return total
    ssl = conn._ssl
    pointer: Any = buffer.pointer
    total = 0
    while total < limit:
        n = _lib.SSL_read(ssl, pointer + total, limit - total)
        if n <= 0:
            if not total:
                conn._raise_ssl_error(ssl, n)
                raise SSL.Error(f"SSL_read returned {n}")  # not reached: it raised
            try:  # clears OpenSSL's error queue; the next call meets the error again
                conn._raise_ssl_error(ssl, n)
            except SSL.Error:
                pass
            break
        total += n
    return total


def write_incoming(conn: SSL.Connection, data: bytes | bytearray | memoryview) -> None:
    """Hand received ciphertext to ``conn``'s incoming memory BIO (``Connection.bio_write``,
    which would first copy a memoryview into bytes)."""
    if not FAST:
        conn.bio_write(bytes(data))
        return
    length = len(data)
    if not length:
        return
    n = _lib.BIO_write(conn._into_ssl, _ffi.from_buffer(data), length)
    if n != length:  # a memory BIO takes everything unless out of memory
        conn._handle_bio_errors(conn._into_ssl, n)
        raise SSL.Error(f"BIO_write took {n} of {length} bytes")


def write_all(conn: SSL.Connection, data: bytes | bytearray | memoryview) -> None:
    """Encrypt all of ``data`` into the outgoing BIO (``Connection.sendall``)."""
    if not FAST:
        conn.sendall(data)
        return
    ssl = conn._ssl
    length = len(data)
    if not length:
        return
    pointer = _ffi.from_buffer(data)
    offset = 0
    while offset < length:
        n = _lib.SSL_write(ssl, pointer + offset, min(length - offset, 1 << 30))
        if n <= 0:
            conn._raise_ssl_error(ssl, n)
        offset += n


class _Scratch(threading.local):
    """One buffer per thread for :func:`take` and :func:`take_view` (which never await, so
    streams can share it)."""

    def __init__(self) -> None:
        self.buffer = bytearray(_SCRATCH)
        self.view = memoryview(self.buffer)
        self.pointer = _ffi.from_buffer(self.buffer) if FAST else None


_scratch = _Scratch()


def take_view(conn: SSL.Connection) -> bytes | memoryview:
    """All ciphertext waiting in ``conn``'s outgoing memory BIO; a view of a per-thread
    buffer that the next ``take``/``take_view`` in this thread overwrites, so use it before
    any await (:func:`take` makes a copy to keep)."""
    if not FAST:
        return take_outgoing(conn)
    bio = conn._from_ssl
    scratch = _scratch
    n = _lib.BIO_read(bio, scratch.pointer, _SCRATCH)
    if n <= 0:
        return b""
    if n < _SCRATCH:
        return scratch.view[:n]
    chunks = [bytes(scratch.view)]  # more than the buffer holds: rare, and copied
    while (n := _lib.BIO_read(bio, scratch.pointer, _SCRATCH)) > 0:
        chunks.append(bytes(scratch.view[:n]))
    return b"".join(chunks)


def take(conn: SSL.Connection) -> bytes:
    """All ciphertext waiting in ``conn``'s outgoing memory BIO (``b""`` when none)."""
    return bytes(take_view(conn))


def take_outgoing(conn: SSL.Connection) -> bytes:
    """All ciphertext waiting in ``conn``'s outgoing memory BIO, with the public API."""
    chunks: list[bytes] = []
    while True:
        try:
            chunks.append(conn.bio_read(_BIO_READ))
        except SSL.WantReadError:
            break
    return b"".join(chunks)
