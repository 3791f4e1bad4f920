"""``make run``: a local demo network on loopback.

Three nodes in this process and a fourth in its own process (``p2pstack listen``) connect
to each other over TCP + Noise + yamux, identify one another, ping, echo 1 MiB, and run a
/perf/1.0.0 exchange; a short summary is printed and the exit status says whether all of
it worked.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from itertools import combinations

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2pstack.cli import serve_all
from p2pstack.host import Host
from p2pstack.protocols import echo, perf

ECHO_BYTES = 1 << 20
PERF_BYTES = 64 << 20


async def _echo(host: Host, target: Multiaddr) -> bool:
    data = os.urandom(ECHO_BYTES)
    stream = await host.new_stream(target, [echo.PROTOCOL_ID])
    async with stream:
        return await echo.echo_exchange(stream, data) == data


async def _start_remote_node() -> tuple[anyio.abc.Process, Multiaddr]:
    process = await anyio.open_process(
        [sys.executable, "-m", "p2pstack.cli", "listen"], stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    line = b""
    with anyio.fail_after(20):
        while not line.endswith(b"\n"):
            line += await process.stdout.receive(1)
    return process, Multiaddr(line.decode().strip())


async def main() -> int:
    process, remote_addr = await _start_remote_node()
    ok = True
    try:
        async with (
            Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as a,
            Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as b,
            Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as c,
        ):
            nodes = {"A": a, "B": b, "C": c}
            for host in nodes.values():
                serve_all(host)
            addrs: dict[str, Multiaddr] = {n: h.addrs[0] for n, h in nodes.items()}
            addrs["D"] = remote_addr
            print("p2pstack demo network (D runs in its own process):")
            for name, addr in addrs.items():
                print(f"  {name}  {addr}")
            print()
            print(f"{'link':6} {'agent':16} {'protocols':>9} {'rtt ms':>8} {'echo 1 MiB':>10}")
            pairs = list(combinations("ABC", 2)) + [(n, "D") for n in "ABC"]
            with anyio.fail_after(60):
                for src, dst in pairs:
                    host = nodes[src]
                    peer = await host.connect(addrs[dst])
                    info = await host.identify(peer)
                    rtts = await host.ping(peer, count=10)
                    echoed = await _echo(host, addrs[dst])
                    ok = ok and echoed and bool(info.protocols)
                    print(
                        f"{src}->{dst:3} {info.agent_version or '?':16} {len(info.protocols):9d}"
                        f" {statistics.median(rtts) * 1000:8.3f} {'ok' if echoed else 'FAILED':>10}"
                    )
                for src, dst in (("A", "B"), ("C", "D")):
                    stream = await nodes[src].new_stream(addrs[dst], [perf.PROTOCOL_ID])
                    async with stream:
                        result = await perf.run_perf(stream, PERF_BYTES, PERF_BYTES)
                    print(
                        f"perf {src}->{dst}: {PERF_BYTES >> 20} MiB up + {PERF_BYTES >> 20} MiB"
                        " down"
                        f" in {result.seconds:.2f} s = {result.mib_per_s:.0f} MiB/s"
                    )
            connected = {n: len(h.connections()) for n, h in nodes.items()}
            print(f"connections per node: {connected}")
    finally:
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
    print("demo: all checks passed" if ok else "demo: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
