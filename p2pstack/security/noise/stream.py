"""The Noise secure channel's anyio shell: :class:`Noise` runs the handshake over a raw
ByteStream and returns a :class:`NoiseStream`."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.abc

from p2pstack.errors import HandshakeError
from p2pstack.identity import KeyPair, PeerID
from p2pstack.multistream import unwrap
from p2pstack.security.abc import SecureStream, SecureTransport
from p2pstack.security.noise.handshake import (
    NoiseHandshake,
    StaticKey,
    encode_payload,
)
from p2pstack.security.noise.transport import NoiseDecoder, NoiseEncoder

PROTOCOL_ID = "/noise"
RECEIVE_SIZE = 256 * 1024


class NoiseStream(SecureStream):
    """A ByteStream of Noise transport messages over ``raw``.

    ``send`` encrypts into as many 65535-byte messages as needed and writes them at once.
    ``receive`` returns the plaintext of one message (or part of it, up to ``max_bytes``).
    A message that fails authentication raises ``NoiseDecryptError`` (a
    ``RemoteProtocolError``); the stream is then unusable and should be closed.
    ``send_eof`` half-closes the raw stream; ``aclose`` closes it.

    For a muxer's writer there is also a non-blocking path: :meth:`send_nowait` encrypts
    and writes what the socket takes at once, keeping the rest (as ciphertext, in the
    encoder's buffer) for :meth:`flush`; while a ``send`` writes, it raises
    ``BusyResourceError``.
    :meth:`send_segments` and :meth:`send_segments_nowait` take several buffers and seal
    each into messages of its own, straight from the caller's memory: a muxer passes its
    frame headers and its payloads apart, and the peer can then take a payload's message
    as the payload itself.
    """

    def __init__(self, raw: anyio.abc.ByteStream, handshake: NoiseHandshake) -> None:
        assert handshake.complete and handshake.remote_peer and handshake.remote_public_key
        raw = unwrap(raw)
        self._raw = raw
        self._receive_into = getattr(raw, "receive_into", None)
        self._try_send = getattr(raw, "try_send", None)
        self._receive_into_nowait = getattr(raw, "receive_into_nowait", None)
        self._raw_wait_readable = getattr(raw, "wait_readable", None)
        #: Whether :meth:`receive_nowait`, :meth:`wait_readable` and
        #: :meth:`interrupt_wait` work (the raw stream can receive without waiting, and
        #: wait apart from receiving).
        self.pollable = (
            self._receive_into_nowait is not None
            and self._raw_wait_readable is not None
            and hasattr(raw, "interrupt_wait")
        )
        # The last receive took less than it was offered: the socket is most likely empty.
        self._drained = False
        self._encoder = NoiseEncoder(handshake.send_key)
        self._decoder = NoiseDecoder(handshake.receive_key)
        self._decoder.feed(handshake.unconsumed())
        self._pending = b""
        self._send_broken = False
        self._writing = False  # a send or flush is writing the encoder's pending bytes
        self._send_guard = anyio.ResourceGuard("sending to")
        self._bind_identity(
            raw,
            protocol_id=PROTOCOL_ID,
            local_peer=handshake.identity.peer_id,
            remote_peer=handshake.remote_peer,
            remote_key=handshake.remote_public_key,
            muxer=handshake.muxer,
        )

    async def _read_more(self) -> None:
        """Receive whatever the raw stream has into the decoder."""
        decoder = self._decoder
        if self._receive_into is not None:
            decoder.wrote(await self._receive_into(decoder.writable()))
        else:
            decoder.feed(await self._raw.receive(RECEIVE_SIZE))

    async def receive(self, max_bytes: int = 65536) -> bytes:
        pending = self._pending
        if not pending:
            while True:
                plain = self._decoder.next_plaintext()
                if plain:  # an empty message carries nothing: read on
                    pending = plain
                    break
                if plain is None:
                    await self._read_more()
        if len(pending) > max_bytes:
            self._pending = pending[max_bytes:]
            return pending[:max_bytes]
        self._pending = b""
        return pending

    async def receive_view(self) -> memoryview:
        """The next message's plaintext (never empty) as a view that stays valid only until
        the next call; for a muxer that copies out what it keeps. Not to be mixed with
        :meth:`receive` while that holds a partial message."""
        while True:
            plain = self._decoder.next_plaintext_view()
            if plain:
                return plain
            if plain is None:
                await self._read_more()

    def receive_nowait(self) -> bytes | None:
        """The next whole message's plaintext (never empty) as a new ``bytes`` object, or
        ``None`` when none has arrived yet; then :meth:`wait_readable` before asking again.
        Only when :attr:`pollable`. EOF raises ``EndOfStream``; a message that fails
        authentication raises ``NoiseDecryptError``. Not to be mixed with :meth:`receive`
        while that holds a partial message."""
        decoder = self._decoder
        receive_nowait = self._receive_into_nowait
        assert receive_nowait is not None
        while True:
            plain = decoder.next_plaintext()
            if plain:
                return plain
            if plain is None:
                if self._drained:
                    # Skip a receive that would almost surely find nothing (a syscall):
                    # the caller waits for readability, after which we receive again.
                    return None
                space = decoder.writable()
                n = receive_nowait(space)
                if not n:
                    return None
                self._drained = n < len(space)
                decoder.wrote(n)

    async def wait_readable(self) -> None:
        """Wait until the raw stream has something to receive (only when
        :attr:`pollable`). A cancel point that consumes nothing."""
        assert self._raw_wait_readable is not None
        await self._raw_wait_readable()
        self._drained = False

    def interrupt_wait(self) -> None:
        """End a :meth:`wait_readable` under way at once (it returns as if the stream were
        readable); does nothing when none is. Only when :attr:`pollable`."""
        self._raw.interrupt_wait()  # type: ignore[attr-defined]

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        """Encrypt and write ``item``. Cancelled before it starts, nothing is sent; cancelled
        while the socket is full, part of a message may have gone out and the stream is
        broken from then on (its nonces and framing cannot be recovered). An empty
        ``item`` is an empty message (which the peer skips)."""
        await self._send((item,), empty=True)

    async def send_segments(self, segments: Sequence[bytes | bytearray | memoryview]) -> None:
        """Like :meth:`send` with the segments' bytes in order; each non-empty segment is
        encrypted into messages of its own, straight from its buffer."""
        await self._send(segments, empty=False)

    async def _send(
        self, segments: Sequence[bytes | bytearray | memoryview], *, empty: bool
    ) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        with self._send_guard:
            self._check_send()
            self._encoder.append(segments, empty=empty)
            await self._write_pending()

    def _check_send(self) -> None:
        if self._send_broken:
            raise anyio.BrokenResourceError("an earlier send was interrupted mid-message")

    def send_nowait(self, data: bytes | bytearray | memoryview) -> bool:
        """Encrypt ``data`` and write what the socket accepts now. Returns ``True`` when
        everything went out, else the rest waits for :meth:`flush`."""
        return self.send_segments_nowait((data,))

    def send_segments_nowait(self, segments: Sequence[bytes | bytearray | memoryview]) -> bool:
        """:meth:`send_nowait` for segments, encrypted as :meth:`send_segments` does. The
        segments are not referred to afterwards. Behind bytes still unsent, nothing is
        tried (returns ``False``)."""
        if self._writing:
            raise anyio.BusyResourceError("sending to")
        self._check_send()
        encoder = self._encoder
        if encoder.pending_bytes or self._try_send is None:
            encoder.append(segments)
            return False
        encoder.append(segments)
        return encoder.write_with(self._try_send)

    @property
    def unsent(self) -> int:
        """Encrypted bytes :meth:`send_nowait` could not write yet."""
        return self._encoder.pending_bytes

    async def flush(self) -> None:
        """Write what :meth:`send_nowait` left over (same cancellation rule as send)."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        with self._send_guard:
            self._check_send()
            await self._write_pending()

    async def _write_pending(self) -> None:
        encoder = self._encoder
        if not encoder.pending_bytes:
            return
        pending = encoder.pending
        n = len(pending)
        self._writing = True
        try:
            await self._raw.send(pending)  # type: ignore[arg-type]  # bytes-like
        except anyio.get_cancelled_exc_class():
            self._send_broken = True
            raise
        finally:
            # Sent, or failed (closed, broken, cancelled midway): either way not again.
            self._writing = False
            pending.release()
            encoder.consumed(n)

    async def send_eof(self) -> None:
        await self.flush()
        await self._raw.send_eof()

    async def aclose(self) -> None:
        await self._raw.aclose()


class Noise(SecureTransport):
    """The ``/noise`` secure channel for ``identity``."""

    protocol_id = PROTOCOL_ID

    def __init__(self, identity: KeyPair) -> None:
        self.identity = identity
        # One static DH key per transport, like a TLS certificate: the identity signature
        # over it (and so the whole payload) is computed once instead of per handshake.
        # Forward secrecy comes from the ephemeral keys, which stay per handshake.
        self._static = StaticKey()
        self._payloads: dict[tuple[str, ...], bytes] = {}

    def _handshake(
        self, initiator: bool, muxers: Sequence[str], expected_peer: PeerID | None = None
    ) -> NoiseHandshake:
        key = tuple(muxers)
        payload = self._payloads.get(key)
        if payload is None:
            payload = self._payloads[key] = encode_payload(self.identity, self._static.public, key)
        return NoiseHandshake(
            self.identity,
            initiator,
            muxers=key,
            expected_peer=expected_peer,
            static_key=self._static,
            payload=payload,
        )

    async def secure_outbound(
        self,
        raw: anyio.abc.ByteStream,
        expected_peer: PeerID | None,
        muxers: Sequence[str] = (),
    ) -> NoiseStream:
        return await _run(raw, self._handshake(True, muxers, expected_peer))

    async def secure_inbound(
        self, raw: anyio.abc.ByteStream, muxers: Sequence[str] = ()
    ) -> NoiseStream:
        return await _run(raw, self._handshake(False, muxers))


async def _run(raw: anyio.abc.ByteStream, hs: NoiseHandshake) -> NoiseStream:
    while True:
        out = hs.data_to_send()
        if out:
            await raw.send(out)
        if hs.complete:
            return NoiseStream(raw, hs)
        try:
            data = await raw.receive(RECEIVE_SIZE)
        except anyio.EndOfStream:
            raise HandshakeError("connection closed during the noise handshake") from None
        hs.receive_data(data)
