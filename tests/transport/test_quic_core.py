"""p2pstack.transport.quic.core: QuicCore, sans-IO, and the aioquic internals it relies on.

Two groups of tests:

- *hooks*: every private aioquic name that ``quic/core.py``, ``quic/tls.py``,
  ``quic/connection.py`` and ``quic/stream.py`` touch still exists with the shape we use, so
  an aioquic upgrade that moves one fails here, by name, rather than somewhere deep in a
  transfer;
- *behaviour*: a client and a server :class:`QuicCore` joined by :class:`Wire`, a link with a
  fixed one-way delay driven by a fake clock (what the endpoint does, minus sockets and
  sleeps): the libp2p handshake, receive credit by consumption, keep-alive, the handshake
  deadline and datagram size growth.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import math
import random
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from aioquic import tls
from aioquic._crypto import CryptoError, HeaderProtection
from aioquic.buffer import Buffer, size_uint_var  # type: ignore[attr-defined]  # C extension
from aioquic.quic import events
from aioquic.quic.connection import Limit, QuicConnection
from aioquic.quic.packet import (
    QuicFrameType,
    pull_quic_header,
    pull_quic_transport_parameters,
    push_quic_transport_parameters,
)
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.stream import QuicStreamSender

from p2pstack.errors import CertificateError, PeerIDMismatch
from p2pstack.identity import KeyPair
from p2pstack.transport.quic import QuicTransport
from p2pstack.transport.quic.core import (
    HANDSHAKE_TIMEOUT_CODE,
    SEND_BATCH,
    TIMER_GRANULARITY,
    QuicCore,
)
from p2pstack.transport.quic.crypto import FastHeaderProtection
from p2pstack.transport.quic.sender import ChunkedStreamSender
from p2pstack.transport.quic.tls import Libp2pTlsContext
from p2pstack.transport.quic.transport import CID_LENGTH

MIB = 1 << 20
STREAM_WINDOW = 1 * MIB  # QuicCore's default first stream window
CONNECTION_WINDOW = 3 * MIB  # ... and connection window
CLIENT_ADDR = ("192.0.2.1", 40000)
SERVER_ADDR = ("192.0.2.2", 4433)
ONE_WAY_DELAY = 0.005
CRYPTO_ERROR = 0x100  # + the TLS alert (RFC 9001 4.8)
BAD_CERTIFICATE = 42
CERTIFICATE_REQUIRED = 116


@cache
def identity(name: str) -> KeyPair:
    return KeyPair.generate()


def transport(name: str, **options: Any) -> QuicTransport:
    """A transport used only for its configuration (and certificate); never run."""
    return QuicTransport(identity(name), **options)


#: Core options unless a test says otherwise: no keep-alive (timers stay predictable) and
#: loopback-sized datagrams (fewer packets, faster tests).
QUIET_FAST: dict[str, Any] = {"keepalive_interval": None, "path_max_datagram_size": 16384}


class Wire:
    """A client and a server :class:`QuicCore` with a link between them.

    Each datagram arrives ``ONE_WAY_DELAY`` after it was sent (unless the direction is
    cut); time moves only in :meth:`run`, from one arrival or timer to the next. After
    every input the cores' events are drained into :attr:`events` as ``(time, event)``
    pairs, as the connection does, and what they send is recorded in :attr:`sent`.
    The server core is made from the first datagram that reaches it, as the endpoint does.
    """

    def __init__(
        self,
        client: QuicTransport | None = None,
        server: QuicTransport | None = None,
        *,
        expected_peer: Any = ...,
        client_options: dict[str, Any] | None = None,
        server_options: dict[str, Any] | None = None,
        server_class: type[QuicCore] = QuicCore,
        client_configuration: Callable[[Any], Any] = lambda configuration: configuration,
    ) -> None:
        self.client_transport = client or transport("client")
        self.server_transport = server or transport("server")
        if expected_peer is ...:
            expected_peer = self.server_transport.local_peer
        self.now = 0.0
        self._server_options = {**QUIET_FAST, **(server_options or {})}
        self._server_class = server_class
        self.client = QuicCore(
            configuration=client_configuration(self.client_transport.configuration(is_client=True)),
            expected_peer=expected_peer,
            now=self.now,
            **{**QUIET_FAST, **(client_options or {})},
        )
        self.server: QuicCore | None = None
        self.events: dict[str, list[tuple[float, events.QuicEvent]]] = {"client": [], "server": []}
        self.sent: dict[str, list[tuple[float, bytes]]] = {"client": [], "server": []}
        self.cut = {"client": False, "server": False}  # drop what this side sends
        # Drop each datagram this side sends with this probability (the draws come from a
        # seeded generator), and count what was dropped.
        self.loss = {"client": 0.0, "server": 0.0}
        self.dropped = {"client": 0, "server": 0}
        self._loss_random = random.Random(7)
        self._in_flight: list[tuple[float, int, str, bytes]] = []
        self._sequence = itertools.count()
        self.client.connect(SERVER_ADDR, self.now)  # sent by the first run()

    # ------------------------------------------------------------------ driving

    def cores(self) -> list[tuple[str, QuicCore]]:
        pairs = [("client", self.client)]
        if self.server is not None:
            pairs.append(("server", self.server))
        return pairs

    def _drain(self) -> None:
        for side, core in self.cores():
            while (event := core.next_event()) is not None:
                self.events[side].append((self.now, event))

    def _transmit(self) -> None:
        self._drain()
        for side, core in self.cores():
            datagrams = core.datagrams_to_send(self.now)
            while core.more_to_send:  # the endpoint asks again (time stands still here)
                datagrams += core.datagrams_to_send(self.now)
            for data, _ in datagrams:
                self.sent[side].append((self.now, data))
                lost = self.loss[side] and self._loss_random.random() < self.loss[side]
                self.dropped[side] += bool(lost)
                if not self.cut[side] and not lost:
                    to = "server" if side == "client" else "client"
                    entry = (self.now + ONE_WAY_DELAY, next(self._sequence), to, data)
                    heapq.heappush(self._in_flight, entry)
        self._drain()

    def _deliver(self, to: str, data: bytes) -> None:
        if to == "client":
            self.client.receive_datagram(data, SERVER_ADDR, self.now)
            return
        if self.server is None:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
            self.server = self._server_class(
                configuration=self.server_transport.configuration(is_client=False),
                original_destination_connection_id=header.destination_cid,
                now=self.now,
                **self._server_options,
            )
        self.server.receive_datagram(data, CLIENT_ADDR, self.now)

    def _next_time(self) -> float | None:
        times = [core.get_timer() for _, core in self.cores()]
        if self._in_flight:
            times.append(self._in_flight[0][0])
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def run(self, until: float) -> None:
        """Move time forward to ``until``, handling every arrival and timer before it."""
        self.run_until(lambda: False, until)

    def run_until(self, condition: Callable[[], bool], limit: float) -> bool:
        """Run until ``condition()`` holds (True) or time reaches ``limit`` (False). Sends
        first what calls made since the last run have queued (as the shell does at once)."""
        self._transmit()
        for _ in range(500_000):
            if condition():
                return True
            when = self._next_time()
            if when is None or when > limit:
                self.now = max(self.now, limit)
                return condition()
            self.now = max(self.now, when)
            while self._in_flight and self._in_flight[0][0] <= self.now:
                _, _, to, data = heapq.heappop(self._in_flight)
                self._deliver(to, data)
            for _, core in self.cores():
                timer = core.get_timer()
                if timer is not None and timer <= self.now:
                    core.handle_timer(self.now)
            self._transmit()
        raise AssertionError("the cores never went quiet (a timer that does not advance?)")

    # ------------------------------------------------------------------ looking

    def of_type(self, side: str, kind: type[events.QuicEvent]) -> list[tuple[float, Any]]:
        return [(t, e) for t, e in self.events[side] if isinstance(e, kind)]

    def terminated(self, side: str) -> events.ConnectionTerminated | None:
        found = self.of_type(side, events.ConnectionTerminated)
        return found[0][1] if found else None

    def handshake_done(self) -> bool:
        return bool(
            self.of_type("client", events.HandshakeCompleted)
            and self.of_type("server", events.HandshakeCompleted)
        )

    def received(self, stream_id: int) -> int:
        """Bytes of ``stream_id`` the server's core has delivered."""
        return sum(
            len(e.data)
            for _, e in self.of_type("server", events.StreamDataReceived)
            if e.stream_id == stream_id
        )

    def connected(self) -> Wire:
        if not self.run_until(self.handshake_done, 5.0):
            raise AssertionError("the handshake did not complete")
        return self


