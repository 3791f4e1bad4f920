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
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
from OpenSSL import SSL

from p2pstack.attributes import P2PAttribute
from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import PeerID, PublicKey
from p2pstack.multistream import unwrap
from p2pstack.security.abc import SecureStream

log = logging.getLogger(__name__)

PROTOCOL_ID = "/tls/1.0.0"
#: Bytes asked of the raw stream per receive.
RECEIVE_SIZE = 256 * 1024
_RECORD = 16 * 1024  # the most plaintext one TLS record carries
#: Plaintext handed to OpenSSL per write: its records then go out in one raw send.
SEND_CHUNK = 256 * 1024
#: Ciphertext taken out of the outgoing BIO per call.
_BIO_READ = 1024 * 1024
#: How long aclose() may spend sending close_notify.
CLOSE_TIMEOUT = 1.0


class TlsRecordError(RemoteProtocolError):
    """The peer sent a TLS record that failed (bad MAC, bad record, fatal alert)."""


def take_outgoing(conn: SSL.Connection) -> bytes:
    """All ciphertext waiting in ``conn``'s outgoing memory BIO."""
    chunks: list[bytes] = []
    while True:
        try:
            chunks.append(conn.bio_read(_BIO_READ))
        except SSL.WantReadError:
            break
    return b"".join(chunks)


class TlsStream(SecureStream):
    """A ByteStream over an established TLS 1.3 connection.

    ``receive`` returns up to ``max_bytes`` of plaintext; the peer's close_notify reads as
    ``EndOfStream``, and so does the raw stream ending without one (a truncation TLS would
    call an attack, but libp2p peers close that way, and the Noise stream reads it alike).
    A record that fails raises :class:`TlsRecordError` and breaks the stream.
    ``send`` encrypts and writes; cancelled mid-write, the stream is broken from then on.
    ``send_eof`` sends close_notify and half-closes the raw stream; TLS 1.3 lets us go on
    reading. ``aclose`` sends close_notify (shielded, bounded) when it can, then closes the
    raw stream.
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
        self._remote_key = remote_public_key
        self._remote_peer = PeerID.from_public_key(remote_public_key)
        self._muxer = early_muxer
        self._send_guard = anyio.ResourceGuard("sending to")
        self._receive_guard = anyio.ResourceGuard("receiving from")
        self._write_lock = anyio.Lock()
        self._closed = False
        self._eof_sent = False
        self._eof_received = False
        self._send_broken = False
        self._receive_error: Exception | None = None
        attrs: dict[Any, Callable[[], Any]] = {**self._raw.extra_attributes}
        attrs[P2PAttribute.remote_peer] = lambda: self._remote_peer
        attrs[P2PAttribute.remote_public_key] = lambda: self._remote_key
        attrs[P2PAttribute.local_peer] = lambda: local_peer
        attrs[P2PAttribute.security_protocol] = lambda: PROTOCOL_ID
        self._attrs = attrs

    @property
    def remote_peer(self) -> PeerID:
        return self._remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        return self._remote_key

    @property
    def early_muxer(self) -> str | None:
        return self._muxer

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._attrs

    # ------------------------------------------------------------------ receiving

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint_if_cancelled()
        with self._receive_guard:
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                if self._receive_error is not None:
                    raise self._receive_error
                if self._eof_received:
                    raise anyio.EndOfStream
                try:
                    data = self._conn.recv(min(max_bytes, _RECORD))
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
                    if data:
                        return self._more_records(data, max_bytes)
                    continue
                await self._write_pending()
                try:
                    incoming = await self._raw.receive(RECEIVE_SIZE)
                except anyio.EndOfStream:
                    log.debug("tls: raw stream ended without close_notify")
                    self._conn.bio_shutdown()
                    self._eof_received = True
                    continue
                self._conn.bio_write(incoming)

    def _more_records(self, first: bytes, max_bytes: int) -> bytes:
        """``first`` plus the plaintext of records already buffered, up to ``max_bytes``:
        OpenSSL hands out one record (at most 16 KiB) per read, and a caller that asked for
        more is better served by one larger piece than by many calls. An error or the end
        met here is left for the next call to report."""
        parts = [first]
        total = len(first)
        while total < max_bytes:
            try:
                more = self._conn.recv(min(max_bytes - total, _RECORD))
            except SSL.Error:  # WantRead (nothing buffered), ZeroReturn or a bad record
                break
            if not more:
                break
            parts.append(more)
            total += len(more)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _write_pending(self) -> None:
        """Write ciphertext the receiving side produced, if no send is under way (a send
        takes it along with its own)."""
        if self._write_lock.locked() or self._send_broken or self._closed:
            return
        out = take_outgoing(self._conn)
        if out:
            async with self._write_lock:
                try:
                    await self._raw.send(out)
                except anyio.get_cancelled_exc_class():
                    self._send_broken = True
                    raise

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
        await anyio.lowlevel.checkpoint_if_cancelled()
        with self._send_guard:
            self._check_send()
            view = memoryview(item)
            async with self._write_lock:
                try:
                    while True:
                        self._check_send()
                        chunk = view[:SEND_CHUNK]
                        view = view[SEND_CHUNK:]
                        if chunk:
                            self._conn.sendall(chunk)
                        out = take_outgoing(self._conn)
                        if out:
                            await self._raw.send(out)
                        if not view:
                            return
                except anyio.get_cancelled_exc_class():
                    self._send_broken = True
                    raise
                except SSL.Error as exc:
                    self._send_broken = True
                    raise anyio.BrokenResourceError(f"tls send failed: {exc}") from exc
                except anyio.BrokenResourceError:
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
                await self._raw.send(take_outgoing(self._conn))
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
                        out = take_outgoing(self._conn)
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
