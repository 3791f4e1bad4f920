"""Latency: a new connection to its first ping reply (handshake + 1 RTT, median of 20) and
ping RTT (median of 100) against a `p2pstack listen` process, beside raw TCP 32-byte
round trips to a raw anyio peer process in the same run. Handshake + 1 RTT is measured from
one host reconnecting (it remembers the listener's security protocol) and, as
``first_contact_...``, from fresh hosts that never met the listener."""

from __future__ import annotations

import json
import statistics
import subprocess

import anyio

from bench.processes import PYTHON, p2pstack_listener, raw_listener
from p2pstack import Host
from p2pstack.identity import KeyPair


async def _first_contacts(addr: str, connections: int) -> list[float]:
    """Handshake + 1 RTT from hosts that never met the listener (a fresh host each time:
    no remembered security protocol, an empty peerstore)."""
    key = KeyPair.generate()
    handshakes: list[float] = []
    for i in range(connections + 3):
        async with Host(key) as host:
            start = anyio.current_time()
            peer = await host.connect(addr)
            await host.ping(peer)
            if i >= 3:
                handshakes.append(anyio.current_time() - start)
    return handshakes


async def _p2pstack(addr: str, connections: int, pings: int) -> tuple[list[float], list[float]]:
    """New connections from one host (after the first, it knows the listener's security
    protocol: see p2pstack.upgrader), then ping RTTs on one connection."""
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
        first = anyio.run(_first_contacts, addr, connections, backend=backend)
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
        "first_contact_handshake_plus_one_rtt_ms_median": 1000 * statistics.median(first),
        "ping_rtt_ms_median": 1000 * statistics.median(rtts),
        "raw_tcp_rtt_ms_median": 1000 * statistics.median(raw_rtts),
        "rtt_ratio_to_raw": statistics.median(rtts) / statistics.median(raw_rtts),
    }
