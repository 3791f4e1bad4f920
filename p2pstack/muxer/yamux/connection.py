"""The anyio shell that drives a :class:`YamuxSession` over one secure ByteStream.

Three tasks serve a connection while :meth:`YamuxConnection.run` runs: a reader that feeds
the session and dispatches its events, a writer that sends whatever the session queued
(several frames per write), and a keepalive timer. The reader never waits for the writer,
so two peers sending bulk data to each other cannot deadlock.

Reading is a role that one task holds at a time. When the secure stream can be polled
(Noise over TCP: receive without waiting, wait apart from receiving), a stream's receiver
that finds nothing queued takes the role itself if it is free: it waits on the socket,
handles every frame that arrives (for all streams) and returns as soon as its own data is
there. The reply to a request thus reaches the task that waits for it in one scheduler
step, not two (the reader task's, then the receiver's), which is most of the cost of a
small round trip. The reader task holds the role whenever no receiver does, so frames are
handled while nobody reads too; it steps aside once it woke a waiting receiver, and that
receiver calls it back on its way out. The role is never free with the reader task asleep
for longer than one scheduler step. A receiver that keeps finding data without waiting
(a bulk transfer whose peer keeps the socket full) gives the other tasks a pass every
:data:`YIELD_AFTER_TURNS` turns. ``accept_stream`` with nothing queued also takes one
turn of reading (without waiting) when the role is free: a new connection's first streams,
which came with the handshake's last message, are accepted without waiting for the reader
task's first step.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import anyio.abc

from p2pstack import lowlevel
from p2pstack.attributes import P2PAttribute
from p2pstack.errors import LocalProtocolError, RemoteProtocolError, StreamReset
from p2pstack.muxer.abc import MuxedConnection, MuxedStream, StreamMuxer
from p2pstack.muxer.yamux import session as ev
from p2pstack.muxer.yamux.frame import GoAwayCode
from p2pstack.muxer.yamux.session import YamuxSession
from p2pstack.muxer.yamux.stream import YamuxStream

log = logging.getLogger(__name__)

PROTOCOL_ID = "/yamux/1.0.0"
#: go-yamux's accept backlog: streams the application has not accepted yet.
ACCEPT_BACKLOG = 256
#: The writer lets senders queue this much before they wait for it.
WRITE_HIGH_WATER = 512 * 1024
#: How long a polite close may take (flushing the GoAway) before the socket is dropped.
CLOSE_GRACE = 2.0
RECEIVE_SIZE = 256 * 1024
#: Messages one turn of reading handles before it lets other tasks run.
PUMP_MESSAGES = 64
#: A receiver reading for itself that found data at once this many times in a row lets
#: the other tasks run (64 Noise messages: about 4 MiB of a bulk transfer).
YIELD_AFTER_TURNS = 64


class YamuxConnection(MuxedConnection):
    """A yamux session over ``secure``. Start it with ``tg.start_soon(conn.run)`` (or
    ``await tg.start(conn.run)``); it can be used before it first runs: frames queued
    meanwhile are written at once when the secure stream takes them, else by the writer
    task once it runs."""

    def __init__(
        self, secure: anyio.abc.ByteStream, is_client: bool, session: YamuxSession | None = None
    ) -> None:
        self._secure = secure
        self._core = session if session is not None else YamuxSession(is_client)
        self._streams: dict[int, YamuxStream] = {}
        self._lowlevel = lowlevel.current()
        self._write_parker = self._lowlevel.parker()  # the writer task waits here
        # Inbound streams not accepted yet (at most ACCEPT_BACKLOG), and their one taker.
        self._backlog: deque[YamuxStream] = deque()
        self._backlog_closed = False
        self._accept_parker = self._lowlevel.parker()
        self._accepting = False
        self._room_waiter: anyio.Event | None = None
        self._open_waiter: anyio.Event | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._send_lock = anyio.Lock()
        self._writing = False
        # An immediate write went out since the writer task last ran or data last came
        # in (see _wake_writer).
        self._batching = False
        # The Noise stream's non-blocking write path, when the secure stream has one, and
        # its writes of the session's segments (large payloads sent from the sender's own
        # buffer), when it has those.
        self._send_nowait: Callable[[bytearray], bool] | None = getattr(secure, "send_nowait", None)
        self._send_segments_nowait: Callable[[list[Any]], bool] | None = getattr(
            secure, "send_segments_nowait", None
        )
        self._send_segments: Callable[[list[Any]], Awaitable[None]] | None = getattr(
            secure, "send_segments", None
        )
        self._flush_secure: Callable[[], Awaitable[None]] | None = getattr(secure, "flush", None)
        self._unsent: Callable[[], int] = (
            (lambda: int(getattr(secure, "unsent", 0)))
            if hasattr(secure, "unsent")
            else (lambda: 0)
        )
        self._ping_waiters: dict[int, anyio.Event] = {}
        # The reading role (see the module docstring): None, self (the reader task) or
        # the stream whose receiver reads; a read failure met by a stream's receiver is
        # left for the reader task to handle.
        self._pollable = bool(getattr(secure, "pollable", False))
        self._leader: object | None = None
        self._leader_waiting = False  # a receiver reading for its stream waits on the socket
        self._reader_parker = self._lowlevel.parker()
        self._read_failure: Exception | None = None
        self._woke = False  # the last pump woke a waiting receiver
        self._unyielded = 0  # receiver turns in a row that found data without waiting
        self._cancel: lowlevel.Cancellable | None = None
        self.rtt: float | None = None
        attrs: dict[Any, Callable[[], Any]] = {**secure.extra_attributes}
        attrs[P2PAttribute.muxer_protocol] = lambda: PROTOCOL_ID
        self._attrs: Mapping[Any, Callable[[], Any]] = attrs

    # ------------------------------------------------------------------ public API

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._attrs

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with self._lowlevel.open_task_group() as tg:
                self._cancel = tg.cancel_scope
                tg.start_soon(self._writer)
                tg.start_soon(self._keepalive)
                task_status.started()
                await self._reader()
                tg.cancel_scope.cancel()
        finally:
            await self._shutdown()

    async def open_stream(self) -> YamuxStream:
        while True:
            self._check_alive()
            core = self._core
            if core.remote_go_away is not None or core.local_go_away:
                raise anyio.BrokenResourceError("yamux session is going away")
            if core.can_open_stream():
                break
            waiter = self._open_waiter = anyio.Event()
            await waiter.wait()
        await anyio.lowlevel.checkpoint_if_cancelled()
        sid = core.open_stream()
        stream = YamuxStream(self, sid, outbound=True)
        self._streams[sid] = stream
        # The SYN is left to the writer task: a caller that writes before it next yields
        # (as multistream's pipelined proposal does) sends SYN and data in one write.
        self._wake_writer_task()
        return stream

    async def accept_stream(self) -> MuxedStream:
        """The next inbound stream; streams that arrived before the connection ended are
        still handed out, then ``EndOfStream``. One task accepts at a time (another gets
        ``BusyResourceError``)."""
        if self._accepting:
            raise anyio.BusyResourceError("accepting from")
        self._accepting = True
        try:
            await self._lowlevel.checkpoint_if_cancelled()
            backlog = self._backlog
            if not backlog:
                # Streams may be waiting, unread, in the socket (a new connection's first
                # ones came with the handshake's last message): read them now, when nobody
                # else reads, rather than a scheduler step later in the reader task.
                self._pump_if_free()
            while not backlog:
                if self._backlog_closed:
                    raise anyio.EndOfStream from self._error
                await self._accept_parker.park()
            return backlog.popleft()
        finally:
            self._accepting = False

    async def ping(self) -> float:
        """Round-trip a yamux ping; returns the RTT in seconds."""
        self._check_alive()
        done = anyio.Event()
        opaque = self._core.ping(anyio.current_time())
        self._ping_waiters[opaque] = done
        self._wake_writer()
        try:
            await done.wait()
        finally:
            self._ping_waiters.pop(opaque, None)
        self._check_alive()
        assert self.rtt is not None
        return self.rtt

    async def aclose(self) -> None:
        """GoAway, a bounded flush, then close the secure stream; streams become broken."""
        if not self._closed:
            self._closed = True
            self._core.terminate(GoAwayCode.NORMAL)
            if self._error is None:
                self._error = anyio.BrokenResourceError("connection closed")
            self._fail_all()
            with anyio.move_on_after(CLOSE_GRACE, shield=True):
                await self._flush_now()
            if self._cancel is not None:
                self._cancel.cancel()
        await anyio.aclose_forcefully(self._secure)

    # ------------------------------------------------------------------ tasks

    async def _reader(self) -> None:
        try:
            if self._pollable:
                await self._read_by_turns()
            else:
                await self._read_always()
        except RemoteProtocolError as exc:
            log.debug("yamux peer violated the protocol: %s", exc)
            self._error = exc
            self._closed = True
            self._fail_all()
            with anyio.move_on_after(CLOSE_GRACE, shield=True):
                await self._flush_now()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            if self._error is None:
                self._error = anyio.BrokenResourceError(f"connection lost: {exc!r}")
        except Exception as exc:  # e.g. a secure channel's decryption failure
            log.debug("yamux connection failed: %r", exc)
            self._error = exc

    async def _read_always(self) -> None:
        """The reader task as the only reader (a secure stream that cannot be polled)."""
        core = self._core
        # A secure stream that can lend its plaintext buffer saves an allocation and a
        # cold copy per message; the session copies out what it keeps before the next read.
        receive_view = getattr(self._secure, "receive_view", None)
        receive = self._secure.receive
        while True:
            data = await (receive_view() if receive_view is not None else receive(RECEIVE_SIZE))
            self._batching = False
            events = core.receive_data(data)
            if events:
                self._dispatch(events)
            if core.bytes_to_send:
                # Acknowledgements and pongs: let the writer task send them, after the
                # handlers just woken had a chance to add their replies to the write.
                self._wake_writer_task()

    async def _read_by_turns(self) -> None:
        """The reader task when receivers may read too: it reads while the role is free."""
        pump = self._pump
        wait_readable = self._secure.wait_readable  # type: ignore[attr-defined]
        park = self._reader_parker.park
        checkpoint = self._lowlevel.checkpoint
        while True:
            failure = self._read_failure
            if failure is not None:
                raise failure  # a receiver met it; handled by _reader like our own
            if self._leader is not None:
                await park()  # whoever leaves the role free wakes us
                continue
            self._leader = self
            try:
                more = pump()
                if self._woke:
                    # A receiver waits for what we just handed it: leave the role to it
                    # (it reads its next reply itself); it wakes us on its way out.
                    self._leader = None
                    await park()
                elif more:
                    await checkpoint()
                else:
                    await wait_readable()
            finally:
                if self._leader is self:
                    self._leader = None

    def _pump(self, until: YamuxStream | None = None) -> bool:
        """Handle what has arrived, without waiting: up to PUMP_MESSAGES messages, or
        until ``until`` has news (its receiver reads for itself: it takes each message as
        it comes, so a bulk transfer's buffers are reused while the cache holds them).
        Returns whether it stopped early (more may be waiting). Sets ``_woke`` when it
        woke a waiting receiver. Failures of the secure stream or the session raise."""
        receive_nowait = self._secure.receive_nowait  # type: ignore[attr-defined]
        core = self._core
        self._woke = False
        more = True
        try:
            for _ in range(PUMP_MESSAGES):
                data = receive_nowait()
                if data is None:
                    more = False
                    break
                self._batching = False
                events = core.receive_data(data)
                if events:
                    self._dispatch(events)
                    if until is not None and until._has_news():
                        break
        finally:
            if core.bytes_to_send:
                # Acknowledgements and pongs: the writer task sends them, after the
                # receivers just woken had a chance to add their replies to the write.
                self._wake_writer_task()
        return more

    def _role_free(self) -> bool:
        """Whether a task may take the reading role now (nobody holds it, and there is a
        pollable, live stream to read)."""
        return (
            self._leader is None
            and self._pollable
            and not self._closed
            and self._read_failure is None
        )

    def _pump_if_free(self) -> None:
        """One turn of reading, without waiting, if the role is free (a task waiting on
        the socket holds its receive guard). A failure is left for the reader task."""
        if not self._role_free():
            return
        self._leader = self._pump_if_free
        try:
            self._pump()
        except Exception as exc:
            self._read_failure = exc
            self._reader_parker.unpark()
        finally:
            self._leader = None

    async def _await_data(self, stream: YamuxStream) -> None:
        """Wait until ``stream`` has something for its receiver (data, its end, a reset,
        the connection's loss): read for it when the role is free, else let the reader
        wake it. A cancel point; cancelled, it loses nothing (reading happens between
        waits, and what was read is queued for its stream)."""
        if not self._role_free():
            try:
                await stream._receive_parker.park()
            finally:
                if self._leader is None:
                    self._reader_parker.unpark()  # see _read_by_turns: it waits for this
            return
        self._leader = stream
        ll = self._lowlevel
        waited = False
        try:
            pump = self._pump
            wait_readable = self._secure.wait_readable  # type: ignore[attr-defined]
            while True:
                more = pump(stream)
                if stream._has_news():
                    if not waited:
                        # Data that was waiting in the socket came back without a
                        # scheduler pass. A bulk reader whose peer keeps the socket full
                        # would thus never let another task run (a ping's handler stalled
                        # for 0.1-0.5 s behind a transfer): after a few such turns, one
                        # pass, still holding the role (the reader task would take it, and
                        # read far ahead).
                        self._unyielded += 1
                        if self._unyielded >= YIELD_AFTER_TURNS:
                            self._unyielded = 0
                            await ll.cancel_shielded_checkpoint()
                    break
                waited = True
                self._unyielded = 0
                if more:
                    await ll.checkpoint()
                    continue
                self._leader_waiting = True
                try:
                    await wait_readable()
                finally:
                    self._leader_waiting = False
                if stream._has_news():  # e.g. another task closed or reset the stream
                    break
        except Exception as exc:
            # The connection's failure: the reader task handles it (and fails the streams).
            if self._read_failure is None:
                self._read_failure = exc
        finally:
            self._leader = None
            self._reader_parker.unpark()

    def _wake_leader(self) -> None:
        """End the reading receiver's wait for the socket: its stream has news (another
        task closed or reset it). Rare, so it may cost what the common path must not."""
        if self._leader_waiting:
            self._leader_waiting = False
            self._secure.interrupt_wait()  # type: ignore[attr-defined]

    async def _writer(self) -> None:
        core = self._core
        flush = self._flush_secure
        unsent = self._unsent
        try:
            while True:
                self._batching = False
                if core.bytes_to_send or unsent():
                    self._writing = True
                    try:
                        async with self._send_lock:
                            if flush is not None:
                                await flush()
                            await self._write_queued(self._wake_room)
                    finally:
                        self._writing = False
                    continue
                self._wake_room()
                await self._write_parker.park()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = anyio.BrokenResourceError(f"connection lost while writing: {exc!r}")
        if self._cancel is not None:
            self._cancel.cancel()

    async def _keepalive(self) -> None:
        core = self._core
        self._handle_events(core.handle_timer(anyio.current_time()))
        while True:
            deadline = core.next_timer()
            if deadline is None:
                await anyio.sleep_forever()
            else:
                await anyio.sleep_until(deadline)
            self._handle_events(core.handle_timer(anyio.current_time()))

    def _handle_events(self, events: list[ev.Event]) -> None:
        if events:
            self._dispatch(events)
        if self._core.bytes_to_send:
            self._wake_writer()

    # ------------------------------------------------------------------ events

    def _dispatch(self, events: list[ev.Event]) -> None:
        streams = self._streams
        for event in events:
            if isinstance(event, ev.DataReceived):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._on_data(event.data)
                else:  # we closed the stream: the peer learns so, as a TCP peer would
                    self._core.reset_stream(event.stream_id)
            elif isinstance(event, ev.WindowOpened):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._wake_sender()
            elif isinstance(event, ev.StreamOpened):
                if len(self._backlog) >= ACCEPT_BACKLOG or self._backlog_closed:
                    self._core.reset_stream(event.stream_id)
                else:
                    stream = YamuxStream(self, event.stream_id, outbound=False)
                    self._backlog.append(stream)
                    streams[event.stream_id] = stream
                    self._accept_parker.unpark()
            elif isinstance(event, ev.StreamEnded):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._on_remote_end()
            elif isinstance(event, ev.StreamReset):
                stream = streams.pop(event.stream_id, None)
                if stream is not None:
                    stream._on_reset(StreamReset(0, remote=event.remote))
            elif isinstance(event, (ev.StreamAcknowledged, ev.GoAwayReceived)):
                self._wake_open()
            elif isinstance(event, ev.PingAcknowledged):
                if event.sent_at is not None:
                    self.rtt = anyio.current_time() - event.sent_at
                waiter = self._ping_waiters.pop(event.opaque, None)
                if waiter is not None:
                    waiter.set()
            elif isinstance(event, ev.KeepaliveTimedOut):
                self._error = anyio.BrokenResourceError("yamux keepalive timed out")
                if self._cancel is not None:
                    self._cancel.cancel()
            # StreamRejected needs nothing: the session already reset it.

    # ------------------------------------------------------------------ used by streams

    def _check_alive(self) -> None:
        if self._closed or self._core.terminated:
            raise anyio.BrokenResourceError("yamux connection is closed") from self._error

    def _send_data(self, sid: int, data: memoryview) -> int:
        try:
            n = self._core.send_data(sid, data)
        except LocalProtocolError as exc:
            raise anyio.BrokenResourceError(str(exc)) from self._error
        if n:
            self._wake_writer()
        return n

    async def _wait_writer_room(self) -> bool:
        """Wait while too much is queued for the writer; ``True`` if it had to wait."""
        waited = False
        while self._core.bytes_to_send + self._unsent() > WRITE_HIGH_WATER:
            self._check_alive()
            waiter = self._room_waiter
            if waiter is None:
                waiter = self._room_waiter = anyio.Event()
            await waiter.wait()
            waited = True
        return waited

    def _send_eof(self, sid: int) -> None:
        self._core.send_eof(sid)
        self._wake_writer()

    def _reset_stream(self, sid: int) -> None:
        self._streams.pop(sid, None)
        if not self._core.terminated:
            self._core.reset_stream(sid)
            self._wake_writer()

    def _consumed(self, sid: int, n: int, drained: bool) -> None:
        core = self._core
        core.consume(sid, n, drained=drained)
        if core.bytes_to_send:
            self._wake_writer()

    def _forget_stream(self, sid: int) -> None:
        self._streams.pop(sid, None)

    # ------------------------------------------------------------------ helpers

    def _wake_writer(self) -> None:
        """Get what the session queued on its way: written at once when the secure stream
        can take it without waiting (no task switch), else by the writer task.

        After such a write, the next ones wait for the writer task (one task switch), and
        what tasks queue until it runs goes out in its one write; the next immediate write
        comes once the writer task ran or the peer sent something. So a reply (a ping's,
        say) goes out at once, while many streams busy at once (each opening, sending,
        closing) share writes instead of waking the peer once per frame."""
        nowait = self._send_nowait
        if nowait is not None and not self._writing and not self._closed:
            core = self._core
            if not core.bytes_to_send:
                return
            if not self._batching:
                try:
                    segments_nowait = self._send_segments_nowait
                    if (
                        segments_nowait(core.segments_to_send())
                        if segments_nowait is not None
                        else nowait(core.data_to_send())
                    ):
                        self._batching = True
                        return
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    self._write_failed(exc)
                    return
        self._write_parker.unpark()

    async def _write_queued(self, taken: Callable[[], None] | None = None) -> None:
        """Write what the session queued, waiting for the secure stream; ``taken`` is
        called once the queue is emptied, before the write."""
        core = self._core
        send_segments = self._send_segments
        if send_segments is not None:
            segments = core.segments_to_send()
            if taken is not None:
                taken()
            if segments:
                await send_segments(segments)
        else:
            data = core.data_to_send()
            if taken is not None:
                taken()
            if data:
                await self._secure.send(data)  # type: ignore[arg-type]  # bytes-like

    def _flush_before_wait(self) -> None:
        if self._core.bytes_to_send:
            self._wake_writer()

    def _wake_writer_task(self) -> None:
        self._write_parker.unpark()

    def _wake_room(self) -> None:
        waiter = self._room_waiter
        if waiter is not None:
            self._room_waiter = None
            waiter.set()

    def _wake_open(self) -> None:
        waiter = self._open_waiter
        if waiter is not None:
            self._open_waiter = None
            waiter.set()

    async def _flush_now(self) -> None:
        """Send what the session queued (a GoAway on close), waiting for the writer."""
        try:
            async with self._send_lock:
                self._writing = True
                if self._flush_secure is not None:
                    await self._flush_secure()
                await self._write_queued()
        except Exception as exc:  # the connection is going down either way
            log.debug("yamux flush on close failed: %r", exc)
        finally:
            self._writing = False

    def _fail_all(self) -> None:
        error = self._error or anyio.BrokenResourceError("connection closed")
        for stream in list(self._streams.values()):
            stream._on_connection_lost(error)
        self._streams.clear()
        for waiter in self._ping_waiters.values():
            waiter.set()
        self._ping_waiters.clear()
        self._wake_open()
        self._wake_room()
        self._backlog_closed = True
        self._accept_parker.unpark()

    async def _shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self._core.terminate(GoAwayCode.NORMAL)
            self._fail_all()
            with anyio.move_on_after(CLOSE_GRACE, shield=True):
                await self._flush_now()
        await anyio.aclose_forcefully(self._secure)


class Yamux(StreamMuxer):
    """The ``/yamux/1.0.0`` muxer; ``session_options`` go to :class:`YamuxSession`."""

    protocol_id = PROTOCOL_ID

    def __init__(self, **session_options: Any) -> None:
        self._options = session_options

    def create(self, secure: anyio.abc.ByteStream, is_initiator: bool) -> YamuxConnection:
        conn = YamuxConnection(secure, is_initiator, YamuxSession(is_initiator, **self._options))
        return conn
