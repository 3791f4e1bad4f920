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
    and all(hasattr(_lib, name) for name in ("SSL_read", "SSL_write", "BIO_read"))
    and hasattr(SSL.Connection, "_raise_ssl_error")
)

#: Ciphertext taken out of the outgoing BIO per call.
_BIO_READ = 256 * 1024


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
    """One buffer per thread for :func:`take` (which never awaits, so streams can share)."""

    def __init__(self) -> None:
        self.buffer = bytearray(_BIO_READ)
        self.pointer = _ffi.from_buffer(self.buffer) if FAST else None


_scratch = _Scratch()


def take(conn: SSL.Connection) -> bytes:
    """All ciphertext waiting in ``conn``'s outgoing memory BIO (``b""`` when none)."""
    if not FAST:
        return take_outgoing(conn)
    bio = conn._from_ssl
    scratch = _scratch
    chunks: list[bytes] = []
    while True:
        n = _lib.BIO_read(bio, scratch.pointer, _BIO_READ)
        if n <= 0:
            break
        chunks.append(bytes(memoryview(scratch.buffer)[:n]))
        if n < _BIO_READ:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def take_outgoing(conn: SSL.Connection) -> bytes:
    """All ciphertext waiting in ``conn``'s outgoing memory BIO, with the public API."""
    chunks: list[bytes] = []
    while True:
        try:
            chunks.append(conn.bio_read(_BIO_READ))
        except SSL.WantReadError:
            break
    return b"".join(chunks)
