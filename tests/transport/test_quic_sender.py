"""p2pstack.transport.quic.sender: ChunkedStreamSender against aioquic's own sender.

The chunked sender must behave exactly like aioquic's ``QuicStreamSender`` (same frames,
same state after every call, whatever is written, asked for, acknowledged or lost), while
holding the writers' ``bytes`` by reference, copying what may change, and letting go of
what the peer acknowledged.
"""

from __future__ import annotations

import random

import pytest
from aioquic.quic.packet import QuicStreamFrame
from aioquic.quic.packet_builder import QuicDeliveryState
from aioquic.quic.stream import QuicStreamSender

from p2pstack.transport.quic.sender import ChunkedStreamSender


def chunked() -> ChunkedStreamSender:
    sender = QuicStreamSender(stream_id=0, writable=True)
    ChunkedStreamSender.adopt(sender)
    assert isinstance(sender, ChunkedStreamSender)
    return sender


def state(sender: QuicStreamSender) -> tuple[object, ...]:
    return (
        sender.buffer_is_empty,
        sender.highest_offset,
        sender.is_finished,
        sender.reset_pending,
        sender.next_offset,
        sender._buffer_start,
        sender._buffer_stop,
        sender._buffer_fin,
    )


def frame_key(frame: QuicStreamFrame | None) -> tuple[int, bytes, bool] | None:
    return None if frame is None else (frame.offset, bytes(frame.data), frame.fin)


def deliver(sender: QuicStreamSender, frame: QuicStreamFrame, acked: bool) -> None:
    delivery = QuicDeliveryState.ACKED if acked else QuicDeliveryState.LOST
    sender.on_data_delivery(delivery, frame.offset, frame.offset + len(frame.data), frame.fin)


