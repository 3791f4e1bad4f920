"""The sans-IO core of a libp2p QUIC connection: aioquic's ``QuicConnection``, tuned.

aioquic is sans-IO already (datagrams and ``now`` in, datagrams, events and a timer out).
What libp2p and a bounded-memory shell need on top of it lives here, still without any IO:

- the libp2p TLS check (:mod:`p2pstack.transport.quic.tls`), installed on the TLS context;
- **receive flow control by consumption**. aioquic grants the peer more credit as data
  arrives, whether or not anyone reads it; here credit follows what the application has
  read (``consume``), with a window that grows, up to a cap, while the reader keeps up
  (doubling when the credit ran out within two round trips, as quic-go does). A slow reader
  thus stops a fast sender, and memory stays bounded by the windows;
- limits: ``max_inbound_streams`` concurrent peer-opened bidirectional streams, no
  unidirectional ones (libp2p uses none);
- a keep-alive PING every ``keepalive_interval`` and a handshake deadline, both on the timer;
- at most :data:`SEND_BATCH` bytes put in flight per ``datagrams_to_send`` call
  (``more_to_send`` says when it stopped there), so that the shell reads between batches;
- speed: ACKs ride on data packets and every second packet is acknowledged at once
  (aioquic waits its 1 ms ACK delay); datagrams grow on loopback once the handshake is
  confirmed (``path_max_datagram_size``, capped by the peer's ``max_udp_payload_size``),
  which needs our own STREAM frame writer (aioquic's writes a 2-byte length); header
  protection copies the packet once (:mod:`~p2pstack.transport.quic.crypto`); a stream's
  send buffer holds the writers' own bytes (:mod:`~p2pstack.transport.quic.sender`);
  padding is skipped in one call; the client offers two key shares, not four.

aioquic internals are wrapped rather than replaced where possible: ``_write_stream_limits``
and ``_write_connection_limits`` (aioquic's own "double on arrival" rule is kept out by
hiding the received offset from it for the duration of the call), ``_initialize``,
``_update_traffic_key``, ``_parse_transport_parameters``, ``_get_or_create_stream`` and
``_get_or_create_stream_for_send`` (and ``handle_timer``, which settles a loss timer that
came due without its packet counting as lost); ``_write_stream_frame`` and
``_handle_padding_frame`` are our own. The version range in ``pyproject.toml`` pins what
these hooks were written against, and ``tests/transport/test_quic_core.py`` checks them.
"""

from __future__ import annotations

import math
from typing import Any

from aioquic import tls
from aioquic.buffer import Buffer, size_uint_var  # type: ignore[attr-defined]  # C extension
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicFrameType, pull_quic_transport_parameters
from aioquic.quic.recovery import QuicPacketPacer

from p2pstack.identity import PeerID
from p2pstack.transport.quic.crypto import use_fast_header_protection
from p2pstack.transport.quic.sender import ChunkedStreamSender
from p2pstack.transport.quic.tls import Libp2pTlsContext

#: QUIC application error code for a connection closed normally, and for a stream reset
#: (go-libp2p and rust-libp2p use 0 for both).
NO_ERROR = 0
#: Close code for a connection whose handshake did not finish in time.
HANDSHAKE_TIMEOUT_CODE = 0x1
#: The most one call of ``datagrams_to_send`` puts in flight. With a large congestion window
#: and a full send buffer, one call could otherwise build megabytes of packets (tens of
#: milliseconds of CPU) while the peer's packets, a ping's answer say, wait unread; past
#: this the call stops and sets ``more_to_send``, and the shell reads and lets other tasks
#: run before it asks again.
SEND_BATCH = 256 * 1024
#: The shortest wait the shell's timer can make: the event loops wait in epoll, which
#: counts in milliseconds, so a timer due sooner fires a millisecond later all the same.
TIMER_GRANULARITY = 0.001