# ---------------------------------------------------------------------------- hooks


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_tls_context_hooks() -> None:
    """tls.py overrides two methods of aioquic's tls.Context, reads two attributes and sets
    one; their names and signatures are what it was written against."""
    assert _parameters(tls.Context._check_certificate_verify_signature) == ["self", "verify"]
    assert _parameters(tls.Context._server_handle_certificate) == ["self", "input_buf"]
    context = tls.Context(is_client=False)
    assert context._request_client_certificate is False
    assert context._peer_certificate is None
    assert context._peer_certificate_chain == []
    assert context._is_client is False
    assert isinstance(context._supported_groups, list)
    for group in ("X25519", "SECP256R1", "SECP384R1", "X448"):
        assert hasattr(tls.Group, group)


def test_quic_connection_methods() -> None:
    """core.py overrides these QuicConnection methods and calls super() with these
    arguments."""
    assert _parameters(QuicConnection._write_stream_limits) == [
        "self",
        "builder",
        "space",
        "stream",
    ]
    assert _parameters(QuicConnection._write_connection_limits) == ["self", "builder", "space"]
    assert _parameters(QuicConnection._initialize) == ["self", "peer_cid"]
    parameters = inspect.signature(QuicConnection._parse_transport_parameters).parameters
    assert list(parameters) == ["self", "data", "from_session_ticket"]
    assert parameters["from_session_ticket"].default is False
    assert _parameters(QuicConnection._get_or_create_stream) == ["self", "frame_type", "stream_id"]
    assert _parameters(QuicConnection._get_or_create_stream_for_send) == ["self", "stream_id"]
    for public in ("receive_datagram", "datagrams_to_send", "get_timer", "handle_timer"):
        assert hasattr(QuicConnection, public)


