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

from collections.abc import Callable, Collection, Mapping, Sequence
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
    negotiation.receive_data(data)


async def _run(stream: ByteStream, negotiation: Negotiation) -> ByteStream:
    while True:
        out = negotiation.data_to_send()
        if out:
            await stream.send(out)
        if negotiation.done:
            break
        await _receive_for(stream, negotiation)
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
        await stream.send(negotiation.data_to_send())
        return negotiation.proposed, LazyNegotiatedStream(stream, negotiation)
    stream = await _run(stream, negotiation)
    assert negotiation.protocol is not None
    return negotiation.protocol, stream


async def select_inbound(
    stream: ByteStream, supported: Callable[[str], bool] | Collection[str]
) -> tuple[str, ByteStream]:
    """Negotiate, as the listener, the first proposal that ``supported`` allows.

    ``supported`` is a predicate or a collection of protocol ids (a collection also
    answers the ``ls`` command). Proposals we do not support are answered ``na`` until the
    dialer proposes one we do, or gives up and ends the stream (a
    :class:`RemoteProtocolError` here).
    """
    negotiation = ListenerNegotiation(supported)
    stream = await _run(stream, negotiation)
    assert negotiation.protocol is not None
    return negotiation.protocol, stream


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

    async def _finish_negotiation(self, negotiation: DialerNegotiation) -> None:
        if self._error is not None:
            raise self._error
        if self._negotiating:
            raise anyio.BusyResourceError("receiving from")
        self._negotiating = True
        try:
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
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        self._pending = b""
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
        ):
            stream = stream.inner
        elif isinstance(stream, BufferedByteStream) and not stream.buffered:
            stream = stream.inner
        else:
            return stream
