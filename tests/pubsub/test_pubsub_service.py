"""PubSub on real hosts over TCP (both backends): subscribe, mesh, publish, validators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest

from p2pstack.host import Host
from p2pstack.identity import PeerID
from p2pstack.pubsub.gossipsub.router import GossipSub
from p2pstack.pubsub.router import FloodSub, Grafted, PeerJoined, ValidationResult
from p2pstack.pubsub.rpc import Message
from p2pstack.pubsub.service import PubSub

pytestmark = pytest.mark.anyio
T = "chat"


@asynccontextmanager
async def network(n: int, flood: tuple[int, ...] = ()) -> AsyncIterator[list[PubSub]]:
    async with AsyncExitStack() as stack:
        services = []
        for i in range(n):
            host = await stack.enter_async_context(Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]))
            router = FloodSub() if i in flood else GossipSub()
            services.append(await stack.enter_async_context(PubSub(host, router)))
        yield services


async def wait_for(ps: PubSub, predicate: type, peer: PeerID, topic: str = T) -> None:
    """Wait until the router reports ``predicate(peer, topic)`` (or it already holds)."""
    async with ps.events() as events:
        if predicate is PeerJoined and peer in ps.peers(topic):
            return
        if predicate is Grafted and peer in ps.mesh_peers(topic):
            return
        async for ev in events:
            if isinstance(ev, predicate) and ev.peer == peer and ev.topic == topic:  # type: ignore[attr-defined]
                return


async def test_line_of_three_delivers_through_the_middle() -> None:
    async with network(3) as (a, b, c):
        subs = [await ps.subscribe(T) for ps in (a, b, c)]
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_for, a, Grafted, b.host.peer_id)
                tg.start_soon(wait_for, c, Grafted, b.host.peer_id)
                await b.host.connect(a.host.addrs[0])
                await c.host.connect(b.host.addrs[0])
            msg_id = await c.publish(T, b"hello")
            got = [await s.receive() for s in subs]
        assert all(m.data == b"hello" and m.msg_id == msg_id for m in got)
        assert got[0].source == c.host.peer_id and got[0].received_from == b.host.peer_id
        assert got[2].received_from is None  # our own message
        assert a.peers(T) == [b.host.peer_id]


async def test_validator_rejects_and_message_stops() -> None:
    async with network(3) as (a, b, c):
        sub_a = await a.subscribe(T)
        await b.subscribe(T)
        await c.subscribe(T)

        async def no_bad(msg: Message) -> ValidationResult:
            await anyio.lowlevel.checkpoint()
            return (
                ValidationResult.REJECT if msg.data.startswith(b"bad") else ValidationResult.ACCEPT
            )

        b.add_validator(T, no_bad)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_for, a, Grafted, b.host.peer_id)
                tg.start_soon(wait_for, c, Grafted, b.host.peer_id)
                await b.host.connect(a.host.addrs[0])
                await c.host.connect(b.host.addrs[0])
            await c.publish(T, b"bad one")
            await c.publish(T, b"good one")
            first = await sub_a.receive()
        assert first.data == b"good one"
        assert b.router.stats.get("rejected_invalid") == 1


async def test_floodsub_peer_and_gossipsub_peer_interoperate() -> None:
    async with network(2, flood=(1,)) as (g, f):
        sub_g = await g.subscribe(T)
        sub_f = await f.subscribe(T)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_for, g, PeerJoined, f.host.peer_id)
                tg.start_soon(wait_for, f, PeerJoined, g.host.peer_id)
                await f.host.connect(g.host.addrs[0])
            assert g.router.peers[f.host.peer_id].protocol == "/floodsub/1.0.0"
            await f.publish(T, b"from floodsub")
            await g.publish(T, b"from gossipsub")
            both = {b"from floodsub", b"from gossipsub"}
            assert {(await sub_g.receive()).data, (await sub_g.receive()).data} == both
            assert {(await sub_f.receive()).data, (await sub_f.receive()).data} == {
                b"from floodsub",
                b"from gossipsub",
            }


async def test_unsubscribe_ends_iteration_and_leaves_topic() -> None:
    async with network(2) as (a, b):
        sub = await a.subscribe(T)
        await b.subscribe(T)
        with anyio.fail_after(10):
            await wait_for_join_both(a, b)
            async with a.events() as events:
                await sub.aclose()
                async for ev in events:
                    if ev.__class__.__name__ == "Pruned":
                        break
        assert [m async for m in sub] == []
        assert T not in a.router.subscriptions


async def wait_for_join_both(a: PubSub, b: PubSub) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for, a, Grafted, b.host.peer_id)
        tg.start_soon(wait_for, b, Grafted, a.host.peer_id)
        await b.host.connect(a.host.addrs[0])


async def test_delivery_does_not_wait_for_a_heartbeat() -> None:
    """Validation results and deliveries are acted on at once, not at the next heartbeat
    (here there is none for an hour)."""
    from p2pstack.pubsub import GossipSubParams

    slow = GossipSubParams(heartbeat_interval=3600, heartbeat_initial_delay=3600)
    async with AsyncExitStack() as stack:
        hosts = [
            await stack.enter_async_context(Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]))
            for _ in range(2)
        ]
        a, b = [await stack.enter_async_context(PubSub(h, GossipSub(slow))) for h in hosts]
        sub_b = await b.subscribe(T)
        await a.subscribe(T)
        await b.host.connect(a.host.addrs[0])
        with anyio.fail_after(5):
            await a.wait_for_peers(T)
            await a.publish(T, b"now")
            assert (await sub_b.receive()).data == b"now"


async def test_direct_peers_connect_by_themselves_and_stay_out_of_the_mesh() -> None:
    async with AsyncExitStack() as stack:
        a_host = await stack.enter_async_context(Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]))
        b_host = await stack.enter_async_context(Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]))
        a = await stack.enter_async_context(PubSub(a_host, direct_peers=[b_host.addrs[0]]))
        b = await stack.enter_async_context(PubSub(b_host, direct_peers=[a_host.addrs[0]]))
        sub_b = await b.subscribe(T)
        await a.subscribe(T)
        with anyio.fail_after(10):
            await a.wait_for_peers(T)  # nobody called connect: the direct peering did
            await a.publish(T, b"direct")
            assert (await sub_b.receive()).data == b"direct"
        assert a.mesh_peers(T) == [] and b.mesh_peers(T) == []


def test_direct_peer_needs_a_peer_id() -> None:
    from p2pstack.errors import ConfigError

    async def build() -> None:
        async with Host() as host:
            PubSub(host, direct_peers=["/ip4/127.0.0.1/tcp/1"])

    with pytest.raises(ConfigError):
        anyio.run(build)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x05\xff\xff\xff\xff\xff",  # a frame that is no protobuf
        b"\xff\xff\xff\xff\x0f",  # a length far over the limit
        b"\x02\x12",  # a truncated field, then EOF
    ],
)
async def test_garbage_on_a_pubsub_stream_is_contained(garbage: bytes) -> None:
    async with network(3) as (a, b, evil):
        sub_b = await b.subscribe(T)
        await a.subscribe(T)
        with anyio.fail_after(10):
            await wait_for_join_both(a, b)
            await evil.host.connect(a.host.addrs[0])
            stream = await evil.host.new_stream(a.host.peer_id, ["/meshsub/1.1.0"])
            await stream.send(garbage)
            await stream.send_eof()
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                while True:  # a resets the stream (or ends it at EOF)
                    await stream.receive()
            await a.publish(T, b"still fine")
            assert (await sub_b.receive()).data == b"still fine"
        assert a.host.connections(evil.host.peer_id)  # the connection itself is kept


async def test_a_burst_reaches_a_subscriber_that_keeps_reading() -> None:
    """Many RPCs arrive in one read; a subscriber that keeps reading gets them all even
    with a small buffer (the service lets it run between RPCs)."""
    async with AsyncExitStack() as stack:
        hosts = [
            await stack.enter_async_context(Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]))
            for _ in range(2)
        ]
        a = await stack.enter_async_context(PubSub(hosts[0]))
        b = await stack.enter_async_context(PubSub(hosts[1], subscription_buffer=8))
        sub_b = await b.subscribe(T)
        await a.subscribe(T)
        await b.host.connect(a.host.addrs[0])
        got = 0
        with anyio.fail_after(20):
            await a.wait_for_peers(T)
            for i in range(300):
                await a.publish(T, b"%d" % i)
            await a.flush()
            while got < 300:
                await sub_b.receive()
                got += 1
        assert sub_b.dropped == 0