def test_stream_sender_hooks() -> None:
    """sender.py overrides these QuicStreamSender methods (same parameters; get_frame and
    on_data_delivery are checked with the frame writer's hooks below) and keeps the state
    they share with the rest of aioquic in these attributes."""
    assert _parameters(QuicStreamSender.write) == ["self", "data", "end_stream"]
    assert _parameters(QuicStreamSender.reset) == ["self", "error_code"]
    sender = QuicStreamSender(stream_id=0, writable=True)
    for name in (
        "_acked",
        "_acked_fin",
        "_buffer",
        "_buffer_fin",
        "_buffer_start",
        "_buffer_stop",
        "_pending",
        "_pending_eof",
        "_reset_error_code",
        "buffer_is_empty",
        "highest_offset",
        "is_finished",
        "reset_pending",
    ):
        assert hasattr(sender, name), name


def test_application_streams_use_the_chunked_sender() -> None:
    """Streams either side opens get ChunkedStreamSender; crypto streams keep aioquic's."""
    wire = Wire().connected()
    assert wire.server is not None
    wire.client.send_stream_data(0, b"ping")
    wire.run(wire.now + 0.1)
    wire.server.send_stream_data(0, b"pong")
    wire.server.send_stream_data(1, b"server-opened")
    wire.run(wire.now + 0.1)
    for core in (wire.client, wire.server):
        for stream_id in (0, 1):
            assert type(core._streams[stream_id].sender) is ChunkedStreamSender
        for crypto in core._crypto_streams.values():
            assert type(crypto.sender) is QuicStreamSender


def test_frame_writing_and_parsing_hooks() -> None:
    """core.py replaces aioquic's STREAM frame writer (to write long frames) and its PADDING
    parser (speed), using these pieces of aioquic's sender, packet builder and buffer."""
    assert _parameters(QuicConnection._write_stream_frame) == [
        "self",
        "builder",
        "space",
        "stream",
        "max_offset",
    ]
    assert _parameters(QuicConnection._handle_padding_frame) == [
        "self",
        "context",
        "frame_type",
        "buf",
    ]
    assert _parameters(QuicStreamSender.get_frame) == ["self", "max_size", "max_offset"]
    assert _parameters(QuicStreamSender.on_data_delivery) == [
        "self",
        "delivery",
        "start",
        "stop",
        "fin",
    ]
    assert isinstance(QuicStreamSender.next_offset, property)
    assert isinstance(QuicPacketBuilder.remaining_flight_space, property)
    assert _parameters(QuicPacketBuilder.start_frame)[:5] == [
        "self",
        "frame_type",
        "capacity",
        "handler",
        "handler_args",
    ]
    sender = QuicStreamSender(stream_id=0, writable=True)
    assert (sender.next_offset, sender.highest_offset) == (0, 0)
    # connection.py reads it to learn that STOP_SENDING came before a new stream's data
    assert sender._reset_error_code is None
    sender.reset(7)
    assert sender._reset_error_code == 7
    assert size_uint_var(16383) == 2 and size_uint_var(16384) == 4
    assert int(QuicFrameType.STREAM_BASE) == 0x08


@pytest.mark.parametrize(
    ("data", "start"),
    [(b"\x00\x00\x00\x01rest", 1), (bytes(100), 1), (b"\x00\x02", 1), (bytes(5) + b"\x06", 0)],
)
def test_padding_parser_skips_what_aioquics_skips(data: bytes, start: int) -> None:
    core = QuicCore(configuration=transport("client").configuration(is_client=True))
    ours, theirs = Buffer(data=data), Buffer(data=data)
    ours.seek(start)
    theirs.seek(start)
    core._handle_padding_frame(None, 0, ours)
    core._quic_logger = None
    QuicConnection._handle_padding_frame(core, None, 0, theirs)
    assert ours.tell() == theirs.tell()


