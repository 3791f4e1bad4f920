"""multistream-select 1.0, sans-IO (libp2p/specs connections/README.md).

Wire rules this module enforces:

* every message is ``uvarint(n) || text || "\\n"`` where ``n`` counts the newline;
  ``n > 1024`` is refused with :class:`MessageTooLarge` (go and js refuse them too);
  a message without the trailing newline, or whose text is not UTF-8, is a
  :class:`RemoteProtocolError`;
* both sides send the header ``/multistream/1.0.0`` at once, without waiting for the
  other's, and the first message received must be that header;
* the dialer proposes one protocol at a time; the listener echoes it to accept or answers
  ``na``; a dialer that gets ``na`` for every proposal fails with
  :class:`ProtocolNotSupported`;
* the dialer sends its first proposal together with its header (one write), as go, rust
  and js do, so a successful negotiation costs one round trip;
* the listener answers ``ls`` with its protocols when it knows them as a collection
  (one message whose text is each protocol as its own message), else with ``na``;
  any other unknown text is answered ``na``.

Both machines share the shape: ``receive_data(bytes)``, ``data_to_send() -> bytes``,
``done``, ``protocol`` and ``unconsumed()``. Once ``done``, every byte received past the
final message is application data, returned by ``unconsumed()``; the caller hands it to
whoever reads the stream next. Feeding a machine that is done or failed is a
:class:`LocalProtocolError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence

from p2pstack.errors import LocalProtocolError, ProtocolNotSupported, RemoteProtocolError
from p2pstack.framing.length_prefixed import LengthPrefixedDecoder
from p2pstack.framing.varint import encode_uvarint

PROTOCOL_ID = "/multistream/1.0.0"
NA = "na"
LS = "ls"
#: largest message, counting the trailing newline, that we accept or send
MAX_MESSAGE_SIZE = 1024


def encode_message(text: str) -> bytes:
    """Encode one multistream message: ``uvarint(len + 1) || text || "\\n"``."""
    body = text.encode() + b"\n"
    if len(body) > MAX_MESSAGE_SIZE:
        raise LocalProtocolError(f"multistream message over {MAX_MESSAGE_SIZE} bytes")
    return encode_uvarint(len(body)) + body


def _check_protocol_id(protocol: str) -> None:
    if not protocol or "\n" in protocol:
        raise LocalProtocolError(f"invalid protocol id {protocol!r}")
    encode_message(protocol)  # raises if too long


_HEADER = encode_message(PROTOCOL_ID)
_NA = encode_message(NA)


class _State(enum.Enum):
    AWAIT_HEADER = enum.auto()
    AWAIT_REPLY = enum.auto()  # dialer: waiting for echo or "na"
    AWAIT_PROPOSAL = enum.auto()  # listener: waiting for a protocol or command
    DONE = enum.auto()
    FAILED = enum.auto()


class Negotiation:
    """What both sides share: message splitting, the output buffer, the state checks."""

    def __init__(self) -> None:
        self._decoder = LengthPrefixedDecoder(MAX_MESSAGE_SIZE)
        self._outgoing = bytearray(_HEADER)
        self._state = _State.AWAIT_HEADER
        self.protocol: str | None = None

    @property
    def done(self) -> bool:
        """True once a protocol is agreed; ``protocol`` then holds it."""
        return self._state is _State.DONE

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer now (possibly empty)."""
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def unconsumed(self) -> bytes:
        """Bytes received past the end of negotiation; they belong to the application.

        Meaningful once ``done``; calling it does not remove them.
        """
        if self._state is not _State.DONE:
            return b""
        return self._decoder.unconsumed()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer; raises on a protocol violation."""
        if self._state is _State.DONE:
            raise LocalProtocolError("negotiation is done; hand the bytes to the application")
        if self._state is _State.FAILED:
            raise LocalProtocolError("negotiation has failed")
        self._decoder.feed(data)
        try:
            while not self.done:
                text = self._next_text()
                if text is None:
                    break
                if self._state is _State.AWAIT_HEADER:
                    if text != PROTOCOL_ID:
                        raise RemoteProtocolError(f"unexpected multistream header {text!r}")
                    self._header_received()
                else:
                    self._handle(text)
        except BaseException:
            self._state = _State.FAILED
            raise

    def _next_text(self) -> str | None:
        body = self._decoder.next_message()
        if body is None:
            return None
        if not body.endswith(b"\n"):
            raise RemoteProtocolError("multistream message without trailing newline")
        try:
            return body[:-1].decode()
        except UnicodeDecodeError:
            raise RemoteProtocolError("multistream message is not UTF-8") from None

    def _header_received(self) -> None:
        raise NotImplementedError

    def _handle(self, text: str) -> None:
        raise NotImplementedError


class DialerNegotiation(Negotiation):
    """The initiator's side: proposes ``protocols`` in order of preference.

    ``data_to_send()`` right after construction gives the header and the first proposal.
    ``receive_data()`` raises :class:`ProtocolNotSupported` once the listener has refused
    every protocol.
    """

    def __init__(self, protocols: Sequence[str]) -> None:
        if not protocols:
            raise LocalProtocolError("no protocols to propose")
        for protocol in protocols:
            _check_protocol_id(protocol)
        super().__init__()
        self.protocols: tuple[str, ...] = tuple(protocols)
        self._index = 0
        self._outgoing += encode_message(self.protocols[0])

    @property
    def proposed(self) -> str:
        """The protocol currently proposed (or agreed)."""
        return self.protocols[self._index]

    def _header_received(self) -> None:
        self._state = _State.AWAIT_REPLY

    def _handle(self, text: str) -> None:
        if text == self.proposed:
            self.protocol = text
            self._state = _State.DONE
        elif text == NA:
            self._index += 1
            if self._index == len(self.protocols):
                raise ProtocolNotSupported(self.protocols)
            self._outgoing += encode_message(self.proposed)
        else:
            raise RemoteProtocolError(f"listener answered {text!r} to proposal {self.proposed!r}")


class ListenerNegotiation(Negotiation):
    """The responder's side: accepts the first proposal that ``supported`` allows.

    ``supported`` is a predicate or a collection of protocol ids. ``data_to_send()`` right
    after construction gives the header, to be sent without waiting for the dialer's.
    """

    def __init__(self, supported: Callable[[str], bool] | Collection[str]) -> None:
        super().__init__()
        self._listing: Collection[str] | None
        if callable(supported):
            self._is_supported = supported
            self._listing = None
        else:
            self._is_supported = supported.__contains__
            self._listing = supported

    def _header_received(self) -> None:
        self._state = _State.AWAIT_PROPOSAL

    def _handle(self, text: str) -> None:
        if text == LS:
            self._outgoing += self._ls_reply()
        elif text and text not in (NA, PROTOCOL_ID) and self._is_supported(text):
            self.protocol = text
            self._state = _State.DONE
            self._outgoing += encode_message(text)
        else:
            self._outgoing += _NA

    def _ls_reply(self) -> bytes:
        if self._listing is None:
            return _NA
        body = bytearray()
        for protocol in self._listing:
            line = protocol.encode() + b"\n"
            body += encode_uvarint(len(line)) + line
        body += b"\n"
        if len(body) > MAX_MESSAGE_SIZE:
            # Peers refuse larger messages; a partial list would mislead.
            return _NA
        return encode_uvarint(len(body)) + body
