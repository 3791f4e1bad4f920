"""A conformance suite for anyio byte streams: run it on any stream you write.

Every stream p2pstack hands out (a Noise or TLS channel, a yamux or QUIC stream, the
in-memory pair) is an :class:`anyio.abc.ByteStream`, and code above it relies on one
contract. These checks state that contract as executable tests:

- data arrives intact and in order, both ways, in any order of send and receive, and in
  bulk both ways at once (a flow-control deadlock shows up as a timeout);
- ``receive(max_bytes)`` returns between 1 and ``max_bytes`` bytes, never ``b""``;
  ``send(b"")`` is allowed and carries nothing; ``send`` accepts any bytes-like object;
- ``send_eof()`` half-closes: the peer reads all our data, then ``anyio.EndOfStream`` (again
  on every later call), while the other direction keeps working;
- after ``aclose()`` (even in a cancelled scope) local ``send``/``receive`` raise
  ``anyio.ClosedResourceError``; ``aclose()`` is idempotent and wakes a task blocked in
  ``receive`` (or ``send``) with ``ClosedResourceError``; the peer reads what we sent, then
  one of :attr:`StreamTraits.peer_close_errors`, and its sends eventually raise
  ``anyio.BrokenResourceError``;
- two concurrent ``receive`` calls (or two concurrent ``send`` calls, where a send can
  block) raise ``anyio.BusyResourceError`` in the second, which has no effect;
- cancelling a ``receive`` loses no data; cancelling a ``send`` may leave a prefix of its
  data sent (as :mod:`p2pstack.muxer.abc` allows) but never corrupts the stream: later
  sends work, or raise ``BrokenResourceError`` if the stream cannot recover.

Usage: give a factory that returns an async context manager yielding a fresh, connected
``(a, b)`` pair and cleaning up after it, plus :class:`StreamTraits` describing what the
stream promises beyond the common contract::

    @asynccontextmanager
    async def make_pair():
        a, b = memory_stream_pair()
        yield a, b

    await check_half_closeable_stream(make_pair)

Each check runs on fresh pairs, in both orientations ``(a, b)`` and ``(b, a)`` where the
direction matters, under ``anyio.fail_after(traits.timeout)``; a failure raises
``AssertionError``. :data:`TWO_WAY_CHECKS` and :data:`HALF_CLOSE_CHECKS` hold the single
checks, for a test suite that wants one test per check (see ``tests/testing``).

Assumptions: a send of a few bytes completes while the peer is not reading (every real
stream buffers that much). Where a check must know that another task is blocked (a second
receive must find the first one waiting), it uses ``anyio.wait_all_tasks_blocked()``; no
check sleeps.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import ByteStream

StreamPair = tuple[ByteStream, ByteStream]
#: Returns an async context manager that yields a fresh connected pair and cleans up after.
PairFactory = Callable[[], AbstractAsyncContextManager[StreamPair]]

_KIB = 1024
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StreamTraits:
    """What the stream under test promises beyond the contract every stream meets.

    ``clog_bytes``: one ``send()`` of this many bytes blocks while the peer reads nothing
    (a little more than the flow-control window or socket buffers); ``None`` when a send
    never blocks. The checks that need a blocked sender are skipped without it.
    ``busy_receive``/``busy_send``: concurrent calls raise ``BusyResourceError`` (every
    stream should say yes; ``busy_send`` is checked only with ``clog_bytes``).
    ``peer_close_errors``: what the peer's ``receive`` raises once we closed and it read
    everything; narrow it to pin down your stream's behaviour.
    ``bulk_bytes``: size of the bulk transfers, each way.
    ``max_bytes_until_broken``: how much a sender may push into a closed peer before its
    ``send`` must raise ``BrokenResourceError``.
    ``timeout``: seconds each check may take before it counts as hung.
    """

    clog_bytes: int | None = None
    busy_receive: bool = True
    busy_send: bool = True
    peer_close_errors: tuple[type[Exception], ...] = (
        anyio.EndOfStream,
        anyio.BrokenResourceError,
    )
    bulk_bytes: int = 4 * _MIB
    max_bytes_until_broken: int = 32 * _MIB
    timeout: float = 10.0


_DirectedBody = Callable[[ByteStream, ByteStream, StreamTraits], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StreamCheck:
    """One named check. ``await check(make_pair, traits)`` runs it (both orientations
    where ``both_ways``) on fresh pairs, under ``anyio.fail_after(traits.timeout)``."""

    name: str
    body: _DirectedBody
    both_ways: bool = True
    needs_half_close: bool = False
    applies: Callable[[StreamTraits], bool] = lambda traits: True

    @property
    def description(self) -> str:
        return (self.body.__doc__ or self.name).strip()

    async def __call__(self, make_pair: PairFactory, traits: StreamTraits | None = None) -> None:
        traits = traits or StreamTraits()
        try:
            with anyio.fail_after(traits.timeout):
                for flipped in (False, True) if self.both_ways else (False,):
                    async with _fresh_pair(make_pair) as (a, b):
                        if flipped:
                            a, b = b, a
                        try:
                            await self.body(a, b, traits)
                        except Exception as exc:
                            failure = _single_failure(exc)
                            order = "swapped (b, a)" if flipped else "as made (a, b)"
                            failure.add_note(f"in check {self.name!r}, streams {order}")
                            if failure is exc:
                                raise
                            raise failure from exc
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: did not finish within {traits.timeout} s (a hang?)"
            ) from None


TWO_WAY_CHECKS: tuple[StreamCheck, ...]
HALF_CLOSE_CHECKS: tuple[StreamCheck, ...]
_two_way: list[StreamCheck] = []
_half_close: list[StreamCheck] = []


async def check_two_way_stream(make_pair: PairFactory, traits: StreamTraits | None = None) -> None:
    """Run every check of :data:`TWO_WAY_CHECKS` that applies to ``traits``."""
    traits = traits or StreamTraits()
    for check in TWO_WAY_CHECKS:
        if check.applies(traits):
            await check(make_pair, traits)


async def check_half_closeable_stream(
    make_pair: PairFactory, traits: StreamTraits | None = None
) -> None:
    """Run the two-way checks, then those of :data:`HALF_CLOSE_CHECKS` (``send_eof``)."""
    traits = traits or StreamTraits()
    await check_two_way_stream(make_pair, traits)
    for check in HALF_CLOSE_CHECKS:
        if check.applies(traits):
            await check(make_pair, traits)


def _check(
    *,
    both_ways: bool = True,
    half_close: bool = False,
    applies: Callable[[StreamTraits], bool] = lambda traits: True,
) -> Callable[[_DirectedBody], _DirectedBody]:
    def register(body: _DirectedBody) -> _DirectedBody:
        check = StreamCheck(body.__name__.lstrip("_"), body, both_ways, half_close, applies)
        (_half_close if half_close else _two_way).append(check)
        return body

    return register


# ---------------------------------------------------------------------------- helpers


@asynccontextmanager
async def _fresh_pair(make_pair: PairFactory) -> AsyncIterator[StreamPair]:
    async with make_pair() as (a, b):
        try:
            yield a, b
        finally:
            try:
                await anyio.aclose_forcefully(a)
            finally:
                await anyio.aclose_forcefully(b)


def _single_failure(exc: Exception) -> Exception:
    """The one error inside (nested) exception groups, since task groups wrap even a single
    one; ``exc`` itself when it is not such a group."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextmanager
def _raises(what: str, *expected: type[BaseException]) -> Iterator[None]:
    """Expect one of ``expected`` from the block; anything else fails with ``what``."""
    names = " or ".join(t.__name__ for t in expected)
    try:
        yield
    except expected:
        return
    except Exception as exc:
        raise AssertionError(f"{what}: expected {names}, got {exc!r}") from exc
    raise AssertionError(f"{what}: expected {names}, but it returned normally")


async def _send_any(stream: ByteStream, data: bytes | bytearray | memoryview) -> None:
    # anyio types send() as taking bytes; p2pstack's own layers pass bytearray and
    # memoryview (yamux frames, Noise messages), so every stream must accept them.
    await stream.send(data)  # type: ignore[arg-type]


def _check_chunk(chunk: object, max_bytes: int) -> bytes:
    if not isinstance(chunk, bytes | bytearray):
        raise AssertionError(f"receive() returned {type(chunk).__name__}, not bytes")
    if not chunk:
        raise AssertionError("receive() returned b'' (end of stream must raise EndOfStream)")
    if len(chunk) > max_bytes:
        raise AssertionError(f"receive({max_bytes}) returned {len(chunk)} bytes")
    return bytes(chunk)


async def _receive_exactly(
    stream: ByteStream, n: int, max_bytes: int | Callable[[], int] = 65536
) -> bytes:
    """Receive exactly ``n`` bytes (never asking for more than remain)."""
    got = bytearray()
    while len(got) < n:
        limit = max_bytes() if callable(max_bytes) else max_bytes
        limit = min(limit, n - len(got))
        try:
            chunk = await stream.receive(limit)
        except anyio.EndOfStream:
            raise AssertionError(f"EndOfStream after {len(got)} of {n} expected bytes") from None
        got += _check_chunk(chunk, limit)
    return bytes(got)