def test_quic_connection_attributes() -> None:
    """The instance state core.py, connection.py and stream.py read or adjust."""
    core = QuicCore(configuration=transport("client").configuration(is_client=True))
    for limit in (core._local_max_streams_bidi, core._local_max_streams_uni, core._local_max_data):
        assert isinstance(limit, Limit)
        assert {"value", "used", "sent"} <= set(vars(limit))
    assert core._local_max_streams_bidi.value == 256  # QuicCore set it
    assert core._local_max_streams_uni.value == 0
    assert isinstance(core._remote_max_streams_bidi, int)
    assert isinstance(core._max_datagram_size, int)
    assert isinstance(core._streams, dict)
    assert isinstance(core._spaces, dict)
    assert core._close_event is None
    assert core._handshake_complete is False
    assert core._handshake_confirmed is False
    loss = core._loss
    assert isinstance(loss._rtt_initialized, bool)
    assert isinstance(loss._rtt_smoothed, float)
    assert isinstance(loss._pacer._max_datagram_size, int)
    # The loss timer's settling in handle_timer:
    assert core._loss_at is None and core._close_at is None  # both set once it runs
    assert loss._get_loss_space() is None
    assert _parameters(type(loss).on_loss_detection_timeout) == ["self", "now"]
    cc = loss._cc
    assert isinstance(cc.congestion_window, int)
    assert hasattr(cc, "_max_datagram_size")  # the default (reno) keeps its own copy


def test_quic_stream_attributes() -> None:
    """The stream state that flow control (core.py) and send backpressure read."""
    wire = Wire().connected()
    wire.client.send_stream_data(0, b"abc")
    wire.run(wire.now + 0.1)
    assert wire.server is not None
    for core in (wire.client, wire.server):
        stream = core._streams[0]
        assert isinstance(stream.max_stream_data_local, int)
        assert isinstance(stream.max_stream_data_local_sent, int)
        assert isinstance(stream.receiver.highest_offset, int)
        assert isinstance(stream.receiver.starting_offset(), int)
        assert isinstance(stream.receiver.is_finished, bool)
        assert stream.sender._buffer_stop - stream.sender._buffer_start >= 0
    assert wire.server._streams[0].receiver.starting_offset() == 3
    assert wire.client.unacked(0) == 0  # acknowledged by now
    for space in wire.client._spaces.values():
        assert hasattr(space, "ack_at")
    assert tls.Epoch.ONE_RTT in wire.client._spaces


def test_tls_context_is_replaced_by_ours() -> None:
    """_initialize is where the context is swapped; the server asks for a certificate."""
    wire = Wire().connected()
    assert wire.server is not None
    assert isinstance(wire.client.tls, Libp2pTlsContext)
    assert isinstance(wire.server.tls, Libp2pTlsContext)
    assert wire.server.tls._request_client_certificate is True
    assert wire.client.tls._request_client_certificate is False


# ---------------------------------------------------------------------------- handshake


@pytest.mark.parametrize("cipher", [b"aes-128-ecb", b"aes-256-ecb", b"chacha20"])
@pytest.mark.parametrize(("first", "pn_length"), [(0xC3, 4), (0xC0, 1), (0x41, 2), (0x5E, 3)])
def test_fast_header_protection_matches_aioquics(cipher: bytes, first: int, pn_length: int) -> None:
    """Same protected bytes out of apply, same header and packet number out of remove, for
    long (0xC.) and short (0x4./0x5.) headers and every packet-number length."""
    key = bytes(range(32 if cipher != b"aes-128-ecb" else 16))
    theirs = HeaderProtection(cipher, key)
    ours = HeaderProtection(cipher, key)
    ours.__class__ = FastHeaderProtection
    first = (first & ~0x03) | (pn_length - 1)
    header = bytes([first]) + bytes(range(1, 9)) + bytes(range(200, 200 + pn_length))
    payload = bytes((i * 7) % 256 for i in range(1000))
    protected = theirs.apply(header, payload)
    assert ours.apply(header, payload) == protected
    pn_offset = len(header) - pn_length
    assert ours.remove(protected, pn_offset) == theirs.remove(protected, pn_offset)
    with pytest.raises(CryptoError):
        ours.remove(protected[: pn_offset + 10], pn_offset)


def test_established_connections_use_fast_header_protection() -> None:
    wire = Wire().connected()
    for core in (wire.client, wire.server):
        assert core is not None
        pair = core._cryptos[tls.Epoch.ONE_RTT]
        assert type(pair.send.hp) is FastHeaderProtection
        assert type(pair.recv.hp) is FastHeaderProtection