@pytest.mark.parametrize("seed", range(60))
def test_same_frames_and_state_as_aioquics_sender(seed: int) -> None:
    """Random writes (bytes, bytearrays changed right after, views of bytes), frames of
    random sizes and flow-control limits, acknowledgements and losses in any order, FIN,
    sometimes a reset: both senders give the same frames and end each step in the same
    state."""
    rng = random.Random(seed)
    theirs = QuicStreamSender(stream_id=0, writable=True)
    ours = chunked()
    outstanding: list[QuicStreamFrame] = []
    written = 0
    ended = reset = False
    for _ in range(400):
        op = rng.random()
        if op < 0.25 and not ended and not reset:
            data = rng.randbytes(rng.choice([0, 1, 7, 300, 1500, 5000]))
            kind = rng.choice(["bytes", "bytearray", "view"])
            end = rng.random() < 0.03
            if kind == "bytearray":
                mutable = bytearray(data)
                ours.write(mutable, end_stream=end)
                mutable[:] = bytes(len(mutable))  # the caller reuses its buffer at once
            elif kind == "view":
                whole = rng.randbytes(7) + data + rng.randbytes(5)
                ours.write(memoryview(whole)[7 : 7 + len(data)], end_stream=end)  # type: ignore[arg-type]
            else:
                ours.write(data, end_stream=end)
            theirs.write(data, end_stream=end)
            written += len(data)
            ended = end
        elif op < 0.65 and not reset:
            max_size = rng.choice([-1, 0, 1, 100, 1200, 4000, 20000])
            max_offset = rng.choice([None, written, written // 2, theirs.highest_offset + 50])
            mine, expected = (
                ours.get_frame(max_size, max_offset),
                theirs.get_frame(max_size, max_offset),
            )
            assert frame_key(mine) == frame_key(expected)
            if mine is not None:
                assert expected is not None
                outstanding.append(expected)
        elif op < 0.97 and outstanding:
            frame = outstanding.pop(rng.randrange(len(outstanding)))
            acked = rng.random() < 0.8
            deliver(ours, frame, acked)
            deliver(theirs, frame, acked)
        elif op >= 0.97 and not reset and rng.random() < 0.2:
            ours.reset(3)
            theirs.reset(3)
            reset = True
            assert not any(len(chunk) for chunk in ours._chunks)  # nothing held any more
        assert state(ours) == state(theirs)


def test_bytes_are_held_by_reference_and_mutable_buffers_copied() -> None:
    sender = chunked()
    payload = bytes(range(256)) * 64
    mutable = bytearray(b"x" * 1000)
    sender.write(payload)
    sender.write(memoryview(payload)[10:20])  # type: ignore[arg-type]
    sender.write(mutable)  # type: ignore[arg-type]
    mutable[:] = b"y" * 1000
    assert sender._chunks[0].obj is payload
    assert sender._chunks[1].obj is payload
    assert sender._chunks[2].obj is not mutable
    frame = sender.get_frame(100_000)
    assert frame is not None
    assert frame.data == payload + payload[10:20] + b"x" * 1000  # joined across chunks


def test_wide_item_views_are_written_as_their_bytes() -> None:
    sender = chunked()
    items = memoryview(bytes(range(16))).cast("I")  # 4 items of 4 bytes
    sender.write(items)  # type: ignore[arg-type]
    assert sender._buffer_stop == 16
    frame = sender.get_frame(100)
    assert frame is not None and frame.data == bytes(range(16))


def test_acknowledged_chunks_are_released_in_order() -> None:
    """A chunk goes once everything up to its end is acknowledged, not before (a gap
    holds it), and released slots are compacted away."""
    sender = chunked()
    for i in range(100):
        sender.write(bytes([i]) * 100)
    frames = []
    while (frame := sender.get_frame(150)) is not None:
        frames.append(frame)
    deliver(sender, frames[1], acked=True)  # bytes 150..300: chunk 0 still waits
    assert sender._head == 0 and sender._buffer_start == 0
    deliver(sender, frames[0], acked=True)  # 0..150 too: chunks 0..2 are done
    assert sender._buffer_start == 300 and sender._head == 3
    for frame in frames[2:]:
        deliver(sender, frame, acked=True)
    assert sender._buffer_start == sender._buffer_stop == 10_000
    assert len(sender._chunks) < 32 + 1  # compacted as it went
    assert all(len(chunk) == 0 for chunk in sender._chunks[: sender._head])


def test_lost_data_is_sent_again_from_the_held_chunks() -> None:
    sender = chunked()
    first, second = b"a" * 700, b"b" * 700
    sender.write(first)
    sender.write(second, end_stream=True)
    one = sender.get_frame(1000)
    two = sender.get_frame(1000)
    assert one is not None and two is not None and two.fin
    deliver(sender, one, acked=False)
    again = sender.get_frame(2000)
    assert again is not None and again.offset == 0 and again.data == first + second[:300]
    deliver(sender, two, acked=True)
    deliver(sender, again, acked=True)
    assert sender.is_finished


def test_reset_lets_the_data_go() -> None:
    sender = chunked()
    sender.write(b"z" * 5000)
    frame = sender.get_frame(1000)
    assert frame is not None
    sender.reset(0)
    assert sender._chunks == [] and sender.reset_pending
    deliver(sender, frame, acked=True)  # ignored after a reset, as aioquic does
    assert sender._buffer_start == 0


def test_only_fresh_aioquic_senders_are_adopted() -> None:
    used = QuicStreamSender(stream_id=0, writable=True)
    used.write(b"already")
    ChunkedStreamSender.adopt(used)
    assert type(used) is QuicStreamSender
    adopted = chunked()
    ChunkedStreamSender.adopt(adopted)  # a second time changes nothing
    assert type(adopted) is ChunkedStreamSender


def test_fin_alone_and_writes_after_it() -> None:
    """A FIN written after all data went out travels alone (again, when lost); nothing
    can be written after it."""
    sender = chunked()
    sender.write(b"data")
    data = sender.get_frame(100)
    sender.write(b"", end_stream=True)
    fin = sender.get_frame(100)
    assert data is not None and fin is not None
    assert (fin.offset, fin.data, fin.fin) == (4, b"", True)
    deliver(sender, fin, acked=False)
    again = sender.get_frame(100)
    assert again is not None and (again.offset, again.data, again.fin) == (4, b"", True)
    with pytest.raises(RuntimeError):
        sender.write(b"more")
    deliver(sender, data, acked=True)
    deliver(sender, again, acked=True)
    assert sender.is_finished
