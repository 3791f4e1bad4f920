"""p2pstack.lowlevel: the parker and the resolved primitives behave as anyio's do."""

from __future__ import annotations

import socket

import anyio
import pytest

from p2pstack import lowlevel

pytestmark = pytest.mark.anyio


async def test_unpark_wakes_the_parked_task() -> None:
    parker = lowlevel.current().parker()
    woken: list[str] = []

    async def sleeper() -> None:
        await parker.park()
        woken.append("sleeper")

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        parker.unpark()
        parker.unpark()  # a second wake-up before it ran is a no-op
    assert woken == ["sleeper"]


async def test_a_wakeup_with_nobody_parked_is_not_remembered() -> None:
    parker = lowlevel.current().parker()
    parker.unpark()
    with anyio.move_on_after(0.05) as scope:
        await parker.park()
    assert scope.cancelled_caught


async def test_a_cancelled_park_leaves_the_parker_empty() -> None:
    parker = lowlevel.current().parker()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await parker.park()
    parker.unpark()  # nothing parked: must not touch the cancelled task
    # The parker is reusable afterwards.
    async with anyio.create_task_group() as tg:
        tg.start_soon(parker.park)
        await anyio.wait_all_tasks_blocked()
        parker.unpark()


async def test_made_outside_the_loop_it_still_works() -> None:
    ll = lowlevel._ANYIO  # what current() returns with no event loop running
    parker = ll.parker()
    async with anyio.create_task_group() as tg:
        tg.start_soon(parker.park)
        await anyio.wait_all_tasks_blocked()
        parker.unpark()
    await ll.checkpoint_if_cancelled()
    await ll.cancel_shielded_checkpoint()


async def test_resolved_per_backend(anyio_backend: str) -> None:
    ll = lowlevel.current()
    assert ll is lowlevel.current()
    assert ll is not lowlevel._ANYIO


async def test_closing_a_socket_wakes_its_waiter_with_closed_resource_error() -> None:
    ll = lowlevel.current()
    a, b = socket.socketpair()
    a.setblocking(False)
    try:

        async def closer() -> None:
            await anyio.wait_all_tasks_blocked()
            anyio.notify_closing(a)
            a.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(closer)
            with pytest.raises(anyio.ClosedResourceError):
                await ll.wait_readable(a)
        c, d = socket.socketpair()
        c.setblocking(False)
        d.send(b"x")
        with anyio.fail_after(5):
            await ll.wait_readable(c)
            await ll.wait_writable(c)
        c.close()
        d.close()
    finally:
        b.close()


async def test_task_group_runs_children_to_the_end_and_cancels() -> None:
    done: list[int] = []

    async def child(i: int) -> None:
        await anyio.lowlevel.checkpoint()
        done.append(i)

    async with lowlevel.current().open_task_group() as tg:
        for i in range(3):
            tg.start_soon(child, i)
    assert sorted(done) == [0, 1, 2]

    async with lowlevel.current().open_task_group() as tg:
        tg.start_soon(anyio.sleep_forever)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()


async def test_task_group_raises_a_childs_error_as_a_group() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ExceptionGroup) as info:
        async with lowlevel.current().open_task_group() as tg:
            tg.start_soon(fail)
    assert info.group_contains(ValueError)