def test_handshake_proves_both_peers() -> None:
    wire = Wire().connected()
    assert wire.server is not None
    assert wire.client.handshake_complete and wire.server.handshake_complete
    assert wire.client.remote_peer == identity("server").peer_id
    assert wire.server.remote_peer == identity("client").peer_id
    assert wire.client.remote_public_key == identity("server").public
    assert wire.server.remote_public_key == identity("client").public
    assert wire.client.libp2p_error is None and wire.server.libp2p_error is None
    (_, completed), *_ = wire.of_type("client", events.HandshakeCompleted)
    assert completed.alpn_protocol == "libp2p"


def test_unexpected_server_identity_fails_the_handshake() -> None:
    other = KeyPair.generate().peer_id
    wire = Wire(expected_peer=other)
    wire.run(5.0)
    error = wire.client.libp2p_error
    assert isinstance(error, PeerIDMismatch)
    assert (error.expected, error.actual) == (other, identity("server").peer_id)
    assert wire.client.remote_peer is None
    client_end, server_end = wire.terminated("client"), wire.terminated("server")
    assert client_end is not None and client_end.error_code == CRYPTO_ERROR + BAD_CERTIFICATE
    assert server_end is not None and server_end.error_code == CRYPTO_ERROR + BAD_CERTIFICATE
    assert not wire.of_type("server", events.HandshakeCompleted)


def test_server_refuses_a_client_without_certificate() -> None:
    def anonymous(configuration: Any) -> Any:
        configuration.certificate = configuration.private_key = None
        return configuration

    wire = Wire(client_configuration=anonymous)
    wire.run(5.0)
    assert wire.server is not None
    assert isinstance(wire.server.libp2p_error, CertificateError)
    assert wire.server.remote_peer is None
    assert not wire.of_type("server", events.HandshakeCompleted)
    client_end = wire.terminated("client")
    assert client_end is not None
    assert client_end.error_code == CRYPTO_ERROR + CERTIFICATE_REQUIRED


# ---------------------------------------------------------------------------- flow control


