"""Noise transport messages after the handshake, sans-IO.

Each message is a u16 big-endian length and a ChaCha20-Poly1305 ciphertext (plaintext plus a
16-byte tag), at most 65535 bytes, so at most 65519 plaintext bytes per message. Nonces are
the Noise ones: 4 zero bytes and a 64-bit little-endian counter, one counter per direction.
We use the `cryptography` AEAD directly with the keys the handshake produced, encrypting
straight into the outgoing buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from p2pstack.errors import RemoteProtocolError

MAX_MESSAGE = 65535
TAG = 16
MAX_PLAINTEXT = MAX_MESSAGE - TAG
_NONCE = struct.Struct("<4xQ")
_LEN = struct.Struct(">H")
_MAX_NONCE = 2**64 - 1
#: A receive is offered at least this much room.
_MIN_FREE = 4096


class NoiseDecryptError(RemoteProtocolError):
    """A transport message failed authentication: corrupted, forged or out of order."""


class NoiseEncoder:
    """Encrypts plaintext into framed transport messages.

    The messages go into one reused buffer, which also keeps what the socket has not taken
    yet: :meth:`append` encrypts after what is pending, :attr:`pending` is a view of it all
    and :meth:`consumed` drops what went out. (A fresh buffer per write costs more than the
    encryption: large allocations come from the kernel page by page.) Each segment given to
    :meth:`append` is encrypted straight from the caller's buffer into its own messages.
    """

    __slots__ = ("_aead", "_buf", "_end", "_nonce", "_start", "_view")

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._nonce = 0
        self._buf = bytearray(0)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0

    def encode(self, data: bytes | bytearray | memoryview) -> memoryview:
        """The messages of ``data`` alone (any length, split at 65519 bytes; one empty
        message when ``data`` is empty), as a view valid until the next call. Only with
        nothing pending."""
        assert self._start == self._end, "encode() with bytes still pending"
        self._start = self._end = 0
        self._seal(memoryview(data), len(data), 1)
        view = self._view[: self._end]
        self._end = 0
        return view

    def append(
        self, segments: Iterable[bytes | bytearray | memoryview], *, empty: bool = False
    ) -> None:
        """Encrypt each segment into messages of its own, after what is pending. An empty
        segment makes one empty message when ``empty``, else none."""
        for segment in segments:
            total = len(segment)
            if total or empty:
                self._seal(memoryview(segment), total, 1)

    @property
    def pending(self) -> memoryview:
        """The messages not written yet (valid until the next :meth:`append`)."""
        return self._view[self._start : self._end]

    @property
    def pending_bytes(self) -> int:
        return self._end - self._start

    def write_with(self, try_send: Callable[[memoryview], int]) -> bool:
        """Offer the pending bytes to ``try_send`` (which returns how many it took);
        whether none are left."""
        start = self._start
        end = self._end
        n = try_send(self._view[start:end])
        if start + n >= end:
            self._start = self._end = 0
            return True
        self._start = start + n
        return False

    def consumed(self, n: int) -> None:
        """The first ``n`` pending bytes went out."""
        self._start += n
        if self._start >= self._end:
            self._start = self._end = 0

    def _room(self, size: int) -> None:
        """Make room for ``size`` more bytes after what is pending."""
        start = self._start
        pending = self._end - start
        length = len(self._buf)
        if pending + size <= length:
            # Same size: a slice assignment, allowed while views of the buffer exist (and
            # safe over itself: CPython copies a memoryview's bytes before assigning them).
            self._buf[:pending] = self._view[start : self._end]
        else:
            bigger = bytearray(max(pending + size, 2 * length))
            bigger[:pending] = self._view[start : self._end]
            self._buf = bigger
            self._view = memoryview(bigger)
        self._start = 0
        self._end = pending

    def _seal(self, src: memoryview, total: int, minimum: int) -> None:
        count = (total + MAX_PLAINTEXT - 1) // MAX_PLAINTEXT or minimum
        nonce = self._nonce
        if nonce + count > _MAX_NONCE:
            raise RemoteProtocolError("noise nonce exhausted")
        size = total + count * (2 + TAG)
        if self._end + size > len(self._buf):
            self._room(size)
        out = self._buf
        out_view = self._view
        encrypt_into = self._aead.encrypt_into
        pack_len = _LEN.pack_into
        pack_nonce = _NONCE.pack
        at = self._end
        pos = 0
        for _ in range(count):
            chunk = min(MAX_PLAINTEXT, total - pos)
            pack_len(out, at, chunk + TAG)
            encrypt_into(
                pack_nonce(nonce),
                src[pos : pos + chunk],
                None,
                out_view[at + 2 : at + 2 + chunk + TAG],
            )
            nonce += 1
            at += 2 + chunk + TAG
            pos += chunk
        self._nonce = nonce
        self._end = at


class NoiseDecoder:
    """Splits received bytes into transport messages and decrypts them.

    Received bytes live in one buffer: the shell receives straight into :meth:`writable`
    (then calls :meth:`wrote`), or hands over bytes with :meth:`feed`. Each message is
    decrypted from that buffer without a copy. The buffer starts small (an idle connection
    costs little memory) and doubles, up to ``max_buffer``, while receives keep filling it.
    """

    __slots__ = (
        "_aead",
        "_buf",
        "_end",
        "_max",
        "_nonce",
        "_offered",
        "_plain_view",
        "_start",
        "_view",
    )

    def __init__(self, key: bytes, initial_buffer: int = 16 * 1024, max_buffer: int = 1 << 20):
        self._aead = ChaCha20Poly1305(key)
        self._nonce = 0
        self._buf = bytearray(initial_buffer)
        self._view = memoryview(self._buf)
        self._max = max(max_buffer, 2 * (MAX_MESSAGE + 2))
        self._start = 0
        self._end = 0
        self._offered = 0
        self._plain_view = memoryview(bytearray(MAX_PLAINTEXT))

    def writable(self) -> memoryview:
        """Free space to receive into, enough to complete the message under way."""
        size = self._end - self._start
        buf = self._buf
        if size >= 2:
            needed = 2 + ((buf[self._start] << 8) | buf[self._start + 1])
        else:
            needed = 2
        free = len(buf) - self._end
        if free >= _MIN_FREE and free >= needed - size:
            view = self._view[self._end :]
            self._offered = len(view)
            return view
        length = len(buf)
        while length < needed or length - size < _MIN_FREE:
            length *= 2
        self._move_to_front(length)
        view = self._view[size:]
        self._offered = len(view)
        return view

    def wrote(self, n: int) -> None:
        self._end += n
        if n == self._offered and len(self._buf) < self._max:
            # The receive filled all we offered: more was probably waiting. Grow, so
            # that bulk transfers need fewer, larger receives.
            self._move_to_front(min(2 * len(self._buf), self._max))
        self._offered = 0

    def _move_to_front(self, length: int) -> None:
        """Put the unread bytes at the start of a buffer of ``length`` (a new one if the
        size changes)."""
        size = self._end - self._start
        if length != len(self._buf):
            bigger = bytearray(length)
            bigger[:size] = self._view[self._start : self._end]
            self._buf = bigger
            self._view = memoryview(bigger)
        else:
            # Safe when the regions overlap: CPython copies a memoryview's bytes before
            # assigning them into a bytearray.
            self._buf[:size] = self._view[self._start : self._end]
        self._start = 0
        self._end = size

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            space = self.writable()
            n = min(len(space), len(view))
            space[:n] = view[:n]
            self.wrote(n)
            view = view[n:]

    def _next_message(self) -> tuple[int, int] | None:
        """(start, length) of the next whole ciphertext in the buffer, consuming it."""
        start = self._start
        available = self._end - start
        if available < 2:
            return None
        buf = self._buf
        length = (buf[start] << 8) | buf[start + 1]
        if available < 2 + length:
            return None
        if length < TAG:
            raise NoiseDecryptError(f"noise message of {length} bytes is shorter than its tag")
        end = start + 2 + length
        if end == self._end:
            self._start = self._end = 0
        else:
            self._start = end
        return start + 2, length

    def next_plaintext(self) -> bytes | None:
        """Decrypt the next whole message, or ``None`` until one has arrived."""
        found = self._next_message()
        if found is None:
            return None
        start, length = found
        # The buffer is only written to by writable()/feed(), after this returns.
        try:
            plain = self._aead.decrypt(
                _NONCE.pack(self._nonce), self._view[start : start + length], None
            )
        except InvalidTag:
            raise NoiseDecryptError("noise message failed authentication") from None
        self._nonce += 1
        return plain

    def next_plaintext_view(self) -> memoryview | None:
        """Like :meth:`next_plaintext`, but decrypted into a reused buffer: the view stays
        valid until the next call. Nothing is allocated, and the plaintext lands in memory
        the cache already holds, which is what makes the bulk path fast."""
        found = self._next_message()
        if found is None:
            return None
        start, length = found
        size = length - TAG
        try:
            self._aead.decrypt_into(
                _NONCE.pack(self._nonce),
                self._view[start : start + length],
                None,
                self._plain_view[:size],
            )
        except InvalidTag:
            raise NoiseDecryptError("noise message failed authentication") from None
        self._nonce += 1
        return self._plain_view[:size]

    @property
    def buffered(self) -> int:
        return self._end - self._start