async def _receive_until_eof(
    stream: ByteStream, max_bytes: int | Callable[[], int] = 65536
) -> bytes:
    got = bytearray()
    while True:
        limit = max_bytes() if callable(max_bytes) else max_bytes
        try:
            chunk = await stream.receive(limit)
        except anyio.EndOfStream:
            return bytes(got)
        got += _check_chunk(chunk, limit)


def _expect_equal(what: str, got: bytes, expected: bytes) -> None:
    if got == expected:
        return
    at = next((i for i, (x, y) in enumerate(zip(got, expected, strict=False)) if x != y), None)
    if at is None:
        at = min(len(got), len(expected))
    raise AssertionError(
        f"{what}: received {len(got)} bytes, expected {len(expected)}; first difference at "
        f"offset {at}: got {got[at : at + 8]!r}, expected {expected[at : at + 8]!r}"
    )


async def _transfer(
    sender: ByteStream,
    receiver: ByteStream,
    data: bytes | bytearray | memoryview,
    *,
    receiver_first: bool,
) -> None:
    """Send ``data`` and receive it, with the receiver (or the sender) waiting first."""
    expected = bytes(data)
    got: list[bytes] = []

    async def receive() -> None:
        got.append(await _receive_exactly(receiver, len(expected)))

    async with anyio.create_task_group() as tg:
        if receiver_first:
            tg.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            await _send_any(sender, data)
        else:
            tg.start_soon(_send_any, sender, data)
            await anyio.wait_all_tasks_blocked()
            await receive()
    _expect_equal("transfer", got[0], expected)


async def _send_in_chunks(stream: ByteStream, data: bytes, rng: random.Random) -> None:
    view = memoryview(data)
    while view:
        size = _random_size(rng)
        await _send_any(stream, view[:size])
        view = view[size:]


