"""The ``/tls/1.0.0`` secure channel after its handshake: :class:`TlsStream`, a ByteStream of
TLS 1.3 records over a raw ByteStream.

pyOpenSSL does the record layer through memory BIOs: plaintext goes in with ``send``,
ciphertext comes out of ``bio_read``; received ciphertext goes in with ``bio_write`` and
plaintext comes out of ``recv``. This class only moves bytes between those BIOs and the raw
stream. One ``SSL.Connection`` serves both directions; its calls never await, so a send
and a receive in two tasks interleave only at awaits on the raw stream, which is safe.
Ciphertext that the receiving side produces (a KeyUpdate reply) and what ``send`` produces
leave through one lock, so only one task ever writes to the raw stream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
from OpenSSL import SSL

from p2pstack.errors import RemoteProtocolError
from p2pstack.framing.views import byte_view
from p2pstack.identity import PeerID, PublicKey
from p2pstack.multistream import unwrap
from p2pstack.security.abc import SecureStream
from p2pstack.security.tls.records import (
    RecordBuffer,
    read_records,
    take,
    take_outgoing,
    take_view,
    write_all,
    write_incoming,
)
from p2pstack.security.tls.transport import PROTOCOL_ID

log = logging.getLogger(__name__)

#: Bytes asked of the raw stream per receive.
RECEIVE_SIZE = 256 * 1024
_RECORD = 16 * 1024  # the most plaintext one TLS record carries
#: Plaintext handed to OpenSSL per write: its records then go out in one raw send.
SEND_CHUNK = 256 * 1024
#: How long aclose() may spend sending close_notify.
CLOSE_TIMEOUT = 1.0


class TlsRecordError(RemoteProtocolError):
    """The peer sent a TLS record that failed (bad MAC, bad record, fatal alert)."""


class TlsStream(SecureStream):
    """A ByteStream over an established TLS 1.3 connection.

    ``receive`` returns up to ``max_bytes`` of plaintext; the peer's close_notify reads as
    ``EndOfStream``, and so does the raw stream ending without one (a truncation TLS would
    call an attack, but libp2p peers close that way, and the Noise stream reads it alike).
    A record that fails raises :class:`TlsRecordError` and breaks the stream.
    ``send`` encrypts and writes; cancelled mid-write, the stream is broken from then on.
    For a muxer's writer, ``send_nowait`` writes what the socket takes at once and keeps the
    rest (as ciphertext) for ``flush``; ``send_segments`` and ``send_segments_nowait`` take
    several buffers (frame headers, payloads kept by reference) and encrypt each from where
    it lies, without joining them first. ``send_eof`` sends close_notify and half-closes
    the raw stream; TLS 1.3 lets us go on reading. ``aclose`` sends close_notify
    (shielded, bounded) when it can, then closes the raw stream.
    """

    def __init__(
        self,
        raw: anyio.abc.ByteStream,
        conn: SSL.Connection,
        *,
        local_peer: PeerID,
        remote_public_key: PublicKey,
        early_muxer: str | None,
    ) -> None:
        self._raw = unwrap(raw)
        self._conn = conn
        self._send_guard = anyio.ResourceGuard("sending to")
        self._receive_guard = anyio.ResourceGuard("receiving from")
        self._write_lock = anyio.Lock()
        # ciphertext send_nowait() could not write yet; always written before anything newer
        self._unsent: bytearray | None = None
        self._view = memoryview(bytearray(RECEIVE_SIZE))  # receive_view()'s buffer
        self._records = RecordBuffer(self._view)
        self._try_send: Callable[[Any], int] | None = getattr(self._raw, "try_send", None)
        # ciphertext comes into this buffer (made on first use) when the raw stream can
        self._receive_into: Callable[[memoryview], Awaitable[int]] | None = getattr(
            self._raw, "receive_into", None
        )
        self._incoming: memoryview | None = None
        self._closed = False
        self._eof_sent = False
        self._eof_received = False
        self._send_broken = False
        self._receive_error: Exception | None = None
        self._bind_identity(
            self._raw,
            protocol_id=PROTOCOL_ID,
            local_peer=local_peer,
            remote_peer=PeerID.from_public_key(remote_public_key),
            remote_key=remote_public_key,
            muxer=early_muxer,
        )

    # ------------------------------------------------------------------ receiving

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return bytes(await self._receive(max(1, min(max_bytes, RECEIVE_SIZE))))

    async def receive_view(self) -> memoryview:
        """Up to RECEIVE_SIZE bytes of plaintext (never empty) as a view of a buffer that is
        reused by the next call; for a muxer that copies out what it keeps."""
        return await self._receive(RECEIVE_SIZE)

    async def _receive(self, limit: int) -> memoryview:
        """Decrypt into the reusable buffer: the first record that is ready, then every
        further one already buffered, up to ``limit`` bytes (OpenSSL hands out one record,
        at most 16 KiB, per read). An error or the end met after some plaintext is left
        for the next call to report."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        view = self._view
        with self._receive_guard:
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                if self._receive_error is not None:
                    raise self._receive_error
                if self._eof_received:
                    raise anyio.EndOfStream
                try:
                    total = read_records(self._conn, self._records, limit)
                except SSL.WantReadError:
                    pass
                except SSL.ZeroReturnError:
                    self._eof_received = True
                    continue
                except SSL.Error as exc:
                    self._receive_error = TlsRecordError(f"tls record failed: {exc}")
                    self._receive_error.__cause__ = exc
                    continue
                else:
                    return view[:total]
                await self._write_pending()
                try:
                    if self._receive_into is not None:
                        if self._incoming is None:
                            self._incoming = memoryview(bytearray(RECEIVE_SIZE))
                        n = await self._receive_into(self._incoming)
                        write_incoming(self._conn, self._incoming[:n])
                    else:
                        write_incoming(self._conn, await self._raw.receive(RECEIVE_SIZE))
                except anyio.EndOfStream:
                    log.debug("tls: raw stream ended without close_notify")
                    self._conn.bio_shutdown()
                    self._eof_received = True
                    continue

    async def _write_pending(self) -> None:
        """Write ciphertext the receiving side produced, if no send is under way (a send
        takes it along with its own)."""
        if self._write_lock.locked() or self._send_broken or self._closed:
            return
        out = take(self._conn)
        if out or self._unsent:
            async with self._write_lock:
                try:
                    await self._raw.send(self._take_unsent() + out)
                except anyio.get_cancelled_exc_class():
                    self._send_broken = True
                    raise

    def _take_unsent(self) -> bytes:
        """The unsent ciphertext, detached (send_nowait starts a new buffer): sent as it is,
        a bytearray, which every raw stream takes as bytes-like."""
        unsent, self._unsent = self._unsent, None
        return unsent if unsent else b""  # type: ignore[return-value]

    # ------------------------------------------------------------------ sending

    def _check_send(self) -> None:
        if self._closed or self._eof_sent:
            raise anyio.ClosedResourceError
        if self._send_broken:
            raise anyio.BrokenResourceError("an earlier send was interrupted mid-record")

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        """Encrypt and write ``item``. Cancelled before it starts, nothing is sent; cancelled
        while the raw stream is full, part of a record may have gone out and the stream is
        broken from then on."""
        await self.send_segments([item])

    async def send_segments(self, segments: list[Any]) -> None:
        """:meth:`send` for several buffers, one after the other (a muxer's frame headers
        and the payloads it keeps by reference), each encrypted from where it lies: no
        joined copy first. Same cancellation rule as :meth:`send`."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        with self._send_guard:
            self._check_send()
            async with self._write_lock:
                try:
                    if self._unsent:
                        await self._raw.send(self._take_unsent())
                    encrypted = 0
                    for segment in segments:
                        view = byte_view(segment)  # its bytes, not its items
                        while view:
                            self._check_send()
                            chunk = view[:SEND_CHUNK]
                            view = view[SEND_CHUNK:]
                            write_all(self._conn, chunk)
                            encrypted += len(chunk)
                            if encrypted >= SEND_CHUNK:
                                await self._send_ciphertext()
                                encrypted = 0
                    await self._send_ciphertext()
                except anyio.get_cancelled_exc_class():
                    self._send_broken = True
                    raise
                except SSL.Error as exc:
                    self._send_broken = True
                    raise anyio.BrokenResourceError(f"tls send failed: {exc}") from exc
                except anyio.BrokenResourceError:
                    self._send_broken = True
                    raise

    async def _send_ciphertext(self) -> None:
        """Write the ciphertext OpenSSL produced (the write lock is held): what the socket
        takes at once goes from the shared scratch buffer; only a remainder is copied."""
        out = take_view(self._conn)
        if not out:
            return
        sent = self._try_send(out) if self._try_send is not None else 0
        if sent < len(out):
            await self._raw.send(bytes(out[sent:]))
        else:
            await anyio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, data: bytes | bytearray | memoryview) -> bool:
        """Encrypt ``data`` and write what the socket accepts now, without waiting.
        Returns ``True`` when everything went out; else the rest waits for :meth:`flush`
        (or the next send), ahead of anything written later."""
        return self.send_segments_nowait([byte_view(data)])

    def send_segments_nowait(self, segments: list[Any]) -> bool:
        """:meth:`send_nowait` for several buffers (a muxer's frame headers and the
        payloads it keeps by reference), each encrypted from where it lies: no joined
        copy first."""
        self._check_send()
        try:
            for segment in segments:
                write_all(self._conn, segment)
        except SSL.Error as exc:
            self._send_broken = True
            raise anyio.BrokenResourceError(f"tls send failed: {exc}") from exc
        out = take_view(self._conn)  # used before any await: no copy unless kept
        if self._unsent is not None or self._write_lock.locked() or self._try_send is None:
            if self._unsent is None:
                self._unsent = bytearray()
            self._unsent += out
            return False
        sent = self._try_send(out)
        if sent == len(out):
            return True
        self._unsent = bytearray(out[sent:])
        return False

    @property
    def unsent(self) -> int:
        """Encrypted bytes :meth:`send_nowait` could not write yet."""
        return len(self._unsent) if self._unsent is not None else 0

    async def flush(self) -> None:
        """Write what :meth:`send_nowait` left over (same cancellation rule as send)."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        with self._send_guard:
            self._check_send()
            async with self._write_lock:
                if self._unsent:
                    try:
                        await self._raw.send(self._take_unsent())
                    except anyio.get_cancelled_exc_class():
                        self._send_broken = True
                        raise

    async def send_eof(self) -> None:
        """Send close_notify and half-close the raw stream; receiving goes on."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        with self._send_guard:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._eof_sent:
                return
            if self._send_broken:
                raise anyio.BrokenResourceError("an earlier send was interrupted mid-record")
            self._eof_sent = True
            async with self._write_lock:
                self._conn.shutdown()
                await self._raw.send(self._take_unsent() + take_outgoing(self._conn))
                await self._raw.send_eof()

    async def aclose(self) -> None:
        if self._closed:
            return
        graceful = not (self._eof_sent or self._send_broken or self._write_lock.locked())
        self._closed = True
        try:
            if graceful:
                with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    try:
                        self._conn.shutdown()
                        out = self._take_unsent() + take_outgoing(self._conn)
                        if out:
                            await self._raw.send(out)
                    except (
                        SSL.Error,
                        OSError,
                        anyio.BrokenResourceError,
                        anyio.ClosedResourceError,
                    ):
                        pass
        finally:
            await self._raw.aclose()
