"""YamuxSession, the sans-IO yamux core, against libp2p/specs yamux/README.md.

Two sessions are joined by a :class:`Link` that moves each one's ``data_to_send()`` into the
other's ``receive_data()``. Every exchange runs byte at a time, in small pieces and all at
once (the ``step`` fixture), as h11's tests do. Frames a peer would never send come from
``encode_header`` directly.
"""

from __future__ import annotations

import pytest

from p2pstack.errors import LocalProtocolError, RemoteProtocolError, ResourceLimitExceeded
from p2pstack.muxer.yamux.frame import (
    DEFAULT_MAX_FRAME_DATA,
    DEFAULT_MAX_REFERENCED_FRAME_DATA,
    HEADER,
    HEADER_SIZE,
    INITIAL_WINDOW,
    Flag,
    FrameType,
    GoAwayCode,
    encode_header,
)
from p2pstack.muxer.yamux.session import (
    REFERENCE_AT,
    DataReceived,
    Event,
    GoAwayReceived,
    KeepaliveTimedOut,
    PingAcknowledged,
    StreamAcknowledged,
    StreamEnded,
    StreamOpened,
    StreamRejected,
    StreamReset,
    WindowOpened,
    YamuxSession,
)

DATA, WINDOW_UPDATE, PING, GO_AWAY = (int(t) for t in FrameType)
SYN, ACK, FIN, RST = (int(f) for f in (Flag.SYN, Flag.ACK, Flag.FIN, Flag.RST))
HALF = INITIAL_WINDOW // 2
GO_AWAY_PROTOCOL_ERROR = (GO_AWAY, 0, 0, 1)


@pytest.fixture(params=[1, 5, None], ids=["byte-at-a-time", "5-byte-pieces", "all-at-once"])
def step(request: pytest.FixtureRequest) -> int | None:
    """How many bytes each ``receive_data`` call gets (``None``: everything at once)."""
    return request.param  # type: ignore[no-any-return]


def feed(session: YamuxSession, data: bytes, step: int | None) -> list[Event]:
    """``data`` fed in pieces of ``step`` bytes. A payload split across pieces comes in as
    many DataReceived events; those of one stream in a row are joined into one here, so
    that every step expects the same events."""
    if step is None:
        return session.receive_data(data)
    events: list[Event | list[DataReceived]] = []
    for i in range(0, len(data), step):
        for event in session.receive_data(data[i : i + step]):
            last = events[-1] if events else None
            if (
                isinstance(event, DataReceived)
                and isinstance(last, list)
                and last[0].stream_id == event.stream_id
            ):
                last.append(event)
            else:
                events.append([event] if isinstance(event, DataReceived) else event)
    return [
        DataReceived(e[0].stream_id, b"".join(part.data for part in e))
        if isinstance(e, list)
        else e
        for e in events
    ]


def frames(data: bytes | bytearray) -> list[tuple[int, int, int, int]]:
    """``(type, flags, stream id, length)`` of every frame in ``data``; payloads skipped."""
    out = []
    pos = 0
    while pos < len(data):
        version, ftype, flags, sid, length = HEADER.unpack_from(data, pos)
        assert version == 0
        pos += HEADER_SIZE + (length if ftype == DATA else 0)
        out.append((ftype, flags, sid, length))
    assert pos == len(data)
    return out


def received(events: list[Event], sid: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived) and e.stream_id == sid)


class Link:
    """A client (dialer) and a server session joined by a fake link."""

    def __init__(self, step: int | None, **options: object) -> None:
        self.client = YamuxSession(True, **options)  # type: ignore[arg-type]
        self.server = YamuxSession(False, **options)  # type: ignore[arg-type]
        self.step = step

    def to_server(self) -> list[Event]:
        return feed(self.server, bytes(self.client.data_to_send()), self.step)

    def to_client(self) -> list[Event]:
        return feed(self.client, bytes(self.server.data_to_send()), self.step)

    def flush(self) -> tuple[list[Event], list[Event]]:
        """Move bytes both ways until both sides are quiet: (client events, server events)."""
        client_events: list[Event] = []
        server_events: list[Event] = []
        while self.client.bytes_to_send or self.server.bytes_to_send:
            server_events += self.to_server()
            client_events += self.to_client()
        return client_events, server_events

    def open(self) -> int:
        """The client opens a stream and the server accepts it."""
        sid = self.client.open_stream()
        client_events, server_events = self.flush()
        assert server_events == [StreamOpened(sid)]
        assert client_events == [StreamAcknowledged(sid)]
        return sid


