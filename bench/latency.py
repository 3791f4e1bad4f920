"""Latency: a new connection to its first ping reply (handshake + 1 RTT, median of 20) and
ping RTT (median of 100) against a `p2pstack listen` process, beside raw TCP 32-byte
round trips to a raw anyio peer process in the same run."""

from __future__ import annotations

import json
import statistics
import subprocess

import anyio

from bench.processes import PYTHON, p2pstack_listener, raw_listener
from p2pstack import Host


async def _p2pstack(addr: str, connections: int, pings: int) -> tuple[list[float], list[float]]:
    handshakes: list[float] = []
    rtts: list[float] = []
    async with Host() as host:
        for i in range(connections + 3):
            start = anyio.current_time()
            peer = await host.connect(addr)
            await host.ping(peer)
            if i >= 3:  # the first connections warm up code paths and caches
                handshakes.append(anyio.current_time() - start)
            await host.disconnect(peer)
        peer = await host.connect(addr)
        rtts = (await host.ping(peer, count=pings + 10))[10:]
    return handshakes, rtts


def measure(connections: int = 20, pings: int = 100, backend: str = "trio") -> dict[str, float]:
    with p2pstack_listener(backend) as (_, addr), raw_listener(backend) as (_, port):
        handshakes, rtts = anyio.run(_p2pstack, addr, connections, pings, backend=backend)
        raw = subprocess.run(
            [PYTHON, "-m", "bench.raw_tcp", "ping", port, str(pings), backend],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        raw_rtts = json.loads(raw.stdout)["rtts"]
    return {
        "handshake_plus_one_rtt_ms_median": 1000 * statistics.median(handshakes),
        "ping_rtt_ms_median": 1000 * statistics.median(rtts),
        "raw_tcp_rtt_ms_median": 1000 * statistics.median(raw_rtts),
        "rtt_ratio_to_raw": statistics.median(rtts) / statistics.median(raw_rtts),
    }
