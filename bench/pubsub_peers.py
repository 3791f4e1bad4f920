"""Subscriber side of bench/pubsub_publish.py: N p2pstack hosts in one process.

``python -m bench.pubsub_peers N EXPECT MODE [--backend B]`` starts N hosts on loopback
and prints their full addresses on one line. MODE ``pubsub``: each subscribes to the topic
``bench`` with a full PubSub (gossipsub defaults, every signature checked); MODE ``sink``:
each speaks just enough ``/meshsub/1.2.0`` to subscribe and count the messages it is sent
(decoded, not verified), so that the publisher, not its peers, is what is measured; MODE
``raw``: each serves ``/bench/raw/1.0.0``, reading length-prefixed frames until EOF.
When every host has received EXPECT messages (frames) the process prints ``DONE`` and
keeps serving until its stdin closes.
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc

from p2pstack.framing.length_prefixed import LengthPrefixedDecoder, encode_length_prefixed
from p2pstack.host import Host
from p2pstack.identity import PeerID
from p2pstack.network import ConnectionOpened
from p2pstack.pubsub import PubSub
from p2pstack.pubsub.router import MESHSUB_V12
from p2pstack.pubsub.rpc import RPC, decode_rpc, encode_rpc

TOPIC = "bench"
RAW_PROTOCOL = "/bench/raw/1.0.0"


async def main(n: int, expect: int, mode: str) -> None:
    done = anyio.Event()
    remaining = n

    def one_done() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            done.set()

    async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
        hosts = [
            await stack.enter_async_context(Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]))
            for _ in range(n)
        ]
        for host in hosts:
            if mode == "pubsub":
                ps = await stack.enter_async_context(PubSub(host))
                sub = await ps.subscribe(TOPIC)

                async def count(sub=sub) -> None:  # type: ignore[no-untyped-def]
                    for _ in range(expect):
                        await sub.receive()
                    one_done()

                tg.start_soon(count)
            elif mode == "sink":
                _sink(host, expect, one_done, tg)
            else:
                got = {"n": 0}

                async def serve(stream: anyio.abc.ByteStream, got=got) -> None:  # type: ignore[no-untyped-def]
                    decoder = LengthPrefixedDecoder(1 << 20)
                    while True:
                        try:
                            decoder.feed(await stream.receive())
                        except anyio.EndOfStream:
                            return
                        while decoder.next_message() is not None:
                            got["n"] += 1
                            if got["n"] == expect:
                                one_done()

                host.set_stream_handler(RAW_PROTOCOL, serve)
        print(" ".join(str(h.addrs[0]) for h in hosts), flush=True)
        await done.wait()
        print("DONE", flush=True)
        await anyio.wrap_file(sys.stdin).read()
        tg.cancel_scope.cancel()


def _sink(host: Host, expect: int, one_done: Any, tg: anyio.abc.TaskGroup) -> None:
    got = {"n": 0}

    async def serve(stream: anyio.abc.ByteStream) -> None:
        decoder = LengthPrefixedDecoder(2 << 20)
        while True:
            try:
                decoder.feed(await stream.receive())
            except anyio.EndOfStream:
                return
            while (frame := decoder.next_message()) is not None:
                before = got["n"]
                got["n"] += len(decode_rpc(frame).messages)
                if before < expect <= got["n"]:
                    one_done()

    async def announce(peer: PeerID) -> None:
        stream = await host.new_stream(peer, [MESHSUB_V12])
        await stream.send(encode_length_prefixed(encode_rpc(RPC(subscriptions=[(TOPIC, True)]))))
        await anyio.sleep_forever()

    async def watch() -> None:
        async with host.events() as events:
            async for ev in events:
                if isinstance(ev, ConnectionOpened):
                    tg.start_soon(announce, ev.peer)

    host.set_stream_handler(MESHSUB_V12, serve)
    tg.start_soon(watch)


if __name__ == "__main__":
    backend = "trio"
    args = sys.argv[1:]
    if "--backend" in args:
        i = args.index("--backend")
        backend = args[i + 1]
        del args[i : i + 2]
    anyio.run(main, int(args[0]), int(args[1]), args[2], backend=backend)