def test_stream_credit_follows_consumption() -> None:
    """Without consume() the sender gets exactly the first stream window delivered, however
    long it waits; each consume() lets more through, until everything arrived."""
    wire = Wire().connected()
    assert wire.server is not None
    total = 3 * MIB
    wire.client.send_stream_data(0, bytes(total), end_stream=True)
    wire.run(wire.now + 5.0)
    assert wire.received(0) == STREAM_WINDOW
    assert wire.server._streams[0].max_stream_data_local == STREAM_WINDOW
    assert wire.client.unacked(0) == total - STREAM_WINDOW

    assert wire.server.consume(0, 1000) is False  # not yet half the window: no update
    assert wire.server.consume(0, STREAM_WINDOW // 2) is True
    wire.run(wire.now + 1.0)
    later = wire.received(0)
    assert STREAM_WINDOW < later < total

    consumed = STREAM_WINDOW // 2 + 1000
    for _ in range(100):
        if wire.received(0) == total:
            break
        wire.server.consume(0, wire.received(0) - consumed)
        consumed = wire.received(0)
        wire.run(wire.now + 0.05)
    assert wire.received(0) == total
    assert wire.client.unacked(0) == 0
    with pytest.raises(ValueError, match="consumed more"):
        wire.server.consume(0, total)


def test_connection_credit_follows_consumption() -> None:
    """Four streams whose reader reads nothing together get the connection window (3 MiB),
    not four stream windows; once the reader consumes what arrived, the rest flows."""
    wire = Wire().connected()
    assert wire.server is not None
    streams = [0, 4, 8, 12]
    for stream_id in streams:
        wire.client.send_stream_data(stream_id, bytes(STREAM_WINDOW))
    wire.run(wire.now + 5.0)
    delivered = {s: wire.received(s) for s in streams}
    assert sum(delivered.values()) == CONNECTION_WINDOW
    assert all(n < STREAM_WINDOW for n in delivered.values())  # shared, not one stream's
    due = [wire.server.consume(s, n) for s, n in delivered.items()]
    assert due[-1] is True
    wire.run(wire.now + 5.0)
    assert sum(wire.received(s) for s in streams) == 4 * STREAM_WINDOW


def test_a_lossy_transfer_arrives_intact_and_the_sender_lets_go() -> None:
    """5 % of datagrams lost each way: what the client wrote (bytes, a bytearray it then
    overwrote, views of bytes) arrives whole and in order, and once all is acknowledged
    the client's sender holds nothing."""
    wire = Wire().connected()
    server = wire.server
    assert server is not None
    wire.loss = {"client": 0.05, "server": 0.05}
    rng = random.Random(11)
    expected = bytearray()
    for i in range(60):
        piece = rng.randbytes(rng.choice([1, 900, 20_000, 70_000]))
        expected += piece
        if i % 3 == 0:
            reused = bytearray(piece)
            wire.client.send_stream_data(0, reused)  # type: ignore[arg-type]
            reused[:] = bytes(len(reused))
        elif i % 3 == 1:
            wire.client.send_stream_data(0, memoryview(b"<" + piece + b">")[1:-1])
        else:
            wire.client.send_stream_data(0, piece)
    wire.client.send_stream_data(0, b"", end_stream=True)
    consumed = 0

    def everything_acknowledged() -> bool:
        nonlocal consumed
        got = wire.received(0)
        if got > consumed:
            server.consume(0, got - consumed)
            consumed = got
        return got == len(expected) and wire.client._streams[0].sender.is_finished

    assert wire.run_until(everything_acknowledged, 60.0)
    data = b"".join(e.data for _, e in wire.of_type("server", events.StreamDataReceived))
    assert data == expected
    sender = wire.client._streams[0].sender
    assert isinstance(sender, ChunkedStreamSender)
    assert wire.client.unacked(0) == 0
    assert not any(len(chunk) for chunk in sender._chunks)
    assert wire.dropped["client"] and wire.dropped["server"]


def test_one_call_sends_at_most_a_batch() -> None:
    """With a wide congestion window and much to send, datagrams_to_send stops after
    SEND_BATCH bytes and says there is more; the window is left as it was; calls go on
    until flow control, not the batch, holds the stream back."""
    wire = Wire().connected()
    client = wire.client
    cc = client._loss._cc
    cc.congestion_window = 64 * MIB
    client._loss._pacer.packet_time = None  # no pacing until the next ACK updates it
    client.send_stream_data(0, bytes(4 * MIB))
    batches = []
    while True:
        sent = sum(len(data) for data, _ in client.datagrams_to_send(wire.now))
        assert cc.congestion_window == 64 * MIB
        batches.append(sent)
        if not client.more_to_send:
            break
    assert len(batches) > 2
    datagram = client._max_datagram_size
    assert all(SEND_BATCH - datagram < n <= SEND_BATCH + datagram for n in batches[:-1])
    assert batches[-1] <= SEND_BATCH
    assert client._streams[0].sender.highest_offset == STREAM_WINDOW  # the peer's credit
    assert STREAM_WINDOW < sum(batches) < STREAM_WINDOW * 1.05  # with the packets' headers


def test_a_loss_timer_due_to_the_ulp_settles_its_packet() -> None:
    """aioquic sets the loss timer to send time + threshold and counts a packet lost when
    its send time is at most now - threshold. For some send times the two disagree by an
    ulp; handle_timer at the timer's own time must still count the packet lost, or the
    timer never moves (the Wire's fake clock would spin on it)."""
    wire = Wire().connected()
    client = wire.client
    wire.cut["client"] = True
    client.send_stream_data(0, b"lost")
    wire.run(wire.now)  # sent (and dropped) at once
    wire.cut["client"] = False
    client.send_stream_data(0, b"acknowledged")
    loss = client._loss
    assert wire.run_until(lambda: loss._get_loss_space() is not None, wire.now + 0.1)
    space = loss._get_loss_space()
    assert space is not None
    (number, packet), *_ = space.sent_packets.items()
    delay = 9 / 8 * max(loss._rtt_latest, loss._rtt_smoothed)  # aioquic's time threshold
    sent = packet.sent_time
    while (sent + delay) - delay >= sent:  # find a send time the two rules disagree on
        sent = math.nextafter(sent, math.inf)
    packet.sent_time = sent
    space.loss_time = sent + delay
    due = client.get_timer()
    assert due == space.loss_time
    client.handle_timer(due)
    assert number not in space.sent_packets  # counted lost (and queued again)
    timer = client.get_timer()
    assert timer is not None and timer > due


def test_out_of_order_bytes_earn_no_connection_credit() -> None:
    """A peer that sends only the last byte of half a window on several streams, leaving
    gaps it never fills, has used connection credit but delivered nothing: the receiver
    grants no more (else it would hold ever more gap buffers)."""
    wire = Wire().connected()
    server = wire.server
    assert server is not None
    limit_before = server._local_max_data.value
    half = STREAM_WINDOW // 2
    streams = [0, 4, 8, 12]
    for stream_id in streams:
        wire.client.send_stream_data(stream_id, bytes(half))
        wire.client._streams[stream_id].sender._pending.subtract(0, half - 1)  # last byte only
    wire.run(wire.now + 1.0)
    assert server._local_max_data.used == len(streams) * half  # what the offsets claim
    assert sum(wire.received(s) for s in streams) == 0  # and nothing was delivered
    assert server._local_max_data.value == limit_before


def test_ignored_stream_does_not_hold_connection_credit() -> None:
    """Data of streams nobody will read (ignore()) counts as read for the connection."""
    wire = Wire().connected()
    assert wire.server is not None
    for stream_id in (0, 4, 8):
        wire.client.send_stream_data(stream_id, bytes(STREAM_WINDOW))
    wire.run(wire.now + 5.0)
    assert [wire.received(s) for s in (0, 4, 8)] == [STREAM_WINDOW] * 3  # = the connection's
    wire.client.send_stream_data(12, bytes(STREAM_WINDOW))
    wire.run(wire.now + 2.0)
    assert wire.received(12) == 0
    wire.server.ignore(0)
    wire.server.ignore(4)
    wire.run(wire.now + 5.0)
    assert wire.received(12) == STREAM_WINDOW


def test_windows_grow_for_a_prompt_reader_up_to_their_caps() -> None:
    """A reader that consumes as data arrives runs out of credit within two round trips, so
    the windows double, but never past max_stream_window / max_connection_window: the
    credit granted beyond what was consumed stays bounded."""
    max_stream, max_connection = 4 * MIB, 6 * MIB
    wire = Wire(
        server_options={"max_stream_window": max_stream, "max_connection_window": max_connection}
    ).connected()
    server = wire.server
    assert server is not None
    total = 32 * MIB
    wire.client.send_stream_data(0, bytes(total), end_stream=True)
    consumed = peak_credit = 0
    while consumed < total and wire.now < 30.0:
        wire.run(wire.now + 0.002)
        server.consume(0, wire.received(0) - consumed)
        consumed = wire.received(0)
        stream = server._streams.get(0)
        if stream is not None:
            peak_credit = max(peak_credit, stream.max_stream_data_local - consumed)
        assert server._local_max_data.value - consumed <= max_connection
    assert consumed == total
    assert STREAM_WINDOW < peak_credit <= max_stream
    assert server._windows[0][0] == max_stream
    assert server._connection_window == max_connection


def test_stream_limit_is_raised_as_streams_end() -> None:
    """max_inbound_streams=2: the client may open two streams; once they are over in both
    directions, MAX_STREAMS lets it open more (aioquic's batching must see our limit as
    already announced, or it holds the update back)."""
    wire = Wire(server_options={"max_inbound_streams": 2}).connected()
    assert wire.server is not None
    assert wire.client._remote_max_streams_bidi == 2
    for stream_id in (0, 4):
        wire.client.send_stream_data(stream_id, b"x", end_stream=True)
    wire.run(wire.now + 0.1)
    assert wire.client._remote_max_streams_bidi == 2  # both still open on the server
    for stream_id in (0, 4):
        wire.server.send_stream_data(stream_id, b"y", end_stream=True)
    wire.run(wire.now + 0.2)
    assert wire.client._remote_max_streams_bidi == 4
    assert wire.server._local_max_streams_uni.value == 0


# ---------------------------------------------------------------------------- timers


def test_keepalive_ping_fires_at_the_interval() -> None:
    wire = Wire(
        transport("client", idle_timeout=2.0),
        transport("server", idle_timeout=2.0),
        client_options={"keepalive_interval": 0.5},
    ).connected()
    (handshake_at, _), *_ = wire.of_type("client", events.HandshakeCompleted)
    wire.run(handshake_at + 0.3)  # everything of the handshake settled
    assert wire.client.get_timer() == pytest.approx(handshake_at + 0.5)
    wire.run(handshake_at + 0.5 + 3 * ONE_WAY_DELAY)
    pings = wire.of_type("client", events.PingAcknowledged)
    assert [e.uid for _, e in pings] == [1]
    assert pings[0][0] == pytest.approx(handshake_at + 0.5 + 2 * ONE_WAY_DELAY, abs=0.03)
    # Quiet otherwise, the connection outlives the 2 s idle timeout many times over.
    wire.run(handshake_at + 10.2)
    assert wire.terminated("client") is None and wire.terminated("server") is None
    assert len(wire.of_type("client", events.PingAcknowledged)) == 20


def test_without_keepalive_an_idle_connection_times_out() -> None:
    wire = Wire(
        transport("client", idle_timeout=2.0), transport("server", idle_timeout=2.0)
    ).connected()
    assert wire.client.get_timer() is not None
    wire.run(10.0)
    for side in ("client", "server"):
        (ended_at, ended), *_ = wire.of_type(side, events.ConnectionTerminated)
        assert ended.reason_phrase == "Idle timeout"
        assert 2.0 <= ended_at < 2.5
    assert not wire.of_type("client", events.PingAcknowledged)


def test_handshake_deadline_closes_a_silent_connection() -> None:
    """A server that never answers: the client gives up at its handshake deadline (long
    before the 30 s idle timeout), with HANDSHAKE_TIMEOUT_CODE."""
    wire = Wire(client_options={"handshake_timeout": 3.0})
    wire.cut["client"] = True  # nothing reaches the server
    wire.run(2.9)
    assert wire.terminated("client") is None
    assert len(wire.sent["client"]) > 1  # the Initial was sent again meanwhile
    wire.run(10.0)
    (ended_at, ended), *_ = wire.of_type("client", events.ConnectionTerminated)
    assert ended.error_code == HANDSHAKE_TIMEOUT_CODE
    assert ended.reason_phrase == "handshake timeout"
    assert 3.0 <= ended_at < 6.0
    assert wire.client.is_closed
    assert wire.client.get_timer() is None


def test_handshake_deadline_spares_a_finished_handshake() -> None:
    wire = Wire(
        client_options={"handshake_timeout": 1.0}, server_options={"handshake_timeout": 1.0}
    ).connected()
    wire.run(5.0)
    assert wire.terminated("client") is None and wire.terminated("server") is None


def test_server_handshake_deadline() -> None:
    """The server side too: a client that goes silent after its first flight."""
    wire = Wire(server_options={"handshake_timeout": 2.0})
    wire.run_until(lambda: wire.server is not None, 1.0)
    wire.cut["client"] = True
    wire.run(10.0)
    (ended_at, ended), *_ = wire.of_type("server", events.ConnectionTerminated)
    assert ended.error_code == HANDSHAKE_TIMEOUT_CODE
    assert 2.0 <= ended_at < 5.0


# ---------------------------------------------------------------------------- datagram size


class CappedPayloadCore(QuicCore):
    """A server that advertises max_udp_payload_size 1452 (as quic-go does); aioquic itself
    sends no such parameter, which means 65527."""

    def _serialize_transport_parameters(self) -> bytes:
        params = pull_quic_transport_parameters(
            Buffer(data=super()._serialize_transport_parameters())
        )
        params.max_udp_payload_size = 1452
        buf = Buffer(capacity=4096)
        push_quic_transport_parameters(buf, params)
        return bytes(buf.data)


@pytest.mark.parametrize(
    ("path_size", "server_class", "expected"),
    [
        pytest.param(16384, QuicCore, 16384, id="path-cap"),
        pytest.param(16384, CappedPayloadCore, 1452, id="peer-cap"),
        pytest.param(1200, QuicCore, 1200, id="minimum-path"),
        pytest.param(1452, QuicCore, 1452, id="ethernet-path"),
    ],
)
def test_datagram_size_grows_after_the_handshake(
    path_size: int, server_class: type[QuicCore], expected: int
) -> None:
    wire = Wire(
        client_options={"path_max_datagram_size": path_size},
        server_class=server_class,
    )
    assert wire.client.max_datagram_size == 1200
    cwnd_before = wire.client._loss._cc.congestion_window
    wire.connected()
    wire.run(wire.now + 0.1)  # the handshake is confirmed by now
    (handshake_at, _), *_ = wire.of_type("client", events.HandshakeCompleted)
    assert all(len(d) <= 1200 for t, d in wire.sent["client"] if t <= handshake_at)
    assert wire.client.max_datagram_size == expected
    assert wire.client._loss._pacer._max_datagram_size == expected
    assert wire.client._loss._cc.congestion_window >= cwnd_before * expected // 1200
    start = len(wire.sent["client"])
    wire.client.send_stream_data(0, bytes(512 * 1024), end_stream=True)
    wire.run(wire.now + 2.0)
    assert wire.received(0) == 512 * 1024
    largest = max(len(d) for _, d in wire.sent["client"][start:])
    assert expected - 16 <= largest <= expected


def burst_after_one_granularity(pacer: Any, now: float) -> int:
    """Packets the pacer lets out at once when woken TIMER_GRANULARITY after it ran dry."""
    pacer.bucket_time = 0.0
    pacer.evaluation_time = now
    woken = now + TIMER_GRANULARITY
    burst = 0
    while pacer.next_send_time(woken) is None:
        pacer.update_after_send(woken)
        burst += 1
    return burst


def test_pacing_bursts_cover_the_timer_granularity() -> None:
    """The shell's timers fire a millisecond late at best (epoll), so a paced sender must
    be allowed a millisecond's worth of packets per wake-up; aioquic's own pacer allows 16
    packets, which on loopback with 1,452-byte datagrams capped QUIC at ~20 MiB/s."""
    pacer = Wire().client._loss._pacer
    pacer._max_datagram_size = 1452
    pacer.update_rate(congestion_window=8 << 20, smoothed_rtt=0.001)  # 8 GB/s
    burst = burst_after_one_granularity(pacer, 1.0)
    # A millisecond's worth at the pacing rate (aioquic's pacer: 16 packets).
    assert pacer.packet_time is not None
    assert burst >= 0.9 * TIMER_GRANULARITY / pacer.packet_time > 16
    # At a slow rate the pacer still spaces packets out: a millisecond earns a few.
    pacer.update_rate(congestion_window=64 * 1452, smoothed_rtt=0.05)
    assert 1 <= burst_after_one_granularity(pacer, 2.0) <= 3
