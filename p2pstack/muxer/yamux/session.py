"""The yamux session as a sans-IO state machine.

Rules of this file:

- Bytes from the peer go in through :meth:`YamuxSession.receive_data`, which returns the
  events they caused (a Data payload as it arrives, piece by piece). Bytes for the peer
  come out of :meth:`YamuxSession.data_to_send`, or of
  :meth:`YamuxSession.segments_to_send`, which leaves large payloads in the sender's own
  buffers. Time comes in as ``now`` (keepalive only). Nothing here does I/O or reads a
  clock.
- A peer's violation of the session (bad version, type or flags, a window overrun, a stream
  it may not open) queues a GoAway with the protocol-error code and raises
  :class:`~p2pstack.errors.RemoteProtocolError` carrying that code; the session is then dead
  and the shell flushes what is queued and closes the connection.
- A violation that concerns one stream only (data after its FIN) resets that stream.
- Our own misuse (sending on a closed stream, opening after GoAway) raises
  :class:`~p2pstack.errors.LocalProtocolError` and changes nothing.
- Streams we open get odd ids when we are the client (dialer), even ids otherwise.

Flow control: each stream starts with a 256 KiB window in both directions. We return credit
to the peer (a WindowUpdate) once the application has consumed half of the current window,
and we double the window, up to ``max_window``, each time the application had read
everything that arrived by then: a reader that keeps up earns a larger window, a slow reader
keeps memory at its current window.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pstack.errors import LocalProtocolError, RemoteProtocolError, ResourceLimitExceeded
from p2pstack.framing.views import byte_view
from p2pstack.muxer.yamux.frame import (
    ALL_FLAGS,
    DEFAULT_MAX_FRAME_DATA,
    DEFAULT_MAX_REFERENCED_FRAME_DATA,
    HEADER,
    HEADER_SIZE,
    INITIAL_WINDOW,
    MAX_WINDOW,
    VERSION,
    Flag,
    FrameType,
    GoAwayCode,
)

_SYN = int(Flag.SYN)
_ACK = int(Flag.ACK)
_FIN = int(Flag.FIN)
_RST = int(Flag.RST)
_DATA = int(FrameType.DATA)
_WINDOW_UPDATE = int(FrameType.WINDOW_UPDATE)
_PING = int(FrameType.PING)
_GO_AWAY = int(FrameType.GO_AWAY)
_pack = HEADER.pack
_pack_into = HEADER.pack_into
_unpack_from = HEADER.unpack_from

#: A Data payload this large, in an immutable buffer, is queued by reference, not copied
#: (see :meth:`YamuxSession.segments_to_send`); smaller ones are cheaper to copy.
REFERENCE_AT = 16 * 1024


# ---------------------------------------------------------------------------- events


@dataclass(slots=True, frozen=True)
class StreamOpened:
    """The peer opened stream ``stream_id`` (we already acknowledged it)."""

    stream_id: int


@dataclass(slots=True, frozen=True)
class StreamRejected:
    """The peer opened a stream beyond our inbound limit; we reset it."""

    stream_id: int


@dataclass(slots=True, frozen=True)
class DataReceived:
    stream_id: int
    data: bytes


@dataclass(slots=True, frozen=True)
class StreamEnded:
    """The peer closed its write side of the stream (FIN)."""

    stream_id: int


@dataclass(slots=True, frozen=True)
class StreamReset:
    """The stream was reset: by the peer (RST) when ``remote``, else by this session."""

    stream_id: int
    remote: bool = True


@dataclass(slots=True, frozen=True)
class WindowOpened:
    """The peer granted more send window on the stream."""

    stream_id: int


@dataclass(slots=True, frozen=True)
class StreamAcknowledged:
    """The peer acknowledged a stream we opened."""

    stream_id: int


@dataclass(slots=True, frozen=True)
class PingAcknowledged:
    opaque: int
    sent_at: float | None


@dataclass(slots=True, frozen=True)
class GoAwayReceived:
    code: int


@dataclass(slots=True, frozen=True)
class KeepaliveTimedOut:
    """A keepalive ping went unanswered; the connection should be considered dead."""


Event = (
    StreamOpened
    | StreamRejected
    | DataReceived
    | StreamEnded
    | StreamReset
    | WindowOpened
    | StreamAcknowledged
    | PingAcknowledged
    | GoAwayReceived
    | KeepaliveTimedOut
)


# ---------------------------------------------------------------------------- streams


class _Stream:
    __slots__ = (
        "acked",
        "local_closed",
        "outbound",
        "pending_credit",
        "recv_window",
        "remote_closed",
        "send_window",
        "window_size",
    )

    def __init__(self, outbound: bool, window: int) -> None:
        self.outbound = outbound
        self.acked = not outbound
        self.send_window = INITIAL_WINDOW
        self.window_size = window  # the receive window we currently grant
        self.recv_window = window  # credit the peer has left
        self.pending_credit = 0  # consumed by the app, not yet returned to the peer
        self.local_closed = False
        self.remote_closed = False


class YamuxSession:
    """One yamux session (one side of one connection)."""

    def __init__(
        self,
        is_client: bool,
        *,
        max_inbound_streams: int = 1024,
        max_unacked_outbound: int = 256,
        max_window: int = MAX_WINDOW,
        max_frame_data: int = DEFAULT_MAX_FRAME_DATA,
        max_referenced_frame_data: int = DEFAULT_MAX_REFERENCED_FRAME_DATA,
        keepalive_interval: float | None = 30.0,
        keepalive_timeout: float = 15.0,
    ) -> None:
        if max_window < INITIAL_WINDOW:
            raise LocalProtocolError("max_window must be at least the initial 256 KiB window")
        self.is_client = is_client
        self.max_inbound_streams = max_inbound_streams
        self.max_unacked_outbound = max_unacked_outbound
        self.max_window = max_window
        self.max_frame_data = max_frame_data
        self.max_referenced_frame_data = max_referenced_frame_data
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1 if is_client else 2
        self._highest_remote_id = 0
        self._inbound_count = 0
        self._unacked_outbound = 0
        # Output: ``_segments`` (payloads queued by reference, each after the bytearray
        # that holds what came before it), then ``_out`` (frames copied since).
        self._segments: list[bytes | bytearray | memoryview] = []
        self._segment_bytes = 0
        self._out = bytearray()
        # Input: a partial header (fewer than 12 bytes), or the rest of a Data frame's
        # payload still to come (``_payload_left`` bytes for ``_payload_sid``).
        self._in = bytearray()
        self._payload_left = 0
        self._payload_sid = 0
        self._payload_stream: _Stream | None = None
        self._payload_flags = 0
        self._events: list[Event] = []
        self._next_ping_opaque = 1
        self._pings_sent: dict[int, float | None] = {}
        self._keepalive_due: float | None = None
        self._keepalive_ping: tuple[int, float] | None = None
        self.local_go_away: bool = False
        self.remote_go_away: int | None = None
        self.terminated: bool = False

    # ------------------------------------------------------------------ state queries

    def data_to_send(self) -> bytearray:
        """Everything queued for the peer, emptying the queue."""
        out = self._out
        if self._segments:
            segments = self.segments_to_send()
            return bytearray().join(segments)
        if out:
            self._out = bytearray()
        return out

    def segments_to_send(self) -> list[bytes | bytearray | memoryview]:
        """Everything queued for the peer as buffers to write in order, emptying the queue.

        A Data payload of at least :data:`REFERENCE_AT` bytes given as ``bytes`` (or a view
        of them) is not copied: it comes as a view of the caller's object, in a segment of
        its own, after a bytearray that holds its header and whatever was queued before.
        A secure channel may so encrypt it straight from there, and seal the header apart
        (Noise: the peer can then take the payload's message as it is, without a copy)."""
        segments = self._segments
        out = self._out
        if out:
            segments.append(out)
            self._out = bytearray()
        if segments:
            self._segments = []
            self._segment_bytes = 0
        return segments

    @property
    def bytes_to_send(self) -> int:
        return self._segment_bytes + len(self._out)

    def send_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.send_window if st is not None else 0

    def can_open_stream(self) -> bool:
        return self._unacked_outbound < self.max_unacked_outbound

    def stream_is_open(self, stream_id: int) -> bool:
        return stream_id in self._streams

    @property
    def open_stream_count(self) -> int:
        return len(self._streams)

    # ------------------------------------------------------------------ local actions

    def open_stream(self) -> int:
        """Allocate a stream id and queue its SYN (a WindowUpdate carrying SYN)."""
        self._check_usable()
        if self.local_go_away or self.remote_go_away is not None:
            raise LocalProtocolError("session is going away; no new streams")
        if not self.can_open_stream():
            raise ResourceLimitExceeded(
                f"{self.max_unacked_outbound} outbound streams are awaiting acknowledgement"
            )
        stream_id = self._next_id
        if stream_id > 0xFFFFFFFF:
            raise ResourceLimitExceeded("stream ids exhausted")
        self._next_id += 2
        self._streams[stream_id] = _Stream(outbound=True, window=INITIAL_WINDOW)
        self._unacked_outbound += 1
        self._frame(_WINDOW_UPDATE, _SYN, stream_id, 0)
        return stream_id

    def send_data(self, stream_id: int, data: bytes | bytearray | memoryview) -> int:
        """Frame as much of ``data`` as the send window allows; return how many bytes."""
        st = self._writable(stream_id)
        view = byte_view(data)  # count and frame bytes, not items
        n = min(len(view), st.send_window)
        if n <= 0:
            return 0
        st.send_window -= n
        step = self.max_frame_data
        pos = 0
        out = self._out
        if n >= REFERENCE_AT and isinstance(view.obj, bytes):
            segments = self._segments
            step = self.max_referenced_frame_data
            while pos < n:
                size = min(step, n - pos)
                out += _pack(VERSION, _DATA, 0, stream_id, size)
                segments.append(out)
                segments.append(view[pos : pos + size])
                self._segment_bytes += len(out) + size
                out = bytearray()
                pos += size
            self._out = out
            return n
        if out:
            # Behind queued bytes (the writer is busy): append each frame in place rather
            # than build the frames apart and copy them over.
            while pos < n:
                size = min(step, n - pos)
                out += _pack(VERSION, _DATA, 0, stream_id, size)
                out += view[pos : pos + size]
                pos += size
            return n
        count = (n + step - 1) // step
        # One allocation of the exact size: growing a buffer frame by frame costs more.
        frames = bytearray(n + count * HEADER_SIZE)
        at = 0
        while pos < n:
            size = min(step, n - pos)
            _pack_into(frames, at, VERSION, _DATA, 0, stream_id, size)
            at += HEADER_SIZE
            frames[at : at + size] = view[pos : pos + size]
            at += size
            pos += size
        self._out = frames
        return n

    def send_eof(self, stream_id: int) -> None:
        """Close our write side (FIN). Idempotent once sent."""
        st = self._streams.get(stream_id)
        if st is None or st.local_closed:
            return
        self._check_usable()
        st.local_closed = True
        self._frame(_WINDOW_UPDATE, _FIN, stream_id, 0)
        self._maybe_forget(stream_id, st)

    def reset_stream(self, stream_id: int) -> None:
        """Abort the stream both ways (RST). A no-op on a stream already gone."""
        st = self._streams.pop(stream_id, None)
        if st is None:
            return
        self._drop_counters(stream_id, st)
        if not self.terminated:
            self._frame(_WINDOW_UPDATE, _RST, stream_id, 0)

    def consume(self, stream_id: int, n: int, *, drained: bool) -> None:
        """The application read ``n`` bytes of the stream; ``drained`` when nothing is left
        buffered. Queues a WindowUpdate once half the window has been consumed."""
        st = self._streams.get(stream_id)
        if st is None or st.remote_closed or self.terminated:
            return
        st.pending_credit += n
        if st.pending_credit < st.window_size // 2:
            return
        grant = st.pending_credit
        if drained and st.window_size < self.max_window:
            new_size = min(st.window_size * 2, self.max_window)
            grant += new_size - st.window_size
            st.window_size = new_size
        st.pending_credit = 0
        st.recv_window += grant
        self._frame(_WINDOW_UPDATE, 0, stream_id, grant)

    def ping(self, now: float | None = None) -> int:
        """Queue a ping; returns its opaque value (echoed in :class:`PingAcknowledged`)."""
        self._check_usable()
        opaque = self._next_ping_opaque
        self._next_ping_opaque = (opaque + 1) & 0xFFFFFFFF or 1
        self._pings_sent[opaque] = now
        self._frame(_PING, _SYN, 0, opaque)
        return opaque

    def go_away(self, code: int = GoAwayCode.NORMAL) -> None:
        """Tell the peer we open no more streams and accept none. Existing streams go on."""
        if self.local_go_away or self.terminated:
            return
        self.local_go_away = True
        self._frame(_GO_AWAY, 0, 0, int(code))

    # ------------------------------------------------------------------ timers

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` wants calling next; ``None`` before the first call."""
        if self.terminated or self.keepalive_interval is None:
            return None
        if self._keepalive_ping is not None:
            return self._keepalive_ping[1] + self.keepalive_timeout
        return self._keepalive_due

    def handle_timer(self, now: float) -> list[Event]:
        """Drive keepalive: a ping every ``keepalive_interval`` (go-yamux's 30 s), and
        :class:`KeepaliveTimedOut` when one stays unanswered for ``keepalive_timeout``.
        The shell calls this once at start, then whenever :meth:`next_timer` is reached."""
        if self.terminated or self.keepalive_interval is None:
            return []
        if self._keepalive_ping is not None:
            if now >= self._keepalive_ping[1] + self.keepalive_timeout:
                self._keepalive_ping = None
                return [KeepaliveTimedOut()]
            return []
        if self._keepalive_due is None:
            self._keepalive_due = now + self.keepalive_interval
        elif now >= self._keepalive_due:
            self._keepalive_ping = (self.ping(now), now)
            self._keepalive_due = now + self.keepalive_interval
        return []

    # ------------------------------------------------------------------ peer input

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes from the peer; return the events they complete.

        A Data frame's payload is delivered as it arrives, in as many
        :class:`DataReceived` events as the input splits it into. When ``data`` is a
        ``bytes`` object that the payload fills entirely, the event carries ``data`` itself
        (no copy); otherwise nothing refers to ``data`` afterwards (the caller may reuse its
        buffer)."""
        self._check_usable()
        if isinstance(data, bytearray):
            data = memoryview(data)
        events = self._events
        self._events = []
        end = len(data)
        pos = 0
        buf = self._in
        try:
            if self._payload_left:
                pos = self._payload(data, 0, end, events)
            if buf and pos < end:
                take = min(HEADER_SIZE - len(buf), end - pos)
                buf += data[pos : pos + take]
                pos += take
                if len(buf) < HEADER_SIZE:
                    return events
                header = bytes(buf)
                buf.clear()
                self._parse(header, 0, HEADER_SIZE, events)
                if self._payload_left and pos < end:
                    pos = self._payload(data, pos, end, events)
            if pos < end:
                pos = self._parse(data, pos, end, events)
                if pos < end:
                    buf += data[pos:end]  # part of a header
        except RemoteProtocolError:
            self._terminate(GoAwayCode.PROTOCOL_ERROR)
            raise
        return events

    def _payload(self, src: bytes | memoryview, pos: int, end: int, events: list[Event]) -> int:
        """Take what ``src[pos:end]`` holds of the Data payload under way; returns where
        it stopped. The frame's FIN or RST applies once its payload is complete."""
        n = min(self._payload_left, end - pos)
        sid = self._payload_sid
        st = self._payload_stream
        if st is not None and self._streams.get(sid) is not st:
            st = self._payload_stream = None  # reset meanwhile: drop the rest
        if n and st is not None:
            if pos == 0 and n == len(src) and type(src) is bytes:
                piece = src  # all of it: no copy
            else:
                piece = bytes(src[pos : pos + n])
            events.append(DataReceived(sid, piece))
        self._payload_left -= n
        if not self._payload_left:
            self._payload_stream = None
            if st is not None and self._payload_flags & (_FIN | _RST):
                self._end_flags(sid, st, self._payload_flags, events)
        return pos + n

    def _parse(self, src: bytes | memoryview, pos: int, end: int, events: list[Event]) -> int:
        """Handle whole frames from ``src[pos:end]``, and the start of a Data frame whose
        payload goes on; returns where it stopped (before a partial header, if any)."""
        while end - pos >= HEADER_SIZE:
            version, ftype, flags, sid, length = _unpack_from(src, pos)
            if version != VERSION:
                raise RemoteProtocolError(f"yamux version {version}", GoAwayCode.PROTOCOL_ERROR)
            if ftype == _DATA:
                start = pos + HEADER_SIZE
                st = self._flags_and_stream(ftype, flags, sid, events)
                if length and (st is None or st.remote_closed):
                    if length > (INITIAL_WINDOW if flags & _SYN else self.max_window):
                        # Dropped, but still more than any window we could have granted.
                        raise RemoteProtocolError("window overrun", GoAwayCode.PROTOCOL_ERROR)
                    if st is not None:  # data after the peer's FIN
                        self._reset_by_us(sid, st, events)
                        st = None  # gone: a RST flag on this frame changes nothing more
                elif length and st is not None:
                    if length > st.recv_window:
                        raise RemoteProtocolError(
                            f"window overrun on stream {sid}", GoAwayCode.PROTOCOL_ERROR
                        )
                    st.recv_window -= length
                if end - start < length:
                    # The payload goes on in later input: what is here now goes at once.
                    self._payload_sid = sid
                    self._payload_stream = st
                    self._payload_flags = flags
                    self._payload_left = length
                    return self._payload(src, start, end, events)
                pos = start + length
                if st is not None:
                    if length:
                        events.append(DataReceived(sid, bytes(src[start:pos])))
                    if flags & (_FIN | _RST):
                        self._end_flags(sid, st, flags, events)
            elif ftype == _WINDOW_UPDATE:
                pos += HEADER_SIZE
                st = self._flags_and_stream(ftype, flags, sid, events)
                if st is not None:
                    if length:
                        st.send_window += length
                        if st.send_window > 0xFFFFFFFF:
                            raise RemoteProtocolError(
                                "send window overflow", GoAwayCode.PROTOCOL_ERROR
                            )
                        events.append(WindowOpened(sid))
                    if flags & (_FIN | _RST):
                        self._end_flags(sid, st, flags, events)
            elif ftype == _PING:
                pos += HEADER_SIZE
                if sid != 0 or flags not in (_SYN, _ACK):
                    raise RemoteProtocolError("malformed ping", GoAwayCode.PROTOCOL_ERROR)
                if flags == _SYN:
                    self._frame(_PING, _ACK, 0, length)
                else:
                    if length not in self._pings_sent:
                        # An unsolicited pong is harmless; go and rust ignore it too.
                        continue
                    sent_at = self._pings_sent.pop(length)
                    if self._keepalive_ping is not None and self._keepalive_ping[0] == length:
                        self._keepalive_ping = None
                    events.append(PingAcknowledged(length, sent_at))
            elif ftype == _GO_AWAY:
                pos += HEADER_SIZE
                if sid != 0 or flags:
                    raise RemoteProtocolError("malformed go away", GoAwayCode.PROTOCOL_ERROR)
                self.remote_go_away = length
                events.append(GoAwayReceived(length))
            else:
                raise RemoteProtocolError(f"yamux frame type {ftype}", GoAwayCode.PROTOCOL_ERROR)
        return pos

    def _flags_and_stream(
        self, ftype: int, flags: int, sid: int, events: list[Event]
    ) -> _Stream | None:
        """Validate a Data/WindowUpdate header's flags and id; return its live stream."""
        if flags & ~ALL_FLAGS or (flags & _SYN and flags & _ACK):
            raise RemoteProtocolError(f"bad yamux flags {flags:#x}", GoAwayCode.PROTOCOL_ERROR)
        if sid == 0:
            raise RemoteProtocolError("stream frame on stream 0", GoAwayCode.PROTOCOL_ERROR)
        remote_parity = (sid & 1) == (0 if self.is_client else 1)
        if flags & _SYN:
            if not remote_parity:
                raise RemoteProtocolError(
                    f"peer opened stream {sid} with our parity", GoAwayCode.PROTOCOL_ERROR
                )
            if sid <= self._highest_remote_id:
                raise RemoteProtocolError(f"peer reused stream id {sid}", GoAwayCode.PROTOCOL_ERROR)
            self._highest_remote_id = sid
            if self._inbound_count >= self.max_inbound_streams or self.local_go_away:
                self._frame(_WINDOW_UPDATE, _RST, sid, 0)
                events.append(StreamRejected(sid))
                return None
            new = _Stream(outbound=False, window=INITIAL_WINDOW)
            self._streams[sid] = new
            self._inbound_count += 1
            self._frame(_WINDOW_UPDATE, _ACK, sid, 0)
            events.append(StreamOpened(sid))
            return new
        st = self._streams.get(sid)
        if st is None:
            known = sid <= self._highest_remote_id if remote_parity else sid < self._next_id
            if not known:
                raise RemoteProtocolError(
                    f"frame for stream {sid} that was never opened", GoAwayCode.PROTOCOL_ERROR
                )
            return None
        if flags & _ACK and st.outbound and not st.acked:
            st.acked = True
            self._unacked_outbound -= 1
            events.append(StreamAcknowledged(sid))
        return st

    def _end_flags(self, sid: int, st: _Stream, flags: int, events: list[Event]) -> None:
        if flags & _RST:
            del self._streams[sid]
            self._drop_counters(sid, st)
            events.append(StreamReset(sid, remote=True))
            return
        if not st.remote_closed:
            st.remote_closed = True
            events.append(StreamEnded(sid))
            self._maybe_forget(sid, st)

    def _reset_by_us(self, sid: int, st: _Stream, events: list[Event]) -> None:
        del self._streams[sid]
        self._drop_counters(sid, st)
        self._frame(_WINDOW_UPDATE, _RST, sid, 0)
        events.append(StreamReset(sid, remote=False))

    # ------------------------------------------------------------------ helpers

    def _frame(self, ftype: int, flags: int, sid: int, length: int) -> None:
        out = self._out
        start = len(out)
        out += b"\0" * HEADER_SIZE
        _pack_into(out, start, VERSION, ftype, flags, sid, length)

    def _writable(self, stream_id: int) -> _Stream:
        self._check_usable()
        st = self._streams.get(stream_id)
        if st is None:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        if st.local_closed:
            raise LocalProtocolError(f"stream {stream_id} is closed for writing")
        return st

    def _maybe_forget(self, sid: int, st: _Stream) -> None:
        if st.local_closed and st.remote_closed:
            del self._streams[sid]
            self._drop_counters(sid, st)

    def _drop_counters(self, sid: int, st: _Stream) -> None:
        if st.outbound:
            if not st.acked:
                self._unacked_outbound -= 1
        else:
            self._inbound_count -= 1

    def _check_usable(self) -> None:
        if self.terminated:
            raise LocalProtocolError("yamux session is terminated")

    def _terminate(self, code: GoAwayCode) -> None:
        if not self.local_go_away:
            self.local_go_away = True
            self._frame(_GO_AWAY, 0, 0, int(code))
        self.terminated = True
        self._streams.clear()

    def terminate(self, code: GoAwayCode = GoAwayCode.NORMAL) -> None:
        """End the session: queue GoAway (unless already sent) and forget every stream."""
        if not self.terminated:
            self._terminate(code)
