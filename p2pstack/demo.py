"""``make run``: a local demo network on loopback.

Three nodes in this process and a fourth in its own process (``p2pstack pubsub``, which
also serves echo and perf) listen on TCP and QUIC v1 and connect to each other, half of
the links over TCP + Noise + yamux and half over QUIC; they identify one another, ping,
echo 1 MiB, and run a /perf/1.0.0 exchange on each transport; then all four chat on a
gossipsub topic, each publishing one message that every other must receive. A short
summary is printed and the exit status says whether all of it worked.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from contextlib import AsyncExitStack
from itertools import combinations

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2pstack.cli import serve_all
from p2pstack.host import Host
from p2pstack.protocols import echo, perf
from p2pstack.pubsub import GossipSub, PubSub

ECHO_BYTES = 1 << 20
PERF_BYTES = 64 << 20


async def _echo(host: Host, target: Multiaddr) -> bool:
    data = os.urandom(ECHO_BYTES)
    stream = await host.new_stream(target, [echo.PROTOCOL_ID])
    async with stream:
        return await echo.echo_exchange(stream, data) == data


TOPIC = "demo"
PUBSUB_NODE = [sys.executable, "-m", "p2pstack.cli", "pubsub", "--topic", TOPIC, "--json"]


LISTEN = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"]
#: The links (and perf runs) that go over QUIC; the others go over TCP.
QUIC_LINKS = {("A", "B"), ("B", "C"), ("B", "D")}


async def _start_remote_node() -> tuple[anyio.abc.Process, list[Multiaddr]]:
    listen = [arg for addr in LISTEN for arg in ("--listen", addr)]
    process = await anyio.open_process([*PUBSUB_NODE, *listen], stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    text = b""
    with anyio.fail_after(20):
        while text.count(b"\n") < len(LISTEN):
            text += await process.stdout.receive(1)
    return process, [Multiaddr(line) for line in text.decode().split()]


def _pick(addrs: list[Multiaddr], quic: bool) -> Multiaddr:
    return next(a for a in addrs if ("/quic-v1" in str(a)) == quic)


async def main() -> int:
    process, remote_addrs = await _start_remote_node()
    ok = True
    try:
        async with (
            Host(listen_addrs=LISTEN) as a,
            Host(listen_addrs=LISTEN) as b,
            Host(listen_addrs=LISTEN) as c,
        ):
            nodes = {"A": a, "B": b, "C": c}
            for host in nodes.values():
                serve_all(host)
            addrs: dict[str, list[Multiaddr]] = {n: h.addrs for n, h in nodes.items()}
            addrs["D"] = remote_addrs
            print("p2pstack demo network (D runs in its own process):")
            for name, listening in addrs.items():
                for addr in listening:
                    print(f"  {name}  {addr}")
            print()
            print(
                f"{'link':6} {'transport':9} {'agent':16} {'protocols':>9} {'rtt ms':>8}"
                f" {'echo 1 MiB':>10}"
            )
            pairs = list(combinations("ABC", 2)) + [(n, "D") for n in "ABC"]
            with anyio.fail_after(60):
                for src, dst in pairs:
                    host = nodes[src]
                    quic = (src, dst) in QUIC_LINKS
                    target = _pick(addrs[dst], quic)
                    peer = await host.connect(target)
                    info = await host.identify(peer)
                    rtts = await host.ping(peer, count=10)
                    echoed = await _echo(host, target)
                    ok = ok and echoed and bool(info.protocols)
                    print(
                        f"{src}->{dst:3} {'quic-v1' if quic else 'tcp':9}"
                        f" {info.agent_version or '?':16} {len(info.protocols):9d}"
                        f" {statistics.median(rtts) * 1000:8.3f} {'ok' if echoed else 'FAILED':>10}"
                    )
                for src, dst in (("A", "B"), ("C", "D")):
                    quic = (src, dst) in QUIC_LINKS
                    target = _pick(addrs[dst], quic)
                    stream = await nodes[src].new_stream(target, [perf.PROTOCOL_ID])
                    async with stream:
                        result = await perf.run_perf(stream, PERF_BYTES, PERF_BYTES)
                    print(
                        f"perf {src}->{dst} over {'quic-v1' if quic else 'tcp'}:"
                        f" {PERF_BYTES >> 20} MiB up + {PERF_BYTES >> 20} MiB down"
                        f" in {result.seconds:.2f} s = {result.mib_per_s:.0f} MiB/s"
                    )
            connected = {n: len(h.connections()) for n, h in nodes.items()}
            print(f"connections per node: {connected}")
            ok = await _chat(nodes, process) and ok
    finally:
        if process.returncode is None:
            process.terminate()
            with anyio.move_on_after(5):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
    print("demo: all checks passed" if ok else "demo: FAILED")
    return 0 if ok else 1


async def _chat(nodes: dict[str, Host], remote: anyio.abc.Process) -> bool:
    """Gossipsub: A, B, C (here) and D (the other process) each publish one line."""
    async with AsyncExitStack() as stack:
        services = {
            n: await stack.enter_async_context(PubSub(h, GossipSub())) for n, h in nodes.items()
        }
        subs = {n: await ps.subscribe(TOPIC) for n, ps in services.items()}
        with anyio.fail_after(30):
            for ps in services.values():
                await ps.wait_for_peers(TOPIC, len(nodes))  # the other two and D
            assert remote.stdin is not None and remote.stdout is not None
            await remote.stdin.send(b"hello from D\n")
            for n, ps in services.items():
                await ps.publish(TOPIC, f"hello from {n}".encode())
            got: dict[str, set[str]] = {n: set() for n in [*nodes, "D"]}
            for n, sub in subs.items():
                while len(got[n]) < 3:
                    msg = await sub.receive()
                    if msg.received_from is not None:
                        got[n].add(msg.data.decode())
            lines = b""
            while lines.count(b"\n") < 3:
                lines += await remote.stdout.receive()
            got["D"] = {json.loads(line)["data"] for line in lines.splitlines()}
            await remote.stdin.aclose()  # D exits once stdin ended
            await remote.wait()
    everyone = {f"hello from {n}" for n in got}
    ok = all(received == everyone - {f"hello from {n}"} for n, received in got.items())
    mesh = {n: len(ps.mesh_peers(TOPIC)) for n, ps in services.items()}
    print(f"gossipsub topic {TOPIC!r}: mesh sizes {mesh}; each node received the other 3: {ok}")
    return ok and remote.returncode == 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