def _random_size(rng: random.Random) -> int:
    """Tiny, medium and large sizes in equal measure (large exceeds yamux's first window)."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randint(1, 1 * _KIB)
    if kind == 1:
        return rng.randint(1, 64 * _KIB)
    return rng.randint(64 * _KIB, 1 * _MIB)


async def _outcome_without_blocking(
    what: str, call: Callable[[], Awaitable[object]]
) -> Exception | None:
    """Run ``call`` in a task until every task is blocked; return what it raised (None if
    it returned). Fail if it is still blocked: it should have finished at once."""
    outcome: list[Exception | None] = []

    async def run() -> None:
        try:
            await call()
        except Exception as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    if not outcome:
        raise AssertionError(f"{what} blocked; it should have raised at once")
    return outcome[0]


class _Flag:
    """Set when an awaited call has finished."""

    def __init__(self) -> None:
        self.done = False

    async def run(self, call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        finally:
            self.done = True


async def _start_blocked_send(
    tg: anyio.abc.TaskGroup, stream: ByteStream, data: bytes, traits: StreamTraits
) -> _Flag:
    """Start sending ``data`` (clog_bytes long) in ``tg`` and check that it blocks."""
    flag = _Flag()
    tg.start_soon(flag.run, lambda: _send_any(stream, data))
    await anyio.wait_all_tasks_blocked()
    if flag.done:
        raise AssertionError(f"a send of clog_bytes={traits.clog_bytes} did not block; raise it")
    return flag


# ---------------------------------------------------------------------------- data


@_check()
async def _exchange_small(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """A few bytes each way with the receiver waiting first, then with the sender first;
    send() accepts bytes, bytearray and memoryview."""
    await _transfer(a, b, b"x", receiver_first=True)
    await _transfer(b, a, b"y", receiver_first=True)
    await _transfer(a, b, b"hello", receiver_first=False)
    await _transfer(b, a, b"world", receiver_first=False)
    await _transfer(a, b, bytearray(b"bytearray"), receiver_first=False)
    await _transfer(a, b, memoryview(b"..memoryview..")[2:-2], receiver_first=True)


@_check()
async def _receive_max_bytes(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """receive(max_bytes) returns 1..max_bytes bytes; the rest stays for the next call;
    receive() with no argument returns at most 65536 bytes."""
    data = bytes(range(10))
    await _send_any(a, data)
    got = bytearray(_check_chunk(await b.receive(1), 1))
    got += _check_chunk(await b.receive(3), 3)
    got += await _receive_exactly(b, len(data) - len(got), 4)
    _expect_equal("receive(1), receive(3), then receive(4)", bytes(got), data)

    big = random.Random(7).randbytes(200_000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_send_any, a, big)
        received = bytearray()
        while len(received) < len(big):
            received += _check_chunk(await b.receive(), 65536)
    _expect_equal("200 kB received with receive()", bytes(received), big)


@_check()
async def _empty_send(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """send(b"") is allowed and carries nothing: a waiting receiver stays blocked (it never
    returns b"") and gets the next real data."""
    got: list[bytes] = []

    async def receive() -> None:
        got.append(_check_chunk(await b.receive(10), 10))

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        await a.send(b"")
        await anyio.wait_all_tasks_blocked()
        await a.send(b"z")
    _expect_equal("after send(b'') and send(b'z')", got[0], b"z")
    await a.send(b"")
    await _transfer(a, b, b"after", receiver_first=False)


@_check(both_ways=False)
async def _bulk_both_ways(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """bulk_bytes each way at once, sent and received in random sizes from 1 byte to
    1 MiB; a flow-control deadlock shows up as a timeout."""
    size = traits.bulk_bytes
    a_to_b = random.Random(1).randbytes(size)
    b_to_a = random.Random(2).randbytes(size)
    got: dict[str, bytes] = {}

    async def receive(stream: ByteStream, key: str, seed: int) -> None:
        rng = random.Random(seed)
        got[key] = await _receive_exactly(stream, size, lambda: _random_size(rng))

    async with anyio.create_task_group() as tg:
        tg.start_soon(_send_in_chunks, a, a_to_b, random.Random(3))
        tg.start_soon(_send_in_chunks, b, b_to_a, random.Random(4))
        tg.start_soon(receive, b, "a_to_b", 5)
        tg.start_soon(receive, a, "b_to_a", 6)
    _expect_equal("bulk a -> b", got["a_to_b"], a_to_b)
    _expect_equal("bulk b -> a", got["b_to_a"], b_to_a)


@_check(both_ways=False)
async def _bulk_single_send_both_ways(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """One send() of bulk_bytes each way at once, the receivers starting only after both
    senders are blocked (or done): send must wait for credit, not fail or deadlock."""
    size = traits.bulk_bytes
    a_to_b = random.Random(11).randbytes(size)
    b_to_a = random.Random(12).randbytes(size)
    got: dict[str, bytes] = {}

    async def receive(stream: ByteStream, key: str) -> None:
        got[key] = await _receive_exactly(stream, size)

    async with anyio.create_task_group() as tg:
        tg.start_soon(_send_any, a, a_to_b)
        tg.start_soon(_send_any, b, b_to_a)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(receive, b, "a_to_b")
        tg.start_soon(receive, a, "b_to_a")
    _expect_equal("bulk a -> b", got["a_to_b"], a_to_b)
    _expect_equal("bulk b -> a", got["b_to_a"], b_to_a)


# ---------------------------------------------------------------------------- busy


@_check(applies=lambda traits: traits.busy_receive)
async def _busy_receive(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """A receive() while another task waits in receive() raises BusyResourceError at
    once; the waiting one then gets the data."""
    got: list[bytes] = []

    async def receive() -> None:
        got.append(await _receive_exactly(b, 1))

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        outcome = await _outcome_without_blocking("a second concurrent receive()", b.receive)
        if not isinstance(outcome, anyio.BusyResourceError):
            raise AssertionError(
                f"a second concurrent receive(): expected BusyResourceError, got {outcome!r}"
            )
        await a.send(b"!")
    _expect_equal("the first receiver", got[0], b"!")


@_check(applies=lambda traits: traits.busy_send and traits.clog_bytes is not None)
async def _busy_send(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """A send() while another task is blocked in send() raises BusyResourceError at once
    and sends nothing; the blocked send completes and the stream goes on working."""
    assert traits.clog_bytes is not None
    data = random.Random(21).randbytes(traits.clog_bytes)
    async with anyio.create_task_group() as tg:
        await _start_blocked_send(tg, a, data, traits)
        outcome = await _outcome_without_blocking(
            "a second concurrent send()", lambda: a.send(b"!")
        )
        if not isinstance(outcome, anyio.BusyResourceError):
            raise AssertionError(
                f"a second concurrent send(): expected BusyResourceError, got {outcome!r}"
            )
        got = await _receive_exactly(b, len(data))
    _expect_equal("the blocked send", got, data)
    await _transfer(a, b, b"end", receiver_first=False)


# ---------------------------------------------------------------------------- cancellation


@_check()
async def _cancelled_receive_loses_nothing(
    a: ByteStream, b: ByteStream, traits: StreamTraits
) -> None:
    """Cancelling a waiting receive() loses no data: neither data sent after the cancel nor
    data that arrives just as the receive is cancelled."""
    expected = bytearray()
    received = bytearray()
    for i in range(8):
        payload = bytes([65 + i]) * (i + 1)
        expected += payload
        scope = anyio.CancelScope()

        async def receive_once(scope: anyio.CancelScope = scope) -> None:
            with scope:
                received.extend(_check_chunk(await b.receive(), 65536))

        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_once)
            await anyio.wait_all_tasks_blocked()
            if i % 2:
                scope.cancel()
                await a.send(payload)
            else:  # the data and the cancellation reach the receiver together
                await a.send(payload)
                scope.cancel()
    # A marker, not a byte count, ends the reading: lost data must fail, not hang.
    marker = b"<end>"
    expected += marker
    await a.send(marker)
    while not received.endswith(marker):
        received += _check_chunk(await b.receive(), 65536)
    _expect_equal("data around cancelled receives", bytes(received), bytes(expected))


@_check()
async def _cancelled_send_keeps_stream_usable(
    a: ByteStream, b: ByteStream, traits: StreamTraits
) -> None:
    """A send() in an already cancelled scope leaves the stream usable: the peer then reads
    a prefix of its data (normally none) followed by what later sends carry."""
    cancelled = b"cancelled"
    with anyio.CancelScope() as scope:
        scope.cancel()
        await a.send(cancelled)
    await a.send(b"after")
    got = bytearray()
    while not got.endswith(b"after"):
        got += _check_chunk(await b.receive(), 65536)
    if not cancelled.startswith(bytes(got[: -len(b"after")])):
        raise AssertionError(
            f"after a cancelled send(b'cancelled') and send(b'after') the peer read {got!r}"
        )


@_check(applies=lambda traits: traits.clog_bytes is not None)
async def _send_cancelled_while_blocked(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """A send() cancelled while blocked may have sent a prefix of its data; after it, a send
    either works (the peer reads that prefix, then the new data) or raises
    BrokenResourceError. Both streams still close cleanly."""
    assert traits.clog_bytes is not None
    data = random.Random(31).randbytes(traits.clog_bytes)
    async with anyio.create_task_group() as tg:
        await _start_blocked_send(tg, a, data, traits)
        tg.cancel_scope.cancel()
    marker = b"<after the cancelled send>"
    got = bytearray()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_send_any, a, marker)
            while not got.endswith(marker) and len(got) <= len(data) + len(marker):
                got += _check_chunk(await b.receive(), 65536)
    except* anyio.BrokenResourceError:
        pass  # the stream declared itself broken: allowed
    else:
        prefix = bytes(got[: -len(marker)])
        if not got.endswith(marker) or not data.startswith(prefix):
            raise AssertionError(
                f"after a cancelled send the peer read {len(got)} bytes that are not a prefix of "
                "the cancelled data followed by the next send's data"
            )
    await a.aclose()
    await b.aclose()


# ---------------------------------------------------------------------------- closing


@_check()
async def _use_after_close(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """After aclose(): send (even of b""), receive raise ClosedResourceError; aclose again
    is fine."""
    await a.aclose()
    with _raises("send() after aclose()", anyio.ClosedResourceError):
        await a.send(b"x")
    with _raises('send(b"") after aclose()', anyio.ClosedResourceError):
        await a.send(b"")
    with _raises("receive() after aclose()", anyio.ClosedResourceError):
        await a.receive()
    await a.aclose()
    await a.aclose()


@_check()
async def _close_in_cancelled_scope(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """aclose() in a cancelled scope still closes the stream."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await a.aclose()
    with _raises("send() after a cancelled aclose()", anyio.ClosedResourceError):
        await a.send(b"x")
    with _raises("receive() after a cancelled aclose()", anyio.ClosedResourceError):
        await a.receive()


