"""A QUIC connection as a :class:`~p2pstack.muxer.abc.MuxedConnection`.

The :class:`~p2pstack.transport.quic.endpoint.QuicEndpoint` that owns the UDP socket feeds
this connection's core (datagrams, timers) from its one task and sends what the core
produces; calls from application tasks (a stream's ``send``, ``receive`` handing back
credit, ``open_stream``) act on the core at once and send straight away, so no data waits
for a task switch.

``run()`` only waits for the connection to end; cancelling it closes the connection.
``aclose()`` sends CONNECTION_CLOSE (code 0) and returns at once; the endpoint keeps
answering the peer for the closing period, then forgets the connection. When the connection
ends (either side, an idle timeout, an error) every stream raises ``BrokenResourceError``
and ``accept_stream`` raises ``EndOfStream``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
from aioquic.quic import events
from multiaddr import Multiaddr

from p2pstack.attributes import P2PAttribute
from p2pstack.errors import HandshakeError, StreamReset
from p2pstack.identity import PeerID
from p2pstack.muxer.abc import MuxedConnection
from p2pstack.transport.quic.core import NO_ERROR, QuicCore
from p2pstack.transport.quic.stream import SEND_RESUME, QuicStream

if TYPE_CHECKING:
    from p2pstack.transport.quic.endpoint import QuicEndpoint

log = logging.getLogger(__name__)

PROTOCOL = "quic-v1"


class QuicConnectionClosed(anyio.BrokenResourceError):
    """The QUIC connection ended; ``code`` and ``reason`` are what CONNECTION_CLOSE said
    (or aioquic's idle timeout)."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"QUIC connection closed (code {code:#x}: {reason or 'no reason'})")


class QuicMuxedConnection(MuxedConnection):
    def __init__(
        self,
        endpoint: QuicEndpoint,
        core: QuicCore,
        remote: tuple[str, int],
        outbound: bool,
        max_inbound_streams: int,
    ) -> None:
        self._endpoint = endpoint
        self.core = core
        self.remote = remote
        self.outbound = outbound
        self.cids: set[bytes] = set()
        self.timer_at: float | None = None
        self._streams: dict[int, QuicStream] = {}
        self._incoming_send, self._incoming = anyio.create_memory_object_stream[QuicStream](
            max_inbound_streams
        )
        self._blocked_senders: set[QuicStream] = set()
        self._open_waiters: list[anyio.Event] = []
        self.handshake_done = anyio.Event()
        self.counted_handshake = True  # the endpoint counts it among its handshakes
        self.error: BaseException | None = None
        self._terminated = anyio.Event()
        self._closing = False
        self._remote_addr = _quic_multiaddr(remote)
        self._local_addr = _quic_multiaddr(endpoint.local_address)
        self._attrs: dict[Any, Callable[[], Any]] = {
            P2PAttribute.remote_addr: lambda: self._remote_addr,
            P2PAttribute.local_addr: lambda: self._local_addr,
            P2PAttribute.local_peer: lambda: endpoint.local_peer,
            P2PAttribute.remote_peer: lambda: self.remote_peer,
            P2PAttribute.remote_public_key: lambda: self.core.remote_public_key,
            P2PAttribute.security_protocol: lambda: PROTOCOL,
            P2PAttribute.muxer_protocol: lambda: PROTOCOL,
        }

    # ------------------------------------------------------------------ MuxedConnection

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._attrs

    @property
    def remote_peer(self) -> PeerID:
        peer = self.core.remote_peer
        if peer is None:
            raise HandshakeError("the QUIC handshake has not proven the peer yet")
        return peer

    @property
    def is_closed(self) -> bool:
        return self._terminated.is_set() or self._closing

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            await self._terminated.wait()
        finally:
            self.close()

    async def open_stream(self) -> QuicStream:
        """Cancelled while it waits for the peer's MAX_STREAMS, nothing was opened; once
        it has a stream it returns it (no cancellation point after that)."""
        core = self.core
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self.error is not None:
                raise anyio.BrokenResourceError("connection lost") from self.error
            if self._closing:
                raise anyio.ClosedResourceError
            stream_id = core.get_next_available_stream_id()
            if stream_id // 4 < core._remote_max_streams_bidi:
                break
            waiter = anyio.Event()  # the peer lets us open more with MAX_STREAMS
            self._open_waiters.append(waiter)
            try:
                await waiter.wait()
            finally:
                if waiter in self._open_waiters:
                    self._open_waiters.remove(waiter)
        core.send_stream_data(stream_id, b"")  # makes the stream (and takes the id) now
        stream = self._streams[stream_id] = QuicStream(self, stream_id, outbound=True)
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return stream

    async def accept_stream(self) -> QuicStream:
        try:
            return await self._incoming.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise anyio.EndOfStream from None

    async def aclose(self) -> None:
        self.close()
        await anyio.lowlevel.checkpoint()

    def close(self, code: int = NO_ERROR, reason: str = "") -> None:
        """Send CONNECTION_CLOSE now (idempotent; never raises)."""
        if self._closing or self._terminated.is_set():
            return
        self._closing = True
        self.core.close(error_code=code, reason_phrase=reason)
        self._endpoint.transmit(self)
        self._connection_lost(anyio.ClosedResourceError("connection closed"))

    # ------------------------------------------------------------------ for the endpoint

    def handle_events(self) -> None:
        core = self.core
        while (event := core.next_event()) is not None:
            if isinstance(event, events.StreamDataReceived):
                self._on_stream_data(event)
            elif isinstance(event, events.StreamReset):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream._on_reset(StreamReset(event.error_code, remote=True))
                    self._abort_stream(event.stream_id, reset=True, stop=False)
                    self._forget(event.stream_id)
                elif self._is_new_peer_stream(event.stream_id):
                    # Reset before any data: finish our side too, or its slot stays taken.
                    self._abort_stream(event.stream_id, reset=True, stop=False)
                else:
                    core.ignore(event.stream_id)
            elif isinstance(event, events.StopSendingReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream._on_stop_sending(StreamReset(event.error_code, remote=True))
            elif isinstance(event, events.HandshakeCompleted):
                self._on_handshake_completed()
            elif isinstance(event, events.ConnectionIdIssued):
                self._endpoint.add_cid(self, event.connection_id)
            elif isinstance(event, events.ConnectionIdRetired):
                self._endpoint.remove_cid(self, event.connection_id)
            elif isinstance(event, events.ConnectionTerminated):
                self._on_terminated(event)

    def after_receive(self) -> None:
        """ACKs and MAX_STREAMS may have come in: let waiting senders and openers go on.
        A connection the peer (or a failed check) closed breaks its streams, and fails a
        dial, now rather than after the closing period."""
        core = self.core
        if self.error is None and core.is_closed:
            close = core._close_event
            self._connection_lost(
                core.libp2p_error
                or QuicConnectionClosed(
                    getattr(close, "error_code", 0), getattr(close, "reason_phrase", "")
                )
            )
            return
        if self._blocked_senders:
            for stream in list(self._blocked_senders):
                if self.core.unacked(stream._id) <= SEND_RESUME:
                    self._blocked_senders.discard(stream)
                    stream._wake_sender()
        if self._open_waiters:
            if core.get_next_available_stream_id() // 4 < core._remote_max_streams_bidi:
                waiters, self._open_waiters = self._open_waiters, []
                for waiter in waiters:
                    waiter.set()

    def _on_handshake_completed(self) -> None:
        core = self.core
        if core.remote_peer is None:  # cannot happen: the TLS hook proved it or failed
            self.close(0x1, "libp2p identity missing")
            return
        self.handshake_done.set()
        if self.outbound:
            self._endpoint.outbound_ready(self)
        else:
            self._endpoint.connection_ready(self)

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        sid = event.stream_id
        stream = self._streams.get(sid)
        if stream is None:
            if not self._is_new_peer_stream(sid):
                # Not a new stream of the peer's (or one we already closed): drop it.
                self.core.ignore(sid)
                return
            stream = QuicStream(self, sid, outbound=False)
            try:
                self._incoming_send.send_nowait(stream)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                log.debug("refusing inbound stream %d: accept queue full", sid)
                self._abort_stream(sid, reset=True)
                return
            self._streams[sid] = stream
            stopped = self.core._streams[sid].sender._reset_error_code
            if stopped is not None:
                # STOP_SENDING came ahead of the stream's data (a peer writes control
                # frames first): aioquic has reset our side already.
                stream._on_stop_sending(StreamReset(stopped, remote=True))
        stream._on_data(event.data, event.end_stream)

    def _is_new_peer_stream(self, sid: int) -> bool:
        """A bidirectional stream the peer opened that we have not met (nor closed)."""
        return sid % 4 < 2 and bool(sid & 1) == self.outbound and sid not in self.core._ignored

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        error = self.core.libp2p_error or QuicConnectionClosed(
            event.error_code, event.reason_phrase
        )
        self._connection_lost(error)
        self._terminated.set()
        self._endpoint.connection_terminated(self)

    def _on_terminated_locally(self) -> None:
        """The endpoint is gone (its socket closed): the connection is over now."""
        self._connection_lost(anyio.BrokenResourceError("the QUIC endpoint closed"))
        self._terminated.set()

    def _connection_lost(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.handshake_done.set()
        for stream in self._streams.values():
            stream._on_connection_lost(error)
        self._streams.clear()
        self._blocked_senders.clear()
        for waiter in self._open_waiters:
            waiter.set()
        self._open_waiters.clear()
        self._incoming_send.close()

    # ------------------------------------------------------------------ for the streams

    def _send(self, stream_id: int, data: bytes | memoryview, end: bool) -> None:
        self.core.send_stream_data(stream_id, data, end)
        self._endpoint.transmit_soon(self)

    def _unacked(self, stream_id: int) -> int:
        return self.core.unacked(stream_id)

    def _wait_for_acks(self, stream: QuicStream) -> None:
        self._blocked_senders.add(stream)

    def _consumed(self, stream_id: int, n: int) -> None:
        if self.core.consume(stream_id, n):
            self._endpoint.transmit_soon(self)

    def _abort_stream(self, stream_id: int, *, reset: bool, stop: bool = True) -> None:
        core = self.core
        if self._terminated.is_set() or self._closing:
            return
        try:
            if reset:
                core.reset_stream(stream_id, NO_ERROR)
            if (
                stop
                and stream_id in core._streams
                and not core._streams[stream_id].receiver.is_finished
            ):
                core.stop_stream(stream_id, NO_ERROR)
        except ValueError:  # aioquic already discarded the stream: nothing left to stop
            pass
        core.ignore(stream_id)
        self._endpoint.transmit_soon(self)

    def _forget(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._blocked_senders.discard(stream)
            stream._wake_sender()  # a sender still waiting finds the stream over
            self.core.ignore(stream_id)

    def _maybe_forget(self, stream: QuicStream) -> None:
        if stream._done:
            self._forget(stream._id)

    def __repr__(self) -> str:
        direction = "outbound" if self.outbound else "inbound"
        return f"<QuicMuxedConnection {direction} {self.core.remote_peer} {self.remote}>"


def _quic_multiaddr(address: tuple[str, int]) -> Multiaddr:
    host, port = address[0], address[1]
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/udp/{port}/quic-v1")
