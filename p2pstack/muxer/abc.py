"""Stream multiplexer interfaces.

A :class:`MuxedConnection` carries many :class:`MuxedStream` s over one secure connection
(yamux) or natively (QUIC). Semantics, for every implementation:

- ``MuxedStream.send`` waits for flow-control credit; it returns once the data is queued
  for the connection, so a sender's memory stays bounded by the window.
- ``MuxedStream.receive`` returns at least one byte, or raises ``anyio.EndOfStream`` once the
  peer closed its write side and everything before that was read.
- ``send_eof()`` half-closes: we can still receive. ``aclose()`` closes our write side and
  stops reading; unread data is dropped and further data from the peer is discarded
  (the stream is reset if it was not already ended both ways).
- ``reset()`` aborts both directions at once; the peer sees :class:`~p2pstack.errors.StreamReset`.
- A stream whose peer reset it raises ``StreamReset(remote=True)`` from send and receive;
  after the connection dies every stream raises ``anyio.BrokenResourceError``.
- Using a stream after ``aclose()`` raises ``anyio.ClosedResourceError``; two tasks receiving
  (or sending) at once raise ``anyio.BusyResourceError``.
- Cancelling ``send`` may leave part of the data sent; cancelling ``receive`` loses nothing.
- On yamux, ``send_eof()`` and ``aclose()`` are cancel points but not schedule points
  (they never wait, and a stream's life is cheaper without two trips through the
  scheduler); in a cancelled scope they still close, then raise the cancellation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import anyio.abc


class MuxedStream(anyio.abc.ByteStream):
    """One bidirectional stream of a :class:`MuxedConnection`."""

    @property
    @abstractmethod
    def stream_id(self) -> int: ...

    @abstractmethod
    async def reset(self) -> None:
        """Abort the stream in both directions. Never raises for a stream already gone."""


class MuxedConnection(ABC):
    """A multiplexed, authenticated connection to one peer.

    ``run()`` serves the connection until it closes; it must be running for streams to
    move, but the connection may be used (streams opened, accepted, closed) before its
    task first runs, so ``task_group.start_soon(conn.run)`` is enough. ``aclose()``
    closes the connection (politely first, then by force) and makes ``run()`` return,
    also when it had not started yet.
    """

    @property
    @abstractmethod
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]: ...

    def extra(self, attribute: Any, default: Any = ...) -> Any:
        getter = self.extra_attributes.get(attribute)
        if getter is None:
            if default is ...:
                raise anyio.TypedAttributeLookupError(attribute)
            return default
        return getter()

    @abstractmethod
    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve the connection; returns when it is closed (by either side)."""

    @abstractmethod
    async def open_stream(self) -> MuxedStream:
        """Open an outbound stream; waits while too many are unacknowledged."""

    @abstractmethod
    async def accept_stream(self) -> MuxedStream:
        """Next inbound stream; raises ``anyio.EndOfStream`` once the connection closed."""

    @abstractmethod
    async def aclose(self) -> None: ...

    @property
    @abstractmethod
    def is_closed(self) -> bool: ...


class StreamMuxer(ABC):
    """Creates a :class:`MuxedConnection` over a secure byte stream."""

    protocol_id: str

    @abstractmethod
    def create(self, secure: anyio.abc.ByteStream, is_initiator: bool) -> MuxedConnection: ...