# ---------------------------------------------------------------------------- opening


def test_open_and_accept_with_syn_and_ack(step: int | None) -> None:
    link = Link(step)
    sid = link.client.open_stream()
    assert sid == 1
    syn = bytes(link.client.data_to_send())
    assert syn == encode_header(WINDOW_UPDATE, SYN, 1, 0)
    assert feed(link.server, syn, step) == [StreamOpened(1)]
    ack = bytes(link.server.data_to_send())
    assert ack == encode_header(WINDOW_UPDATE, ACK, 1, 0)
    assert feed(link.client, ack, step) == [StreamAcknowledged(1)]
    assert link.client.stream_is_open(1) and link.server.stream_is_open(1)
    assert link.client.send_window(1) == link.server.send_window(1) == INITIAL_WINDOW


def test_stream_ids_are_odd_for_the_client_and_even_for_the_server(step: int | None) -> None:
    link = Link(step)
    assert [link.client.open_stream() for _ in range(3)] == [1, 3, 5]
    assert [link.server.open_stream() for _ in range(3)] == [2, 4, 6]
    client_events, server_events = link.flush()
    assert [e for e in server_events if isinstance(e, StreamOpened)] == [
        StreamOpened(1),
        StreamOpened(3),
        StreamOpened(5),
    ]
    assert [e for e in client_events if isinstance(e, StreamOpened)] == [
        StreamOpened(2),
        StreamOpened(4),
        StreamOpened(6),
    ]
    assert link.client.open_stream_count == link.server.open_stream_count == 6


