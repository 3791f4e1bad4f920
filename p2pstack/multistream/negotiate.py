"""multistream-select over an anyio ByteStream: the thin shell around ``machine``.

Both functions return the negotiated protocol and the stream to use from then on. Bytes
the peer sent after the negotiation (and that we already received) are served first by the
returned stream; when there are none, the returned stream is the one passed in, so the data
path has no wrapper. A failure (``ProtocolNotSupported``, ``RemoteProtocolError``, the peer
ending the stream) closes nothing: the caller owns the stream and decides what to do.

Neither function is cancel-safe: a negotiation cancelled half-way leaves the stream in an
unknown state, to be closed or reset by its owner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import ByteStream

from p2pstack.errors import RemoteProtocolError
from p2pstack.framing.buffered import BufferedByteStream
from p2pstack.multistream.machine import DialerNegotiation, ListenerNegotiation, Negotiation


async def _receive_for(stream: ByteStream, negotiation: Negotiation) -> None:
    try:
        data = await stream.receive()
    except anyio.EndOfStream:
        raise RemoteProtocolError("stream ended during multistream negotiation") from None
    try:
        negotiation.receive_data(data)
    except RemoteProtocolError:
        # Answers queued before the bad message (a pipelined dialer's "na") still go out,
        # so that the dialer learns why rather than just seeing the stream fail.
        out = negotiation.data_to_send()
        if out:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.send(out)
        raise


async def _run(
    stream: ByteStream,
    negotiation: Negotiation,
    receive: Callable[[], Awaitable[None]] | None = None,
) -> ByteStream:
    while True:
        out = negotiation.data_to_send()
        if out:
            await stream.send(out)
        if negotiation.done:
            break
        if receive is None:
            await _receive_for(stream, negotiation)
        else:
            await receive()
    leftover = negotiation.unconsumed()
    if not leftover:
        return stream
    if isinstance(stream, BufferedByteStream):
        stream.unread(leftover)
        return stream
    return BufferedByteStream(stream, leftover)


async def select_outbound(
    stream: ByteStream, protocols: Sequence[str], *, lazy: bool = False
) -> tuple[str, ByteStream]:
    """Negotiate, as the dialer, the first of ``protocols`` the listener supports.

    Raises :class:`ProtocolNotSupported` when the listener refuses all of them.

    With ``lazy=True`` and exactly one protocol, the header and proposal are sent in one
    write and the function returns at once, without a round trip; the returned
    :class:`LazyNegotiatedStream` checks the listener's answer on its first ``receive()``,
    which raises ``ProtocolNotSupported`` if the listener said ``na``. ``lazy`` is ignored
    when more than one protocol is offered (the answer decides what to propose next).
    """
    negotiation = DialerNegotiation(protocols)
    if lazy and len(negotiation.protocols) == 1:
        # Nothing is written yet: the header and proposal go out with the first send()
        # (one write, one frame), or before the first receive() at the latest.
        await anyio.lowlevel.checkpoint_if_cancelled()
        lazy_stream = LazyNegotiatedStream(stream, negotiation)
        lazy_stream._unsent = negotiation.data_to_send()
        return negotiation.proposed, lazy_stream
    stream = await _run(stream, negotiation)
    assert negotiation.protocol is not None
    return negotiation.protocol, stream


async def select_inbound(
    stream: ByteStream,
    supported: Callable[[str], bool] | Collection[str],
    *,
    timeout: float | None = None,
    answer_at_once: bool = False,
) -> tuple[str, ByteStream]:
    """Negotiate, as the listener, the first proposal that ``supported`` allows.

    ``supported`` is a predicate or a collection of protocol ids (a collection also
    answers the ``ls`` command). Proposals we do not support are answered ``na`` until the
    dialer proposes one we do, or gives up and ends the stream (a
    :class:`RemoteProtocolError` here).

    ``timeout`` bounds, in seconds from the first time we wait for the dialer, how long
    the negotiation may wait for it (``TimeoutError`` after that). A proposal that is
    already buffered (it came with the stream) is read without a deadline: a deadline
    costs more than the whole negotiation on the path of every stream.

    When the dialer's proposal was already buffered, our answer is normally held back and
    sent with the caller's first write (see :class:`InboundNegotiatedStream`). With
    ``answer_at_once`` it is held back only if the dialer sent data after its proposal
    (so it is not waiting for the answer): a caller whose first step is to read, as a
    security handshake's responder, must not keep a dialer that offered several
    protocols (and so waits for our answer) waiting for it.
    """
    negotiation = ListenerNegotiation(supported)
    deadline: float | None = None

    async def receive() -> None:
        nonlocal deadline
        if timeout is None or getattr(stream, "has_buffered_data", False):
            await _receive_for(stream, negotiation)
            return
        if deadline is None:
            deadline = anyio.current_time() + timeout
        with anyio.fail_after(max(deadline - anyio.current_time(), 0)):
            await _receive_for(stream, negotiation)

    if getattr(stream, "has_buffered_data", False):
        # The dialer's header and proposal are already here: answer after reading them,
        # so that our header, the answer and the handler's first write go out together.
        while not negotiation.done:
            await receive()
            if not negotiation.done:
                out = negotiation.data_to_send()
                if out:
                    await stream.send(out)
        assert negotiation.protocol is not None
        reply = negotiation.data_to_send()
        leftover = negotiation.unconsumed()
        if reply and answer_at_once and not leftover:
            await stream.send(reply)
            reply = b""
        if reply or leftover:
            return negotiation.protocol, InboundNegotiatedStream(stream, reply, leftover)
        return negotiation.protocol, stream
    stream = await _run(stream, negotiation, receive)
    assert negotiation.protocol is not None
    return negotiation.protocol, stream


class InboundNegotiatedStream(ByteStream):
    """The listener's stream when its answer was held back: the answer goes out in front
    of the first ``send()`` (or before the first ``receive()`` that would wait, or on
    ``send_eof()``/``aclose()``), and bytes the dialer sent after its proposal are
    received first."""

    def __init__(self, inner: ByteStream, reply: bytes, leftover: bytes) -> None:
        self.inner = inner
        self._reply = reply
        self._leftover = leftover

    async def _flush_reply(self) -> None:
        reply, self._reply = self._reply, b""
        if reply:
            await self.inner.send(reply)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        leftover = self._leftover
        if leftover:
            # No scheduler pass for bytes already here (a muxer stream returns its queued
            # data the same way): the handler answers the dialer's first message before
            # other tasks, such as a connection's identify, get in between.
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._leftover = leftover[max_bytes:]
            return leftover[:max_bytes]
        if self._reply:
            await self._flush_reply()
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        reply = self._reply
        if reply:
            self._reply = b""
            if len(item) <= _COALESCE_LIMIT:
                await self.inner.send(reply + bytes(item))
                return
            await self.inner.send(reply)
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self._flush_reply()
        await self.inner.send_eof()

    async def aclose(self) -> None:
        if self._reply:
            # A stream closed before its first write still tells the dialer it was
            # accepted, unless it can no longer be written to.
            with anyio.move_on_after(1, shield=True):
                try:
                    await self._flush_reply()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
        self._leftover = b""
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.inner.extra_attributes


#: A first write up to this size is joined to a held-back negotiation message.
_COALESCE_LIMIT = 64 * 1024


class LazyNegotiatedStream(ByteStream):
    """The dialer's stream after a lazy (pipelined) proposal.

    ``send()`` goes straight to ``inner``: the listener receives the data right after the
    proposal. The first ``receive()`` first reads the listener's header and answer; it
    raises :class:`ProtocolNotSupported` if the answer was ``na`` (and so does every later
    ``receive()`` or ``send()``), or :class:`RemoteProtocolError` for anything else
    unexpected. Only then does it return application data. Receiving is cancel-safe.
    """

    def __init__(self, inner: ByteStream, negotiation: DialerNegotiation) -> None:
        #: the wrapped stream
        self.inner = inner
        #: the proposed protocol (agreed once the first receive() returns)
        self.protocol = negotiation.proposed
        self._negotiation: DialerNegotiation | None = negotiation
        self._negotiating = False
        self._error: Exception | None = None
        self._pending = b""
        #: header and proposal not written yet (select_outbound defers them)
        self._unsent = b""

    async def _flush_proposal(self) -> None:
        unsent, self._unsent = self._unsent, b""
        if unsent:
            await self.inner.send(unsent)

    async def _finish_negotiation(self, negotiation: DialerNegotiation) -> None:
        if self._error is not None:
            raise self._error
        if self._negotiating:
            raise anyio.BusyResourceError("receiving from")
        self._negotiating = True
        try:
            await self._flush_proposal()
            while not negotiation.done:
                await _receive_for(self.inner, negotiation)
                out = negotiation.data_to_send()
                if out:
                    await self.inner.send(out)
        except Exception as exc:
            # Cancellation is a BaseException and leaves the negotiation resumable.
            self._error = exc
            raise
        finally:
            self._negotiating = False
        self._pending = negotiation.unconsumed()
        self._negotiation = None

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._negotiation is not None:
            await self._finish_negotiation(self._negotiation)
        pending = self._pending
        if not pending:
            return await self.inner.receive(max_bytes)
        self._pending = pending[max_bytes:]
        return pending[:max_bytes]

    async def send(self, item: bytes) -> None:
        if self._error is not None:
            raise self._error
        unsent = self._unsent
        if unsent:
            self._unsent = b""
            if len(item) <= _COALESCE_LIMIT:
                await self.inner.send(unsent + bytes(item))
                return
            await self.inner.send(unsent)
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self._flush_proposal()
        await self.inner.send_eof()

    async def aclose(self) -> None:
        self._pending = b""
        self._unsent = b""
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.inner.extra_attributes


def unwrap(stream: ByteStream) -> ByteStream:
    """The stream under any finished negotiation wrappers that hold no bytes.

    A layer that takes over a stream for good (a secure channel after its handshake) calls
    this so that its data path skips wrappers that have nothing left to do.
    """
    while True:
        if (
            isinstance(stream, LazyNegotiatedStream)
            and stream._negotiation is None
            and stream._error is None
            and not stream._pending
            and not stream._unsent
        ):
            stream = stream.inner
        elif (
            isinstance(stream, InboundNegotiatedStream)
            and not stream._reply
            and not stream._leftover
        ):
            stream = stream.inner
        elif isinstance(stream, BufferedByteStream) and not stream.buffered:
            stream = stream.inner
        else:
            return stream
