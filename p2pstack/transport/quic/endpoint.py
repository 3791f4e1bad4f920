"""One UDP socket and the task that serves every QUIC connection on it.

The socket is non-blocking and driven through anyio (``wait_readable`` /
``wait_writable``): one task per socket reads every datagram that is waiting, hands each to
its connection (found by destination connection ID), fires due timers, and sleeps with
``anyio.move_on_at`` until the earliest connection timer or the next datagram. Timers live in
a heap of ``(time, sequence, connection)`` entries; an entry whose time no longer matches its
connection's is stale and skipped.

Sending is deferred by one turn of the scheduler (:meth:`transmit_soon`): a stream's write,
a FIN, a reset or new credit marks its connection, and the serving task, woken, writes the
packets of every marked connection once the tasks running now have had their say. Likewise
after datagrams came in, the serving task first lets the tasks it woke (a handler reading
a request, say) write their answers, so that the ACK and the answer leave in one packet.
Each packet costs aioquic tens of microseconds to build: a handful of small writes made
back to back (a multistream header, a message, a FIN) now go as one. A connection's
Initial and its CONNECTION_CLOSE, and what timers produce, go at once (:meth:`transmit`).
A connection with more to send than one batch (``QuicCore.more_to_send``, see
:data:`~p2pstack.transport.quic.core.SEND_BATCH`) is marked again: the serving task reads
what came in and lets the tasks it woke run before it writes the next batch, so a ping's
answer is not left unread behind megabytes of a bulk transfer.

A datagram the kernel refuses for now (``EAGAIN``) waits in a bounded outbox; past
:data:`OUTBOX_LIMIT` datagrams are dropped, which QUIC's loss recovery repairs.

A listening endpoint accepts new connections (Initial packets of QUIC v1 at least 1200
bytes long), at most :data:`MAX_HANDSHAKES` at a time, and answers other versions with
Version Negotiation. Dialing reuses a listening endpoint's socket when one of the right
family exists, so peers see our listen port as our source (hole punching relies on it).
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import math
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from aioquic import tls
from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # a C extension
from aioquic.quic import events
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)

from p2pstack.errors import HandshakeError
from p2pstack.identity import PeerID
from p2pstack.transport.quic.connection import QuicMuxedConnection
from p2pstack.transport.quic.core import QuicCore
from p2pstack.transport.quic.transport import CID_LENGTH, QUIC_V1

if TYPE_CHECKING:
    from p2pstack.transport.quic.transport import QuicTransport

log = logging.getLogger(__name__)

_V1_BYTES = QUIC_V1.to_bytes(4, "big")
_VN_BYTES = bytes(4)  # Version Negotiation (version 0), for a connection we are dialing
SMALLEST_INITIAL = 1200
#: Datagrams held while the kernel's send buffer is full.
OUTBOX_LIMIT = 4096
#: Application close code for a connection we drop after a failure of ours.
INTERNAL_ERROR = 0x1
#: Inbound connections still in their handshake, at most.
MAX_HANDSHAKES = 256
#: Connections handed to the listener and not yet taken.
ACCEPT_BACKLOG = 64
#: Datagrams read in one go before timers and other work get their turn.
READ_BATCH = 256
SOCKET_BUFFER = 4 << 20


class QuicEndpoint:
    """Serves the QUIC connections of one UDP socket (see the module docstring).

    ``run()`` must be running for anything to move; when it ends (cancelled, or the socket
    closed by :meth:`close`) every connection on the socket is terminated.
    """

    def __init__(self, transport: QuicTransport, sock: socket.socket, listening: bool) -> None:
        sock.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:  # pragma: no cover - a kernel that refuses: keep its default
                pass
        self.transport = transport
        self.sock = sock
        self.listening = listening
        self.local_address: tuple[str, int] = sock.getsockname()[:2]
        self.local_peer: PeerID = transport.local_peer
        self._by_cid: dict[bytes, QuicMuxedConnection] = {}
        self._connections: set[QuicMuxedConnection] = set()
        self._handshaking = 0
        self._timers: list[tuple[float, int, QuicMuxedConnection]] = []
        self._sequence = itertools.count()
        self._outbox: deque[tuple[bytes, tuple[str, int]]] = deque()
        self._dirty: dict[QuicMuxedConnection, None] = {}  # transmit_soon(), in order
        self._received = False  # the dirty connections include some that data came in on
        self._wait_scope: anyio.CancelScope | None = None
        self._wait_deadline = math.inf
        self._closed = False  # the socket is closed
        self._stopping = False  # close() was called: run() ends
        self._accept_send, self.accepted = anyio.create_memory_object_stream[QuicMuxedConnection](
            ACCEPT_BACKLOG
        )
        self._clock: Callable[[], float] = anyio.current_time
        self.dropped_datagrams = 0

    @property
    def family(self) -> int:
        return self.sock.family

    # ------------------------------------------------------------------ serving

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            while not self._stopping:
                if self._dirty:
                    if self._received:
                        # The tasks that what came in woke write their answers first. Two
                        # passes: trio may run this task ahead of them in the first.
                        self._received = False
                        await anyio.lowlevel.cancel_shielded_checkpoint()
                        await anyio.lowlevel.cancel_shielded_checkpoint()
                    self._transmit_dirty()
                    if self._stopping:
                        break
                # A connection with more to send (a batch was cut short) gets it after one
                # pass: read what came in, let the tasks it wakes run.
                deadline = -math.inf if self._dirty else self._next_deadline()
                with anyio.move_on_at(deadline) as scope:
                    self._wait_scope, self._wait_deadline = scope, deadline
                    if self._outbox:
                        await anyio.wait_writable(self.sock)
                    else:
                        await anyio.wait_readable(self.sock)
                self._wait_scope, self._wait_deadline = None, math.inf
                if self._outbox:
                    self._flush_outbox()
                self._read_all()
                self._fire_timers()
        except anyio.ClosedResourceError:
            if not self._stopping:
                raise
        finally:
            self._shutdown()

    def close(self) -> None:
        """Close the socket; ``run`` ends and every connection with it."""
        if not self._stopping:
            self._stopping = True
            scope = self._wait_scope
            if scope is not None:
                scope.deadline = -math.inf

    def _shutdown(self) -> None:
        self._stopping = True
        for conn in list(self._connections):
            try:
                conn.close()  # CONNECTION_CLOSE goes out while the socket is still open
            except Exception:  # pragma: no cover - a broken core: it just goes away
                log.exception("closing %r failed", conn)
            conn._on_terminated_locally()
        self._closed = True
        self._connections.clear()
        self._by_cid.clear()
        self._accept_send.close()
        anyio.notify_closing(self.sock)
        self.sock.close()
        self.transport._endpoint_closed(self)

    def _next_deadline(self) -> float:
        timers = self._timers
        while timers:
            when, _, conn = timers[0]
            if conn.timer_at == when:
                return when
            heapq.heappop(timers)  # stale
        return math.inf

    def _read_all(self) -> None:
        sock = self.sock
        now = self._clock()
        touched: dict[QuicMuxedConnection, None] = {}
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:  # an ICMP error for something we sent earlier
                continue
            except OSError:
                if self._closed:
                    return
                raise
            conn = self._route(data, addr, now)
            if conn is not None:
                touched[conn] = None
        for conn in touched:
            if self._deliver(conn):
                self._dirty[conn] = None
                self._received = True

    def _deliver(self, conn: QuicMuxedConnection) -> bool:
        """Hand what came in to the connection's streams. One connection's failure (a bug,
        an aioquic assertion) ends that connection alone: ``False``."""
        try:
            conn.handle_events()
            conn.after_receive()
        except Exception as exc:
            self._fail(conn, exc)
            return False
        return True

    def _fail(self, conn: QuicMuxedConnection, exc: Exception) -> None:
        log.warning("QUIC connection to %s failed: %r", conn.remote, exc, exc_info=exc)
        try:
            conn.close(INTERNAL_ERROR, "internal error")
        except Exception:
            pass
        conn._on_terminated_locally()
        self.connection_terminated(conn)

    def _route(self, data: bytes, addr: tuple[str, int], now: float) -> QuicMuxedConnection | None:
        if not data:
            return None
        if data[0] & 0x80 == 0:  # short header: the connection ID follows the first byte
            conn = self._by_cid.get(data[1 : 1 + CID_LENGTH])
            if conn is None:
                return None
        else:
            if data[1:5] not in (_V1_BYTES, _VN_BYTES):
                self._negotiate_version(data, addr)
                return None
            try:
                header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
            except ValueError:
                return None
            conn = self._by_cid.get(header.destination_cid)
            if conn is None:
                conn = self._new_inbound(header, data, addr, now)
                if conn is None:
                    return None
                if not self._receive(conn, data, addr, now):
                    return None
                space = conn.core._spaces.get(tls.Epoch.INITIAL)
                if space is None or space.largest_received_packet < 0:
                    # Nothing in it decrypted: junk shaped like an Initial. Forget it now
                    # rather than let it hold a handshake slot until the deadline.
                    self.connection_terminated(conn)
                    return None
                return conn
        return conn if self._receive(conn, data, addr, now) else None

    def _receive(
        self, conn: QuicMuxedConnection, data: bytes, addr: tuple[str, int], now: float
    ) -> bool:
        try:
            conn.core.receive_datagram(data, addr, now)
        except Exception as exc:
            self._fail(conn, exc)
            return False
        return True

    def _negotiate_version(self, data: bytes, addr: tuple[str, int]) -> None:
        """Answer a long-header packet of another version with Version Negotiation. Only
        the version-independent header is read (RFC 8999 5.1: the rest of another version's
        packet may look like anything), and only a datagram large enough to start a
        connection gets an answer (RFC 9000 5.2.2: smaller ones MUST be dropped)."""
        if not self.listening or len(data) < SMALLEST_INITIAL:
            return
        # At least 1200 bytes, so both connection IDs (255 bytes at most each) are there.
        dcid_end = 6 + data[5]
        scid_end = dcid_end + 1 + data[dcid_end]
        self._sendto(
            encode_quic_version_negotiation(
                source_cid=data[6:dcid_end],
                destination_cid=data[dcid_end + 1 : scid_end],
                supported_versions=[QUIC_V1],
            ),
            addr,
        )

    def _new_inbound(
        self, header: object, data: bytes, addr: tuple[str, int], now: float
    ) -> QuicMuxedConnection | None:
        packet_type = getattr(header, "packet_type", None)
        if not self.listening or packet_type == QuicPacketType.VERSION_NEGOTIATION:
            return None
        if packet_type != QuicPacketType.INITIAL or len(data) < SMALLEST_INITIAL:
            return None
        if self._handshaking >= MAX_HANDSHAKES:
            log.debug("dropping an Initial from %s: %d handshakes", addr, self._handshaking)
            return None
        odcid: bytes = header.destination_cid  # type: ignore[attr-defined]
        core = QuicCore(
            configuration=self.transport.configuration(is_client=False),
            original_destination_connection_id=odcid,
            path_max_datagram_size=self._path_datagram_size(addr),
            now=now,
            **self.transport.core_options,
        )
        conn = self._adopt(core, addr, outbound=False)
        self.add_cid(conn, odcid)
        return conn

    def _adopt(self, core: QuicCore, addr: tuple[str, int], outbound: bool) -> QuicMuxedConnection:
        conn = QuicMuxedConnection(
            self, core, addr, outbound, self.transport.core_options["max_inbound_streams"]
        )
        self._connections.add(conn)
        self._handshaking += 1
        self.add_cid(conn, core.host_cid)
        return conn

    def _fire_timers(self) -> None:
        timers = self._timers
        now = self._clock()
        while timers and timers[0][0] <= now:
            when, _, conn = heapq.heappop(timers)
            if conn.timer_at != when:
                continue
            conn.timer_at = None
            try:
                conn.core.handle_timer(now)
            except Exception as exc:
                self._fail(conn, exc)
                continue
            if self._deliver(conn):
                self.transmit(conn, now)

    # ------------------------------------------------------------------ sending

    def transmit_soon(self, conn: QuicMuxedConnection) -> None:
        """Send what ``conn``'s core has to send once the tasks running now have run (see
        the module docstring): wakes the serving task."""
        if self._closed:
            return
        if not self._dirty:
            scope = self._wait_scope
            if scope is not None:
                scope.deadline = -math.inf
        self._dirty[conn] = None

    def _transmit_dirty(self) -> None:
        dirty, self._dirty = self._dirty, {}
        now = self._clock()
        for conn in dirty:
            self.transmit(conn, now)

    def transmit(self, conn: QuicMuxedConnection, now: float | None = None) -> None:
        """Send what ``conn``'s core has to send now, and re-arm its timer."""
        if self._closed:
            return
        self._dirty.pop(conn, None)
        if now is None:
            now = self._clock()
        core = conn.core
        try:
            datagrams = core.datagrams_to_send(now)
            timer = core.get_timer()
        except Exception as exc:
            if conn in self._connections:
                self._fail(conn, exc)
            return
        if core._events:
            # aioquic announces a connection ID as it writes the NEW_CONNECTION_ID frame,
            # i.e. just now: route it before the peer (quic-go switches at once) uses it.
            for event in core._events:
                if isinstance(event, events.ConnectionIdIssued):
                    self.add_cid(conn, event.connection_id)
        for data, addr in datagrams:
            self._sendto(data, addr)
        if core.more_to_send:
            self._dirty[conn] = None  # the next batch, after a look at what came in
        if timer != conn.timer_at:
            conn.timer_at = timer
            if timer is not None:
                timers = self._timers
                heapq.heappush(timers, (timer, next(self._sequence), conn))
                if len(timers) > 2 * len(self._connections) + 64:
                    # Entries go stale as timers move; drop them before they pile up.
                    self._timers = [
                        (c.timer_at, next(self._sequence), c)
                        for c in self._connections
                        if c.timer_at is not None
                    ]
                    heapq.heapify(self._timers)
                if timer < self._wait_deadline and self._wait_scope is not None:
                    self._wait_scope.deadline = timer
                    self._wait_deadline = timer

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._outbox:
            self._queue(data, addr)
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._queue(data, addr)
        except OSError as exc:  # unreachable and the like: QUIC treats it as loss
            log.debug("sendto %s failed: %r", addr, exc)

    def _queue(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self._outbox) >= OUTBOX_LIMIT:
            self.dropped_datagrams += 1
            return
        self._outbox.append((data, addr))
        scope = self._wait_scope
        if scope is not None and len(self._outbox) == 1:
            scope.deadline = -math.inf  # wait for writability instead

    def _flush_outbox(self) -> None:
        outbox = self._outbox
        sock = self.sock
        while outbox:
            data, addr = outbox[0]
            try:
                sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("sendto %s failed: %r", addr, exc)
            outbox.popleft()

    # ------------------------------------------------------------------ connections

    async def connect(
        self, address: tuple[str, int], expected_peer: PeerID | None
    ) -> QuicMuxedConnection:
        """A new outbound connection, once its handshake (and libp2p check) succeeded."""
        if self._stopping:
            raise anyio.ClosedResourceError("the QUIC endpoint is closed")
        if self.family == socket.AF_INET6 and len(address) == 2:
            # As recvfrom reports the server (host, port, flowinfo, scope id): aioquic's
            # client drops datagrams from any other address than the one it dialed.
            address = (address[0], address[1], 0, 0)  # type: ignore[assignment]
        now = self._clock()
        core = QuicCore(
            configuration=self.transport.configuration(is_client=True),
            expected_peer=expected_peer,
            path_max_datagram_size=self._path_datagram_size(address),
            now=now,
            **self.transport.core_options,
        )
        conn = self._adopt(core, address, outbound=True)
        try:
            core.connect(address, now)
            self.transmit(conn, now)
            await conn.handshake_done.wait()
        except BaseException:
            conn.close()
            raise
        if conn.error is not None:
            raise _handshake_error(conn.error) from conn.error
        return conn

    def _path_datagram_size(self, address: tuple[str, int]) -> int:
        """The largest datagram we send to ``address`` (we do no path MTU discovery): the
        transport's ``loopback_datagram_size`` on loopback, whose MTU is 64 KiB, else QUIC's
        minimum, 1200 bytes, which every path carries. The peer's max_udp_payload_size caps
        it further once the handshake tells it."""
        try:
            loopback = ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            loopback = False
        return self.transport.loopback_datagram_size if loopback else 1200

    def add_cid(self, conn: QuicMuxedConnection, cid: bytes) -> None:
        self._by_cid[cid] = conn
        conn.cids.add(cid)

    def remove_cid(self, conn: QuicMuxedConnection, cid: bytes) -> None:
        if self._by_cid.get(cid) is conn:
            del self._by_cid[cid]
        conn.cids.discard(cid)

    def connection_ready(self, conn: QuicMuxedConnection) -> None:
        """An inbound connection finished its handshake: hand it to the listener."""
        self._handshaking -= 1
        conn.counted_handshake = False
        try:
            self._accept_send.send_nowait(conn)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.debug("refusing a QUIC connection from %s: accept backlog full", conn.remote)
            conn.close(0x2, "busy")

    def outbound_ready(self, conn: QuicMuxedConnection) -> None:
        self._handshaking -= 1
        conn.counted_handshake = False

    def connection_terminated(self, conn: QuicMuxedConnection) -> None:
        if conn.counted_handshake:
            conn.counted_handshake = False
            self._handshaking -= 1
        self._connections.discard(conn)
        for cid in list(conn.cids):
            self.remove_cid(conn, cid)
        conn.timer_at = None


def _handshake_error(error: BaseException) -> BaseException:
    if isinstance(error, HandshakeError):
        return error
    return HandshakeError(f"QUIC handshake failed: {error}")