@_check(both_ways=False)
async def _close_both_at_once(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """Both ends closing at the same time is fine."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.aclose)
        tg.start_soon(b.aclose)
    for stream in (a, b):
        with _raises("receive() after aclose()", anyio.ClosedResourceError):
            await stream.receive()


@_check()
async def _close_wakes_receiver(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """aclose() wakes a task blocked in receive() on the same stream with
    ClosedResourceError."""

    async def receive() -> None:
        with _raises("a receive() blocked while its stream was closed", anyio.ClosedResourceError):
            await a.receive()

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        await a.aclose()


@_check(applies=lambda traits: traits.clog_bytes is not None)
async def _close_wakes_sender(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """aclose() wakes a task blocked in send() on the same stream with ClosedResourceError."""
    assert traits.clog_bytes is not None
    data = random.Random(41).randbytes(traits.clog_bytes)

    async def send() -> None:
        with _raises("a send() blocked while its stream was closed", anyio.ClosedResourceError):
            await _send_any(a, data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        await anyio.wait_all_tasks_blocked()
        await a.aclose()


@_check()
async def _close_delivers_data(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """Data sent before aclose() reaches the peer, which then reads the end of the stream
    (one of traits.peer_close_errors)."""

    async def send_then_close() -> None:
        await a.send(b"last words")
        await a.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(send_then_close)
        await anyio.wait_all_tasks_blocked()
        got = await _receive_exactly(b, len(b"last words"))
    _expect_equal("data sent before aclose()", got, b"last words")
    with _raises("receive() after the peer closed", *traits.peer_close_errors):
        await b.receive()


@_check()
async def _peer_close_wakes_receiver(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """A task blocked in receive() wakes when the peer closes (one of
    traits.peer_close_errors)."""

    async def receive() -> None:
        with _raises("a receive() blocked while the peer closed", *traits.peer_close_errors):
            await b.receive()

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        await a.aclose()


@_check()
async def _send_to_closed_peer_breaks(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """Sending to a peer that closed raises BrokenResourceError within
    max_bytes_until_broken bytes, and keeps raising it."""
    await b.aclose()
    chunk = bytes(64 * _KIB)
    sent = 0
    with _raises(
        f"sending {traits.max_bytes_until_broken} bytes to a closed peer", anyio.BrokenResourceError
    ):
        while sent < traits.max_bytes_until_broken:
            await a.send(chunk)
            sent += len(chunk)
    with _raises("send() once the stream is broken", anyio.BrokenResourceError):
        await a.send(chunk)


# ---------------------------------------------------------------------------- half-close


@_check(half_close=True)
async def _eof_after_data(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """send_eof(): the peer reads our data, then EndOfStream on every call; our send()
    raises ClosedResourceError, send_eof() again is fine, and the other direction still
    carries data (1 MiB, so flow control must keep working) and its own EOF."""

    async def send_then_eof(stream: ByteStream, data: bytes) -> None:
        await _send_any(stream, data)
        await stream.send_eof()

    async with anyio.create_task_group() as tg:
        tg.start_soon(send_then_eof, a, b"x")
        await anyio.wait_all_tasks_blocked()
        got = await _receive_exactly(b, 1)
    _expect_equal("data before send_eof()", got, b"x")
    for attempt in ("first", "second"):
        with _raises(f"{attempt} receive() after the peer's send_eof()", anyio.EndOfStream):
            await b.receive()
    with _raises("send() after send_eof()", anyio.ClosedResourceError):
        await a.send(b"y")
    await a.send_eof()

    back = random.Random(51).randbytes(_MIB)
    async with anyio.create_task_group() as tg:
        tg.start_soon(send_then_eof, b, back)
        got = await _receive_until_eof(a)
    _expect_equal("data sent back after our send_eof()", got, back)
    with _raises("receive() after EndOfStream", anyio.EndOfStream):
        await a.receive()


@_check(half_close=True)
async def _eof_wakes_receiver(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """A task blocked in receive() wakes with EndOfStream when the peer calls send_eof()."""

    async def receive() -> None:
        with _raises("a receive() blocked while the peer sent EOF", anyio.EndOfStream):
            await b.receive()

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        await a.send_eof()
    await _transfer(b, a, b"still open", receiver_first=True)


@_check(half_close=True, both_ways=False)
async def _bulk_both_ways_then_eof(a: ByteStream, b: ByteStream, traits: StreamTraits) -> None:
    """bulk_bytes each way at once, each followed by send_eof(); each side reads until
    EndOfStream and gets exactly what was sent; then both close cleanly."""
    size = traits.bulk_bytes
    a_to_b = random.Random(61).randbytes(size)
    b_to_a = random.Random(62).randbytes(size)
    got: dict[str, bytes] = {}

    async def send(stream: ByteStream, data: bytes, seed: int) -> None:
        await _send_in_chunks(stream, data, random.Random(seed))
        await stream.send_eof()

    async def receive(stream: ByteStream, key: str, seed: int) -> None:
        rng = random.Random(seed)
        got[key] = await _receive_until_eof(stream, lambda: _random_size(rng))

    async with anyio.create_task_group() as tg:
        tg.start_soon(send, a, a_to_b, 63)
        tg.start_soon(send, b, b_to_a, 64)
        tg.start_soon(receive, b, "a_to_b", 65)
        tg.start_soon(receive, a, "b_to_a", 66)
    _expect_equal("bulk a -> b before EOF", got["a_to_b"], a_to_b)
    _expect_equal("bulk b -> a before EOF", got["b_to_a"], b_to_a)
    await a.aclose()
    await b.aclose()


TWO_WAY_CHECKS = tuple(_two_way)
HALF_CLOSE_CHECKS = tuple(_half_close)
