"""The few scheduler primitives of the data path, resolved once for the running backend.

anyio finds the running backend on every call (a sniffio lookup and a class-method hop),
and an ``anyio.Event`` is three objects deep on trio. A connection's data path makes
several such calls per message, so a connection or stream resolves them once, with
:func:`current`, and keeps the result. Each behaves as its anyio namesake does; on a
backend other than trio they *are* the anyio functions.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    import asyncio

__all__ = ["Cancellable", "Lowlevel", "Parker", "TaskSpawner", "current"]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class TaskSpawner(Protocol):
    """What :attr:`Lowlevel.open_task_group` yields: an ``anyio`` task group, or on trio a
    trio nursery (whose ``start_soon`` costs a quarter of anyio's: anyio 4.16 wraps each
    task in a handle with its own cancel scope and event). Both run their children to
    the end of the ``async with`` and raise their errors as an ``ExceptionGroup``."""

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> object: ...

    async def start(self, func: Callable[..., Awaitable[Any]], *args: Any) -> Any: ...

    @property
    def cancel_scope(self) -> Cancellable: ...


class Parker:
    """One task waits here until another wakes it (a stream's reader, a writer task).

    :meth:`park` blocks until :meth:`unpark`; it is a cancel point, and a cancelled
    ``park()`` raises and leaves the parker empty. :meth:`unpark` wakes the parked task,
    and does nothing when no task is parked: a wake-up is not remembered, so a task checks
    its condition, then parks, with no ``await`` in between (the pattern
    ``anyio.Event`` was used for here). At most one task parks at a time.
    """

    __slots__ = ()

    async def park(self) -> None:
        raise NotImplementedError

    def unpark(self) -> None:
        raise NotImplementedError


class _AsyncioParker(Parker):
    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    async def park(self) -> None:
        # asyncio runs us, so it is imported; a trio program never imports it for us.
        loop = sys.modules["asyncio"].get_running_loop()
        future = self._future = loop.create_future()
        try:
            await future
        finally:
            if self._future is future:
                self._future = None

    def unpark(self) -> None:
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_result(None)


class _EventParker(Parker):
    """For objects made outside a running event loop: an ``anyio.Event`` per wait."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    async def park(self) -> None:
        event = self._event = anyio.Event()
        try:
            await event.wait()
        finally:
            if self._event is event:
                self._event = None

    def unpark(self) -> None:
        event = self._event
        if event is not None:
            self._event = None
            event.set()


class Lowlevel:
    """The resolved primitives: ``parker()`` makes a :class:`Parker`;
    ``open_task_group()`` is ``anyio.create_task_group()`` or its trio equivalent (see
    :class:`TaskSpawner`); the others are ``anyio.lowlevel.checkpoint``,
    ``anyio.lowlevel.checkpoint_if_cancelled``, ``anyio.lowlevel.cancel_shielded_checkpoint``,
    ``anyio.wait_readable`` and ``anyio.wait_writable``."""

    __slots__ = (
        "cancel_shielded_checkpoint",
        "checkpoint",
        "checkpoint_if_cancelled",
        "open_task_group",
        "parker",
        "wait_readable",
        "wait_writable",
    )

    def __init__(
        self,
        parker: Callable[[], Parker],
        checkpoint_if_cancelled: Callable[[], Awaitable[None]],
        cancel_shielded_checkpoint: Callable[[], Awaitable[None]],
        wait_readable: Callable[[Any], Awaitable[None]],
        wait_writable: Callable[[Any], Awaitable[None]],
        open_task_group: Callable[[], AbstractAsyncContextManager[TaskSpawner]],
        checkpoint: Callable[[], Awaitable[None]],
    ) -> None:
        self.parker = parker
        self.open_task_group = open_task_group
        self.checkpoint = checkpoint
        self.checkpoint_if_cancelled = checkpoint_if_cancelled
        self.cancel_shielded_checkpoint = cancel_shielded_checkpoint
        self.wait_readable = wait_readable
        self.wait_writable = wait_writable


async def _anyio_wait_readable(obj: Any) -> None:
    await anyio.wait_readable(obj)  # looked up on use: anyio loads its socket code lazily


async def _anyio_wait_writable(obj: Any) -> None:
    await anyio.wait_writable(obj)


_ANYIO = Lowlevel(
    _EventParker,
    anyio.lowlevel.checkpoint_if_cancelled,
    anyio.lowlevel.cancel_shielded_checkpoint,
    _anyio_wait_readable,
    _anyio_wait_writable,
    cast("Callable[[], AbstractAsyncContextManager[TaskSpawner]]", anyio.create_task_group),
    anyio.lowlevel.checkpoint,
)
_ASYNCIO = Lowlevel(
    _AsyncioParker,
    anyio.lowlevel.checkpoint_if_cancelled,
    anyio.lowlevel.cancel_shielded_checkpoint,
    _anyio_wait_readable,
    _anyio_wait_writable,
    cast("Callable[[], AbstractAsyncContextManager[TaskSpawner]]", anyio.create_task_group),
    anyio.lowlevel.checkpoint,
)
_TRIO: Lowlevel | None = None


def _make_trio() -> Lowlevel:
    import trio
    import trio.lowlevel as trio_lowlevel

    abort_succeeded = trio_lowlevel.Abort.SUCCEEDED
    current_task = trio_lowlevel.current_task
    wait_task_rescheduled = trio_lowlevel.wait_task_rescheduled
    reschedule = trio_lowlevel.reschedule

    class TrioParker(Parker):
        __slots__ = ("_task",)

        def __init__(self) -> None:
            self._task: Any = None

        async def park(self) -> None:
            self._task = current_task()

            def abort(_: Any) -> Any:
                self._task = None
                return abort_succeeded

            await wait_task_rescheduled(abort)

        def unpark(self) -> None:
            task = self._task
            if task is not None:
                self._task = None
                reschedule(task)

    async def wait_readable(obj: Any) -> None:
        try:
            await trio_lowlevel.wait_readable(obj)
        except trio.ClosedResourceError as exc:
            raise anyio.ClosedResourceError().with_traceback(exc.__traceback__) from None
        except trio.BusyResourceError:
            raise anyio.BusyResourceError("reading from") from None

    async def wait_writable(obj: Any) -> None:
        try:
            await trio_lowlevel.wait_writable(obj)
        except trio.ClosedResourceError as exc:
            raise anyio.ClosedResourceError().with_traceback(exc.__traceback__) from None
        except trio.BusyResourceError:
            raise anyio.BusyResourceError("writing to") from None

    return Lowlevel(
        TrioParker,
        trio_lowlevel.checkpoint_if_cancelled,
        trio_lowlevel.cancel_shielded_checkpoint,
        wait_readable,
        wait_writable,
        trio.open_nursery,
        trio_lowlevel.checkpoint,
    )


def current() -> Lowlevel:
    """The primitives for the backend running this task. Outside any event loop, they are
    anyio's own (they find the backend on each call) and the parker uses ``anyio.Event``."""
    global _TRIO
    trio = sys.modules.get("trio")  # when trio runs us, it was imported to do so
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            if _TRIO is None:
                _TRIO = _make_trio()
            return _TRIO
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return _ANYIO
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _ANYIO
    return _ASYNCIO