class _Pacer(QuicPacketPacer):
    """aioquic's pacer, with bursts of at least :data:`TIMER_GRANULARITY` worth of sending
    (quic-go's minimum pacing delay, for the same reason). aioquic's own burst is 16
    packets at most: with the peer's 1,252 to 1,452-byte datagrams (go, rust), a sender
    woken once a millisecond then moved 16 packets per millisecond (8 to 20 MiB/s on
    loopback, whatever the congestion window allowed)."""

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        super().update_rate(congestion_window, smoothed_rtt)
        if self.bucket_max < TIMER_GRANULARITY:
            self.bucket_max = TIMER_GRANULARITY


class QuicCore(QuicConnection):
    """One QUIC connection (client or server), sans-IO. See the module docstring.

    ``expected_peer`` (client side) is the PeerID the server must prove. After the
    handshake, :attr:`remote_peer` holds the proven PeerID; when the libp2p check failed,
    :attr:`libp2p_error` holds the typed error.
    """

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        expected_peer: PeerID | None = None,
        original_destination_connection_id: bytes | None = None,
        max_inbound_streams: int = 256,
        stream_window: int = 1 << 20,
        max_stream_window: int = 16 << 20,
        connection_window: int = 3 << 20,
        max_connection_window: int = 24 << 20,
        keepalive_interval: float | None = 15.0,
        handshake_timeout: float = 10.0,
        path_max_datagram_size: int = 1200,
        send_batch: int = SEND_BATCH,
        now: float = 0.0,
    ) -> None:
        configuration.max_stream_data = stream_window
        configuration.max_data = connection_window
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )
        # ``sent`` too: the transport parameters announce these values, and aioquic batches
        # MAX_STREAMS by comparing ``value`` with ``sent`` (its 128 would hold them back).
        self._local_max_streams_bidi.value = self._local_max_streams_bidi.sent = max_inbound_streams
        self._local_max_streams_uni.value = self._local_max_streams_uni.sent = 0
        self._loss._pacer.__class__ = _Pacer
        self.expected_peer = expected_peer
        self._max_stream_window = max_stream_window
        self._max_connection_window = max_connection_window
        self._connection_window = connection_window
        self._connection_updated_at = -math.inf
        self._stream_window = stream_window
        self._windows: dict[int, list[float]] = {}  # stream id -> [window, updated at]
        self._unread: dict[int, int] = {}  # stream id -> delivered but not yet consumed
        self._unread_total = 0
        # Stream bytes handed out in events (plus reset streams' undelivered rest): out of
        # order bytes behind a gap are received but not delivered, and earn no credit.
        self._delivered_total = 0
        self._ignored: set[int] = set()  # streams whose data nobody will read
        self._now = now
        self._keepalive_interval = keepalive_interval
        self._keepalive_at: float | None = None
        self._handshake_deadline: float | None = now + handshake_timeout
        self._ping_uid = 0
        self._unacked_received = 0
        self._path_max_datagram_size = path_max_datagram_size
        self._peer_max_udp_payload = 1200
        self._datagrams_pending_growth = path_max_datagram_size > 1200
        self._send_batch = send_batch
        #: The last ``datagrams_to_send`` stopped at ``send_batch``: call it again soon.
        self.more_to_send = False

    # ------------------------------------------------------------------ identity

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        context = self.tls
        context.__class__ = Libp2pTlsContext
        assert isinstance(context, Libp2pTlsContext)
        context.setup(self.expected_peer)

    @property
    def _libp2p_tls(self) -> Libp2pTlsContext | None:
        context = getattr(self, "tls", None)
        return context if isinstance(context, Libp2pTlsContext) else None

    @property
    def remote_peer(self) -> PeerID | None:
        context = self._libp2p_tls
        return context.remote_peer if context is not None else None

    @property
    def remote_public_key(self) -> Any:
        context = self._libp2p_tls
        return context.remote_public_key if context is not None else None

    @property
    def libp2p_error(self) -> Exception | None:
        context = self._libp2p_tls
        return context.libp2p_error if context is not None else None

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_complete

    @property
    def is_closed(self) -> bool:
        return self._close_event is not None

    def _update_traffic_key(
        self, direction: Any, epoch: Any, cipher_suite: Any, secret: bytes
    ) -> None:
        super()._update_traffic_key(direction, epoch, cipher_suite, secret)
        use_fast_header_protection(self._cryptos[epoch])

    # ------------------------------------------------------------------ time

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        self._now = now
        super().receive_datagram(data, addr, now)
        # aioquic acknowledges only after its 1 ms ACK delay, which caps a transfer at one
        # window per millisecond; like quic-go (and RFC 9000 13.2.2), acknowledge every
        # second ack-eliciting packet at once (the shell sends after each batch it read).
        space = self._spaces.get(tls.Epoch.ONE_RTT)
        if space is not None and space.ack_at is not None:
            self._unacked_received += 1
            if self._unacked_received >= 2:
                space.ack_at = now

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        self._now = now
        if self._datagrams_pending_growth and self._handshake_confirmed:
            # Only now: Initial and Handshake packets are padded to the datagram size.
            self._datagrams_pending_growth = False
            self._grow_datagrams(min(self._path_max_datagram_size, self._peer_max_udp_payload))
        # The batch limit, as a congestion window no larger than what is in flight plus
        # the batch for the duration of the call (nothing in it changes the window).
        cc = self._loss._cc
        window = cc.congestion_window
        cap = cc.bytes_in_flight + self._send_batch
        capped = cap < window
        if capped:
            cc.congestion_window = cap
        try:
            datagrams = super().datagrams_to_send(now)
        finally:
            if capped:
                cc.congestion_window = window
        self.more_to_send = capped and cc.bytes_in_flight + self._max_datagram_size > cap
        space = self._spaces.get(tls.Epoch.ONE_RTT)
        if space is not None and space.ack_at is None:
            self._unacked_received = 0
        return datagrams

    def get_timer(self) -> float | None:
        timer = super().get_timer()
        for extra in (self._keepalive_at, self._handshake_deadline):
            if extra is not None and (timer is None or extra < timer):
                timer = extra
        return timer

    def handle_timer(self, now: float) -> None:
        self._now = now
        deadline = self._handshake_deadline
        if deadline is not None and now >= deadline and not self._handshake_complete:
            self._handshake_deadline = None
            self.close(error_code=HANDSHAKE_TIMEOUT_CODE, reason_phrase="handshake timeout")
            return
        keepalive = self._keepalive_at
        if keepalive is not None and now >= keepalive:
            self._ping_uid += 1
            self.send_ping(self._ping_uid)
            self._keepalive_at = now + (self._keepalive_interval or 0.0)
        loss_at, close_at = self._loss_at, self._close_at
        loss_due = loss_at is not None and loss_at <= now and (close_at is None or now < close_at)
        super().handle_timer(now)
        if loss_due:
            # aioquic counts a packet lost once its send time is at most now - threshold,
            # but sets the timer to send time + threshold; in floating point the two may
            # differ by an ulp, and then the timer comes due without the packet counting
            # as lost, and stays where it was: a shell would wake for it again at once (a
            # fake clock, forever). A few ulps later the packet counts as lost.
            space = self._loss._get_loss_space()
            if space is not None and space.loss_time is not None and space.loss_time <= now:
                self._loss.on_loss_detection_timeout(now=now + 4 * math.ulp(now))

    def next_event(self) -> events.QuicEvent | None:
        event = super().next_event()
        if isinstance(event, events.HandshakeCompleted):
            self._handshake_deadline = None
            if self._keepalive_interval is not None:
                self._keepalive_at = self._now + self._keepalive_interval
        elif isinstance(event, events.StreamDataReceived) and event.data:
            sid = event.stream_id
            self._delivered_total += len(event.data)
            if sid not in self._ignored:
                self._unread[sid] = self._unread.get(sid, 0) + len(event.data)
                self._unread_total += len(event.data)
        elif isinstance(event, events.StreamReset):
            # What the peer never sent (up to the reset's final size) is done with as well.
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                receiver = stream.receiver
                self._delivered_total += receiver.highest_offset - receiver.starting_offset()
        elif isinstance(event, events.ConnectionTerminated):
            self._keepalive_at = self._handshake_deadline = None
        return event

    # ------------------------------------------------------------------ datagram size

    def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False) -> None:
        super()._parse_transport_parameters(data, from_session_ticket)
        params = pull_quic_transport_parameters(Buffer(data=data))
        # RFC 9000 18.2: absent means 65527.
        self._peer_max_udp_payload = params.max_udp_payload_size or 65527

    def _handle_padding_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        # aioquic skips padding one byte at a time in Python (~1.5 ms for a 1200-byte
        # Initial); skip the run of zero bytes in one C call instead.
        pos = buf.tell()
        rest = buf.data_slice(pos, buf.capacity)
        buf.seek(pos + len(rest) - len(rest.lstrip(b"\x00")))

    def _grow_datagrams(self, size: int) -> None:
        """Send datagrams of up to ``size`` bytes from now on (the path and the peer allow
        it). aioquic fixes the size at creation, and a client's first datagrams must fit any
        peer's receive buffer, so the size grows once the handshake told us the peer's
        limit. The congestion window keeps its size in packets."""
        old = self._max_datagram_size
        if size <= old:
            return
        self._max_datagram_size = size
        loss = self._loss
        loss._pacer._max_datagram_size = size
        cc = loss._cc
        if hasattr(cc, "_max_datagram_size"):
            cc._max_datagram_size = size
        if hasattr(cc, "additive_increase_factor"):
            cc.additive_increase_factor = size
        cc.congestion_window = cc.congestion_window * size // old

    @property
    def max_datagram_size(self) -> int:
        return int(self._max_datagram_size)

    # ------------------------------------------------------------------ flow control

    def consume(self, stream_id: int, n: int) -> bool:
        """The application read ``n`` bytes of ``stream_id``. Returns whether the peer
        should now be sent more credit (then call ``datagrams_to_send``)."""
        left = self._unread.get(stream_id, 0) - n
        if left < 0:
            raise ValueError(f"stream {stream_id}: consumed more than was delivered")
        self._unread[stream_id] = left
        self._unread_total -= n
        stream = self._streams.get(stream_id)
        return bool(stream is not None and self._stream_credit_due(stream)) or (
            self._connection_credit_due()
        )

    def ignore(self, stream_id: int) -> None:
        """Nobody will read ``stream_id`` again: what it holds or still receives counts as
        read (so it does not hold the connection's credit)."""
        self._unread_total -= self._unread.pop(stream_id, 0)
        self._windows.pop(stream_id, None)
        ignored = self._ignored
        ignored.add(stream_id)
        if len(ignored) > 1024:  # keep only streams aioquic still holds
            ignored.intersection_update(self._streams.keys())

    def forget(self, stream_id: int) -> None:
        """Drop the bookkeeping of a stream that is over in both directions."""
        self.ignore(stream_id)
        self._ignored.discard(stream_id)

    def _stream_consumed(self, stream: Any) -> int:
        return int(stream.receiver.starting_offset()) - self._unread.get(stream.stream_id, 0)

    def _stream_credit_due(self, stream: Any) -> bool:
        if not stream.max_stream_data_local or stream.stream_id in self._ignored:
            return False
        window = self._windows.get(stream.stream_id, (self._stream_window, 0.0))[0]
        left: int = stream.max_stream_data_local - self._stream_consumed(stream)
        return left < window / 2

    def _connection_consumed(self) -> int:
        return self._delivered_total - self._unread_total

    def _connection_credit_due(self) -> bool:
        consumed = self._connection_consumed()
        return self._local_max_data.value - consumed < self._connection_window / 2

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        if self._stream_credit_due(stream):
            # The first update only starts the clock (as in quic-go): no growth without a
            # measured period.
            entry = self._windows.setdefault(stream.stream_id, [self._stream_window, -math.inf])
            if self._now - entry[1] < 2 * self._smoothed_rtt():
                entry[0] = min(entry[0] * 2, self._max_stream_window)
            entry[1] = self._now
            stream.max_stream_data_local = max(
                stream.max_stream_data_local, self._stream_consumed(stream) + int(entry[0])
            )
        receiver = stream.receiver
        highest = receiver.highest_offset
        receiver.highest_offset = 0  # keeps aioquic's grant-on-arrival rule out
        try:
            super()._write_stream_limits(builder, space, stream)
        finally:
            receiver.highest_offset = highest

    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        limit = self._local_max_data
        if self._connection_credit_due():
            if self._now - self._connection_updated_at < 2 * self._smoothed_rtt():
                self._connection_window = min(
                    self._connection_window * 2, self._max_connection_window
                )
            self._connection_updated_at = self._now
            limit.value = max(limit.value, self._connection_consumed() + self._connection_window)
        used = limit.used
        limit.used = 0  # as above
        try:
            super()._write_connection_limits(builder, space)
        finally:
            limit.used = used

    def _smoothed_rtt(self) -> float:
        loss = self._loss
        return float(loss._rtt_smoothed) if loss._rtt_initialized else 0.1

    # ------------------------------------------------------------------ send side

    def _get_or_create_stream(self, frame_type: int, stream_id: int) -> Any:
        stream = super()._get_or_create_stream(frame_type, stream_id)
        ChunkedStreamSender.adopt(stream.sender)
        return stream

    def _get_or_create_stream_for_send(self, stream_id: int) -> Any:
        stream = super()._get_or_create_stream_for_send(stream_id)
        ChunkedStreamSender.adopt(stream.sender)
        return stream

    def _write_stream_frame(self, builder: Any, space: Any, stream: Any, max_offset: int) -> int:
        """Write one STREAM frame (RFC 9000 19.8) with its length as a full varint.

        aioquic writes the length in two bytes, which caps a frame, and with one stream a
        whole packet, at 16383 bytes; large datagrams on loopback need longer frames.
        Returns how far the stream's highest sent offset moved (aioquic's contract)."""
        sender = stream.sender
        next_offset = sender.next_offset
        overhead = 5 + size_uint_var(stream.stream_id)  # type, 4-byte length at most
        if next_offset:
            overhead += size_uint_var(next_offset)
        previous = sender.highest_offset
        frame = sender.get_frame(builder.remaining_flight_space - overhead, max_offset)
        if frame is None:
            return 0
        frame_type = QuicFrameType.STREAM_BASE | 2
        if frame.offset:
            frame_type |= 4
        if frame.fin:
            frame_type |= 1
        buf = builder.start_frame(
            frame_type,
            capacity=overhead,
            handler=sender.on_data_delivery,
            handler_args=(frame.offset, frame.offset + len(frame.data), frame.fin),
        )
        buf.push_uint_var(stream.stream_id)
        if frame.offset:
            buf.push_uint_var(frame.offset)
        buf.push_uint_var(len(frame.data))
        buf.push_bytes(frame.data)
        return int(sender.highest_offset - previous)

    def send_stream_data(
        self, stream_id: int, data: bytes | memoryview, end_stream: bool = False
    ) -> None:
        # Our streams' senders (ChunkedStreamSender) take views too.
        super().send_stream_data(stream_id, data, end_stream)  # type: ignore[arg-type]
        # A pending ACK rides on the data packet now rather than alone after the ACK delay:
        # a request/response exchange then costs two datagrams, not four.
        space = self._spaces.get(tls.Epoch.ONE_RTT)
        if space is not None and space.ack_at is not None and (data or end_stream):
            space.ack_at = min(space.ack_at, self._now)

    def unacked(self, stream_id: int) -> int:
        """Bytes written to ``stream_id`` that the peer has not acknowledged yet (what our
        send buffer holds for it)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender._buffer_start)