def test_data_both_ways(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    assert link.client.send_data(sid, b"hello") == 5
    assert link.to_server() == [DataReceived(sid, b"hello")]
    assert link.server.send_data(sid, b"world!") == 6
    assert link.to_client() == [DataReceived(sid, b"world!")]


def test_large_copied_writes_are_split_into_max_size_frames(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    payload = bytearray(range(256)) * 800  # 204800 bytes, inside the initial window
    assert link.client.send_data(sid, payload) == len(payload)
    out = bytes(link.client.data_to_send())
    sizes = [length for _, _, _, length in frames(out)]
    assert sizes == [DEFAULT_MAX_FRAME_DATA] * 3 + [len(payload) - 3 * DEFAULT_MAX_FRAME_DATA]
    assert received(feed(link.server, out, step), sid) == payload


def test_large_bytes_payloads_are_queued_by_reference(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    link.client.ping()  # a control frame queued before the data
    payload = bytes(range(256)) * 2000  # 512000 bytes: two frames, the window's worth
    assert link.client.send_data(sid, payload) == INITIAL_WINDOW
    segments = link.client.segments_to_send()
    assert link.client.bytes_to_send == 0
    # [ping + header][payload view][header][payload view]: the payloads are not copied.
    assert [type(seg) for seg in segments] == [bytearray, memoryview, bytearray, memoryview]
    first, second = segments[1], segments[3]
    assert isinstance(first, memoryview) and isinstance(second, memoryview)
    assert first.obj is payload and second.obj is payload
    assert len(first) == DEFAULT_MAX_REFERENCED_FRAME_DATA
    assert len(first) + len(second) == INITIAL_WINDOW
    out = b"".join(segments)
    assert [f[:3] for f in frames(out)] == [(PING, SYN, 0), (DATA, 0, sid), (DATA, 0, sid)]
    assert received(feed(link.server, out, step), sid) == payload[:INITIAL_WINDOW]


def test_small_or_mutable_payloads_are_copied() -> None:
    link = Link(None)
    sid = link.open()
    small = bytes(REFERENCE_AT - 1)
    mutable = bytearray(REFERENCE_AT)
    link.client.send_data(sid, small)
    link.client.send_data(sid, mutable)
    segments = link.client.segments_to_send()
    assert len(segments) == 1 and isinstance(segments[0], bytearray)
    mutable[:] = b"x" * len(mutable)  # changing it afterwards changes nothing queued
    assert received(link.server.receive_data(bytes(segments[0])), sid) == small + bytes(
        REFERENCE_AT
    )


def sent_then_closed() -> tuple[Link, int, bytes, bytearray]:
    """A stream on which the client sent 25,600 bytes (queued by reference) and FIN:
    (link, stream id, payload, the client's data_to_send())."""
    link = Link(None)
    sid = link.open()
    payload = bytes(range(256)) * 100
    link.client.send_data(sid, payload)
    link.client.send_eof(sid)
    return link, sid, payload, link.client.data_to_send()


def test_data_to_send_joins_what_was_queued_by_reference() -> None:
    link, sid, payload, out = sent_then_closed()
    assert isinstance(out, bytearray) and link.client.bytes_to_send == 0
    assert [f[:3] for f in frames(out)] == [(DATA, 0, sid), (WINDOW_UPDATE, FIN, sid)]
    assert link.server.receive_data(bytes(out)) == [
        DataReceived(sid, payload),
        StreamEnded(sid),
    ]


def test_a_payload_is_delivered_as_it_arrives() -> None:
    link, sid, _, sent = sent_then_closed()
    out = bytes(sent)
    header, body, fin = out[:HEADER_SIZE], out[HEADER_SIZE:-HEADER_SIZE], out[-HEADER_SIZE:]
    server = link.server
    assert server.receive_data(header + body[:100]) == [DataReceived(sid, body[:100])]
    assert server.receive_data(body[100:200]) == [DataReceived(sid, body[100:200])]
    rest = body[200:]
    events = server.receive_data(rest)
    # A bytes input that is all payload is handed over as it is, not copied.
    assert events == [DataReceived(sid, rest)] and events[0].data is rest
    # The FIN of the frame after it, split mid-header.
    assert server.receive_data(fin[:5]) == []
    assert server.receive_data(fin[5:]) == [StreamEnded(sid)]


def test_a_fin_on_a_data_frame_applies_after_its_whole_payload(step: int | None) -> None:
    server = YamuxSession(False)
    data = encode_header(DATA, SYN | FIN, 1, 10) + b"0123456789"
    events = feed(server, data[:15], None)  # header and 3 bytes of payload
    assert events == [StreamOpened(1), DataReceived(1, b"012")]
    assert feed(server, data[15:], step) == [DataReceived(1, b"3456789"), StreamEnded(1)]


def test_a_stream_reset_midway_through_a_payload_drops_the_rest() -> None:
    server = server_with_stream_1()
    data = encode_header(DATA, 0, 1, 10) + b"0123456789"
    assert server.receive_data(data[:15]) == [DataReceived(1, b"012")]
    server.reset_stream(1)
    assert server.receive_data(data[15:] + encode_header(DATA, 0, 1, 2) + b"ab") == []
    assert not server.terminated


def test_a_payload_beyond_the_window_is_refused_at_its_header() -> None:
    server = server_with_stream_1()
    header = encode_header(DATA, 0, 1, INITIAL_WINDOW + 1)
    with pytest.raises(RemoteProtocolError):
        server.receive_data(header)  # before any of the payload came
    assert server.terminated


def test_data_on_the_syn_frame_is_accepted(step: int | None) -> None:
    server = YamuxSession(False)
    events = feed(server, encode_header(DATA, SYN, 1, 3) + b"abc", step)
    assert events == [StreamOpened(1), DataReceived(1, b"abc")]


# ---------------------------------------------------------------------------- closing


@pytest.mark.parametrize("first", ["client", "server"])
def test_half_close_in_either_order(step: int | None, first: str) -> None:
    link = Link(step)
    sid = link.open()
    a, b = (link.client, link.server) if first == "client" else (link.server, link.client)

    a.send_eof(sid)
    fin = bytes(a.data_to_send())
    assert fin == encode_header(WINDOW_UPDATE, FIN, sid, 0)
    assert feed(b, fin, step) == [StreamEnded(sid)]
    with pytest.raises(LocalProtocolError):
        a.send_data(sid, b"after eof")
    a.send_eof(sid)  # idempotent: nothing more is sent
    assert a.bytes_to_send == 0

    # The other direction is still open.
    assert b.send_data(sid, b"late reply") == 10
    assert feed(a, bytes(b.data_to_send()), step) == [DataReceived(sid, b"late reply")]
    b.send_eof(sid)
    assert feed(a, bytes(b.data_to_send()), step) == [StreamEnded(sid)]

    assert not a.stream_is_open(sid) and not b.stream_is_open(sid)
    assert a.open_stream_count == b.open_stream_count == 0


def test_data_and_fin_in_one_frame(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    events = feed(link.server, encode_header(DATA, FIN, sid, 4) + b"last", step)
    assert events == [DataReceived(sid, b"last"), StreamEnded(sid)]


def test_reset(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    link.client.reset_stream(sid)
    rst = bytes(link.client.data_to_send())
    assert rst == encode_header(WINDOW_UPDATE, RST, sid, 0)
    assert feed(link.server, rst, step) == [StreamReset(sid, remote=True)]
    assert not link.client.stream_is_open(sid) and not link.server.stream_is_open(sid)
    with pytest.raises(LocalProtocolError):
        link.server.send_data(sid, b"x")
    with pytest.raises(LocalProtocolError):
        link.client.send_data(sid, b"x")
    link.client.reset_stream(sid)  # a no-op on a stream already gone
    assert link.client.bytes_to_send == 0


def test_data_for_a_stream_we_reset_is_dropped(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    link.server.send_data(sid, b"in flight")
    link.client.reset_stream(sid)  # crosses the server's data on the wire
    assert link.to_client() == []
    # Whatever else the peer sent before it saw our RST is dropped too.
    late = encode_header(WINDOW_UPDATE, 0, sid, 100) + encode_header(WINDOW_UPDATE, FIN, sid, 0)
    assert feed(link.client, late, step) == []
    assert link.to_server() == [StreamReset(sid, remote=True)]
    assert not link.client.terminated and link.client.bytes_to_send == 0


def test_data_for_a_closed_stream_is_dropped(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    link.client.send_eof(sid)
    link.server.send_eof(sid)
    link.flush()
    assert not link.client.stream_is_open(sid)
    assert feed(link.client, encode_header(DATA, 0, sid, 3) + b"abc", step) == []
    assert not link.client.terminated and link.client.bytes_to_send == 0


def test_data_after_fin_resets_only_that_stream(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    other = link.open()
    link.client.send_eof(sid)
    assert link.to_server() == [StreamEnded(sid)]

    events = feed(link.server, encode_header(DATA, 0, sid, 5) + b"late!", step)
    assert events == [StreamReset(sid, remote=False)]
    assert bytes(link.server.data_to_send()) == encode_header(WINDOW_UPDATE, RST, sid, 0)
    assert not link.server.stream_is_open(sid)
    assert not link.server.terminated

    link.client.send_data(other, b"still fine")
    assert link.to_server() == [DataReceived(other, b"still fine")]


def test_data_with_rst_after_fin_resets_the_stream_once(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    other = link.open()
    link.client.send_eof(sid)
    assert link.to_server() == [StreamEnded(sid)]

    events = feed(link.server, encode_header(DATA, RST, sid, 5) + b"late!", step)
    assert [e.stream_id for e in events if isinstance(e, StreamReset)] == [sid]
    assert not link.server.stream_is_open(sid)
    assert not link.server.terminated
    link.client.send_data(other, b"still fine")
    assert link.to_server() == [DataReceived(other, b"still fine")]


# ---------------------------------------------------------------------------- flow control


def test_sender_is_blocked_at_exactly_the_initial_window(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    assert link.client.send_data(sid, bytes(300_000)) == INITIAL_WINDOW == 256 * 1024
    assert link.client.send_window(sid) == 0
    assert link.client.send_data(sid, b"x") == 0
    assert len(received(link.to_server(), sid)) == INITIAL_WINDOW
    assert link.server.bytes_to_send == 0  # nothing consumed, nothing granted

    link.server.consume(sid, HALF - 1, drained=False)
    assert link.server.bytes_to_send == 0
    link.server.consume(sid, 1, drained=False)
    update = bytes(link.server.data_to_send())
    assert frames(update) == [(WINDOW_UPDATE, 0, sid, HALF)]

    assert feed(link.client, update, step) == [WindowOpened(sid)]
    assert link.client.send_window(sid) == HALF
    assert link.client.send_data(sid, bytes(300_000)) == HALF
    assert link.client.send_data(sid, b"x") == 0
    assert len(received(link.to_server(), sid)) == HALF


def test_window_stays_put_while_the_reader_lags(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    for _ in range(4):
        assert link.client.send_data(sid, bytes(2 * INITIAL_WINDOW)) == INITIAL_WINDOW
        assert len(received(link.to_server(), sid)) == INITIAL_WINDOW
        # Never drained: each half window read returns exactly that much, never more.
        updates = bytearray()
        for _ in range(2):
            link.server.consume(sid, HALF, drained=False)
            update = link.server.data_to_send()
            assert frames(update) == [(WINDOW_UPDATE, 0, sid, HALF)]
            updates += update
        assert feed(link.client, bytes(updates), step) == [WindowOpened(sid)] * 2
        assert link.client.send_window(sid) == INITIAL_WINDOW


def test_window_doubles_when_drained_up_to_max_window(step: int | None) -> None:
    link = Link(step, max_window=4 * INITIAL_WINDOW)  # 1 MiB
    sid = link.open()
    client, server = link.client, link.server

    def grant() -> int:
        """The one WindowUpdate the server queued, delivered to the client; its delta."""
        update = bytes(server.data_to_send())
        ((ftype, flags, stream_id, delta),) = frames(update)
        assert (ftype, flags, stream_id) == (WINDOW_UPDATE, 0, sid)
        assert feed(client, update, step) == [WindowOpened(sid)]
        return delta

    assert client.send_data(sid, bytes(INITIAL_WINDOW)) == INITIAL_WINDOW
    link.to_server()
    # Half read and nothing left buffered: return the half and grow 256 KiB -> 512 KiB.
    server.consume(sid, HALF, drained=True)
    assert grant() == HALF + INITIAL_WINDOW
    server.consume(sid, HALF, drained=False)  # under half of the new window: no update
    assert server.bytes_to_send == 0

    # The client may now have 512 KiB in flight; the server takes all of it.
    assert client.send_data(sid, bytes(4 * INITIAL_WINDOW)) == HALF + INITIAL_WINDOW
    assert len(received(link.to_server(), sid)) == HALF + INITIAL_WINDOW
    server.consume(sid, HALF, drained=False)  # 256 KiB pending now: half of 512 KiB
    assert grant() == INITIAL_WINDOW  # not drained: no growth

    # Drained again: 512 KiB -> 1 MiB (the cap); what was read plus the growth.
    assert client.send_data(sid, bytes(4 * INITIAL_WINDOW)) == INITIAL_WINDOW
    link.to_server()
    server.consume(sid, 2 * INITIAL_WINDOW, drained=True)
    assert grant() == 2 * INITIAL_WINDOW + 2 * INITIAL_WINDOW
    assert client.send_window(sid) == 4 * INITIAL_WINDOW

    # At the cap, draining no longer grows the window.
    assert client.send_data(sid, bytes(8 * INITIAL_WINDOW)) == 4 * INITIAL_WINDOW
    assert len(received(link.to_server(), sid)) == 4 * INITIAL_WINDOW
    server.consume(sid, 2 * INITIAL_WINDOW, drained=True)
    assert grant() == 2 * INITIAL_WINDOW


def test_one_data_frame_as_large_as_the_window(step: int | None) -> None:
    # js-libp2p sends frames up to the whole window.
    link = Link(step)
    sid = link.open()
    payload = bytes(range(256)) * (INITIAL_WINDOW // 256)
    events = feed(link.server, encode_header(DATA, 0, sid, INITIAL_WINDOW) + payload, step)
    assert events == [DataReceived(sid, payload)]
    assert not link.server.terminated


def test_window_update_on_the_opening_frame_adds_to_the_send_window(step: int | None) -> None:
    # go-yamux announces a larger receive window in the SYN/ACK frame's length.
    server = YamuxSession(False)
    assert feed(server, encode_header(WINDOW_UPDATE, SYN, 1, 1000), step) == [
        StreamOpened(1),
        WindowOpened(1),
    ]
    assert server.send_window(1) == INITIAL_WINDOW + 1000


# ---------------------------------------------------------------------------- ping, go away


def test_ping_is_acknowledged_with_its_opaque_value(step: int | None) -> None:
    link = Link(step)
    opaque = link.client.ping(12.5)
    ping = bytes(link.client.data_to_send())
    assert frames(ping) == [(PING, SYN, 0, opaque)]
    assert feed(link.server, ping, step) == []
    pong = bytes(link.server.data_to_send())
    assert pong == encode_header(PING, ACK, 0, opaque)
    assert feed(link.client, pong, step) == [PingAcknowledged(opaque, 12.5)]

    second = link.client.ping()
    assert second != opaque
    assert link.flush() == ([PingAcknowledged(second, None)], [])


def test_an_unsolicited_pong_is_ignored(step: int | None) -> None:
    client = YamuxSession(True)
    assert feed(client, encode_header(PING, ACK, 0, 4242), step) == []
    assert not client.terminated and client.bytes_to_send == 0


def test_go_away_received_stops_new_streams_only(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    link.server.go_away()
    go_away = bytes(link.server.data_to_send())
    assert go_away == encode_header(GO_AWAY, 0, 0, 0)
    assert feed(link.client, go_away, step) == [GoAwayReceived(0)]
    assert link.client.remote_go_away == 0
    with pytest.raises(LocalProtocolError):
        link.client.open_stream()
    # Streams already open carry on, both ways.
    link.client.send_data(sid, b"ping")
    assert link.to_server() == [DataReceived(sid, b"ping")]
    link.server.send_data(sid, b"pong")
    assert link.to_client() == [DataReceived(sid, b"pong")]


def test_after_our_go_away_inbound_streams_are_rejected(step: int | None) -> None:
    server = YamuxSession(False)
    server.go_away()
    assert frames(server.data_to_send()) == [(GO_AWAY, 0, 0, 0)]
    with pytest.raises(LocalProtocolError):
        server.open_stream()
    assert feed(server, encode_header(WINDOW_UPDATE, SYN, 1, 0), step) == [StreamRejected(1)]
    assert bytes(server.data_to_send()) == encode_header(WINDOW_UPDATE, RST, 1, 0)


# ---------------------------------------------------------------------------- limits


def test_at_most_256_unacknowledged_outbound_streams(step: int | None) -> None:
    link = Link(step)
    ids = [link.client.open_stream() for _ in range(256)]
    assert ids == list(range(1, 512, 2))
    assert not link.client.can_open_stream()
    with pytest.raises(ResourceLimitExceeded):
        link.client.open_stream()

    client_events, server_events = link.flush()
    assert client_events == [StreamAcknowledged(sid) for sid in ids]
    assert len(server_events) == 256
    assert link.client.can_open_stream()
    assert link.client.open_stream() == 513


def test_resetting_an_unacknowledged_stream_frees_its_slot(step: int | None) -> None:
    client = YamuxSession(True, max_unacked_outbound=2)
    first = client.open_stream()
    second = client.open_stream()
    assert not client.can_open_stream()
    client.reset_stream(first)  # by us
    assert client.can_open_stream()
    third = client.open_stream()
    assert not client.can_open_stream()
    events = feed(client, encode_header(WINDOW_UPDATE, RST, second, 0), step)  # by the peer
    assert events == [StreamReset(second, remote=True)]
    assert client.can_open_stream()
    assert client.stream_is_open(third)


def test_ack_on_a_data_frame(step: int | None) -> None:
    # The acknowledgement may ride on the first Data frame instead of a WindowUpdate.
    client = YamuxSession(True)
    sid = client.open_stream()
    events = feed(client, encode_header(DATA, ACK, sid, 2) + b"hi", step)
    assert events == [StreamAcknowledged(sid), DataReceived(sid, b"hi")]


def test_inbound_stream_limit(step: int | None) -> None:
    link = Link(step, max_inbound_streams=2)
    for _ in range(3):
        link.client.open_stream()
    server_events = link.to_server()
    assert server_events == [StreamOpened(1), StreamOpened(3), StreamRejected(5)]
    answer = bytes(link.server.data_to_send())
    assert frames(answer) == [
        (WINDOW_UPDATE, ACK, 1, 0),
        (WINDOW_UPDATE, ACK, 3, 0),
        (WINDOW_UPDATE, RST, 5, 0),
    ]
    assert feed(link.client, answer, step) == [
        StreamAcknowledged(1),
        StreamAcknowledged(3),
        StreamReset(5, remote=True),
    ]
    assert not link.server.stream_is_open(5) and not link.client.stream_is_open(5)

    # Closing a stream both ways frees a slot for the next one.
    link.client.send_eof(1)
    link.server.send_eof(1)
    link.flush()
    assert link.client.open_stream() == 7
    assert link.to_server() == [StreamOpened(7)]


# ---------------------------------------------------------------------------- keepalive


def test_keepalive_pings_after_the_interval_and_times_out() -> None:
    session = YamuxSession(True, keepalive_interval=30.0, keepalive_timeout=15.0)
    assert session.next_timer() is None
    assert session.handle_timer(100.0) == []
    assert session.next_timer() == 130.0
    assert session.bytes_to_send == 0
    assert session.handle_timer(129.9) == []
    assert session.bytes_to_send == 0

    assert session.handle_timer(130.0) == []
    ((ftype, flags, sid, _opaque),) = frames(session.data_to_send())
    assert (ftype, flags, sid) == (PING, SYN, 0)
    assert session.next_timer() == 145.0
    assert session.handle_timer(144.9) == []
    assert session.handle_timer(145.0) == [KeepaliveTimedOut()]


def test_keepalive_does_not_time_out_when_acknowledged() -> None:
    link = Link(None, keepalive_interval=30.0, keepalive_timeout=15.0)
    client = link.client
    client.handle_timer(0.0)
    client.handle_timer(30.0)
    client_events, _ = link.flush()
    assert len(client_events) == 1
    assert isinstance(client_events[0], PingAcknowledged)
    assert client_events[0].sent_at == 30.0
    assert client.next_timer() == 60.0  # the next ping, not a timeout
    assert client.handle_timer(45.0) == []
    assert client.handle_timer(59.9) == []
    assert client.bytes_to_send == 0
    assert client.handle_timer(60.0) == []
    assert [f[:3] for f in frames(client.data_to_send())] == [(PING, SYN, 0)]


def test_keepalive_can_be_disabled() -> None:
    session = YamuxSession(False, keepalive_interval=None)
    assert session.handle_timer(0.0) == []
    assert session.handle_timer(1e9) == []
    assert session.next_timer() is None
    assert session.bytes_to_send == 0


# ---------------------------------------------------------------------------- misuse


def test_local_misuse_raises_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError):
        YamuxSession(True, max_window=INITIAL_WINDOW - 1)
    session = YamuxSession(True)
    with pytest.raises(LocalProtocolError):
        session.send_data(1, b"never opened")
    assert session.bytes_to_send == 0


# ---------------------------------------------------------------------------- bad input


def _header(version: int, ftype: int, flags: int, sid: int, length: int) -> bytes:
    return HEADER.pack(version, ftype, flags, sid, length)


# Fed to a server that has accepted stream 1 from the peer. Each is a protocol error.
BAD_INPUT = {
    "bad version": _header(1, DATA, 0, 1, 0),
    "bad version on ping": _header(255, PING, SYN, 0, 1),
    "unknown type": _header(0, 4, 0, 1, 0),
    "unknown flag bit on data": encode_header(DATA, 0x10, 1, 0),
    "unknown flag bit on window update": encode_header(WINDOW_UPDATE, 0x8000, 1, 0),
    "SYN and ACK together": encode_header(WINDOW_UPDATE, SYN | ACK, 3, 0),
    "data on stream 0": encode_header(DATA, 0, 0, 3) + b"abc",
    "window update on stream 0": encode_header(WINDOW_UPDATE, 0, 0, 10),
    "SYN with our parity": encode_header(WINDOW_UPDATE, SYN, 2, 0),
    "reused stream id": encode_header(WINDOW_UPDATE, SYN, 1, 0),
    "lower stream id after a higher one": (
        encode_header(WINDOW_UPDATE, SYN, 5, 0) + encode_header(WINDOW_UPDATE, SYN, 3, 0)
    ),
    "reopen a reset stream id": (
        encode_header(WINDOW_UPDATE, RST, 1, 0) + encode_header(WINDOW_UPDATE, SYN, 1, 0)
    ),
    "window update for a never-opened stream": encode_header(WINDOW_UPDATE, 0, 9, 100),
    "data for a never-opened stream": encode_header(DATA, 0, 9, 3) + b"abc",
    "frame for a never-opened stream of our parity": encode_header(WINDOW_UPDATE, ACK, 4, 0),
    "window overrun": encode_header(DATA, 0, 1, INITIAL_WINDOW + 1) + bytes(INITIAL_WINDOW + 1),
    "window overrun, header alone": encode_header(DATA, 0, 1, INITIAL_WINDOW + 1),
    "window overrun after the window is used up": (
        encode_header(DATA, 0, 1, INITIAL_WINDOW)
        + bytes(INITIAL_WINDOW)
        + encode_header(DATA, 0, 1, 1)
        + b"x"
    ),
    "window overrun on the SYN frame": (
        encode_header(DATA, SYN, 3, INITIAL_WINDOW + 1) + bytes(INITIAL_WINDOW + 1)
    ),
    "send window overflow": encode_header(WINDOW_UPDATE, 0, 1, 0xFFFFFFFF),
    "ping with a stream id": encode_header(PING, SYN, 1, 7),
    "ping without SYN or ACK": encode_header(PING, 0, 0, 7),
    "ping with SYN and ACK": encode_header(PING, SYN | ACK, 0, 7),
    "go away with a stream id": encode_header(GO_AWAY, 0, 1, 0),
    "go away with flags": encode_header(GO_AWAY, SYN, 0, 0),
}


def server_with_stream_1() -> YamuxSession:
    server = YamuxSession(False)
    assert server.receive_data(encode_header(WINDOW_UPDATE, SYN, 1, 0)) == [StreamOpened(1)]
    server.data_to_send()
    return server


def assert_protocol_error(session: YamuxSession, data: bytes, step: int | None) -> None:
    """``data`` makes ``session`` raise code 1 with exactly one GoAway(1) queued, last."""
    with pytest.raises(RemoteProtocolError) as info:
        feed(session, data, step)
    assert info.value.code == GoAwayCode.PROTOCOL_ERROR == 1
    sent = frames(session.data_to_send())
    assert sent[-1] == GO_AWAY_PROTOCOL_ERROR
    assert sent.count(GO_AWAY_PROTOCOL_ERROR) == 1
    assert session.terminated
    assert session.next_timer() is None
    with pytest.raises(LocalProtocolError):
        session.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        session.open_stream()


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_is_a_protocol_error_with_go_away(step: int | None, name: str) -> None:
    assert_protocol_error(server_with_stream_1(), BAD_INPUT[name], step)


def test_client_refuses_a_syn_with_its_own_parity(step: int | None) -> None:
    assert_protocol_error(YamuxSession(True), encode_header(WINDOW_UPDATE, SYN, 1, 0), step)


@pytest.mark.parametrize(
    "header",
    [
        encode_header(DATA, SYN, 3, 0xFFFFFFFF),  # a new stream: its window is 256 KiB
        encode_header(DATA, 0, 9, 0xFFFFFFFF),  # a stream that was never opened
        encode_header(DATA, 0, 1, 0xFFFFFFFF),  # a stream we reset: more than any window
    ],
    ids=["syn", "never-opened", "reset"],
)
def test_oversized_data_header_is_refused_before_its_payload(
    step: int | None, header: bytes
) -> None:
    server = server_with_stream_1()
    server.reset_stream(1)
    server.data_to_send()
    assert_protocol_error(server, header, step)


def test_a_view_of_wider_items_is_sent_as_its_bytes(step: int | None) -> None:
    link = Link(step)
    sid = link.open()
    words = memoryview(bytes(range(256)) * 320).cast("I")  # 81920 bytes, 20480 items
    strided = memoryview(bytes(range(256)) * 200)[::2]  # 25600 bytes, not contiguous
    assert link.client.send_data(sid, words) == 81920
    assert link.client.send_data(sid, strided) == 25600
    out = bytes(link.client.data_to_send())
    assert link.client.bytes_to_send == 0
    assert received(feed(link.server, out, step), sid) == words.tobytes() + strided.tobytes()


def test_oversized_data_after_the_peers_fin_is_a_protocol_error() -> None:
    server = server_with_stream_1()
    assert server.receive_data(encode_header(WINDOW_UPDATE, FIN, 1, 0)) == [StreamEnded(1)]
    with pytest.raises(RemoteProtocolError):
        server.receive_data(encode_header(DATA, 0, 1, 0xFFFFFFFF))
    assert server.terminated
