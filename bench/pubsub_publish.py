"""One node publishing to 50 subscribed peers over real connections (TCP + Noise + yamux).

The 50 peers are p2pstack hosts in two other processes (bench/pubsub_peers.py, "sink"
mode: they subscribe over ``/meshsub/1.2.0`` and count what arrives without checking
signatures, so the publisher is what is measured), all connected to the publisher only, so
every message goes straight from the publisher to 50 peers. Measured in one run, side by side:

- pubsub: ``PubSub.publish`` of MESSAGES x 1 KiB messages (gossipsub defaults: flood publish,
  StrictSign), until every peer has received all of them;
- baseline: the same bytes as length-prefixed frames on one plain stream per peer, the most
  the stack below pubsub can do for the same fan-out;
- memory: the publisher's RSS growth per peer, with pubsub (a connection and two pubsub
  streams per peer) and, as the baseline, per plain connection.
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import ExitStack
from typing import Any

import anyio

from bench.processes import PYTHON, rss_mib
from p2pstack.framing.length_prefixed import encode_length_prefixed
from p2pstack.host import Host
from p2pstack.pubsub import PubSub

PEERS = 50
PROCESSES = 2
MESSAGES = int(os.environ.get("P2PSTACK_PUBSUB_MESSAGES", "2000"))
SIZE = 1024
TOPIC = "bench"
RAW_PROTOCOL = "/bench/raw/1.0.0"
FLUSH_EVERY = 100


def _start_peers(stack: ExitStack, mode: str, backend: str) -> list[tuple[Any, list[str]]]:
    procs = []
    for _ in range(PROCESSES):
        proc = subprocess.Popen(
            [
                *(PYTHON, "-m", "bench.pubsub_peers"),
                *(str(PEERS // PROCESSES), str(MESSAGES), mode, "--backend", backend),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        stack.callback(_stop, proc)
        assert proc.stdout is not None
        procs.append((proc, proc.stdout.readline().split()))
    return procs


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _wait_done(procs: list[tuple[Any, list[str]]]) -> None:
    for proc, _ in procs:
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
        if line.strip() != "DONE":
            raise RuntimeError(f"peer process said {line!r}")


async def _pubsub_run(procs: list[tuple[Any, list[str]]]) -> dict[str, float]:
    addrs = [a for _, group in procs for a in group]
    async with Host() as host, PubSub(host) as ps:
        await ps.subscribe(TOPIC)
        before = rss_mib(os.getpid())
        for addr in addrs:
            await host.connect(addr)
        await ps.wait_for_peers(TOPIC, len(addrs))
        after = rss_mib(os.getpid())
        payload = os.urandom(SIZE - 8)
        start = time.perf_counter()
        for i in range(MESSAGES):
            await ps.publish(TOPIC, i.to_bytes(8, "big") + payload)
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                await ps.flush()  # backpressure: never more than FLUSH_EVERY per peer queued
        await ps.flush()
        await _wait_done(procs)
        seconds = time.perf_counter() - start
        dropped = ps.stats.get("rpc_dropped_queue_full", 0)
    return {
        "pubsub_msgs_per_s": MESSAGES / seconds,
        "pubsub_deliveries_per_s": MESSAGES * len(addrs) / seconds,
        "pubsub_rss_mib_per_peer": (after - before) / len(addrs),
        "pubsub_rpcs_dropped": dropped,
    }


async def _raw_run(procs: list[tuple[Any, list[str]]]) -> dict[str, float]:
    addrs = [a for _, group in procs for a in group]
    async with Host() as host:
        before = rss_mib(os.getpid())
        peers = [await host.connect(addr) for addr in addrs]
        streams = [await host.new_stream(peer, [RAW_PROTOCOL]) for peer in peers]
        after = rss_mib(os.getpid())
        payload = os.urandom(SIZE - 8)
        frames = [encode_length_prefixed(i.to_bytes(8, "big") + payload) for i in range(MESSAGES)]
        start = time.perf_counter()

        async def send_all(stream: Any) -> None:
            for frame in frames:
                await stream.send(frame)
            await stream.send_eof()

        async with anyio.create_task_group() as tg:
            for stream in streams:
                tg.start_soon(send_all, stream)
        await _wait_done(procs)
        seconds = time.perf_counter() - start
    return {
        "baseline_raw_msgs_per_s": MESSAGES / seconds,
        "baseline_rss_mib_per_connection": (after - before) / len(addrs),
    }


def measure(backend: str = "trio") -> dict[str, float]:
    out: dict[str, float] = {"peers": PEERS, "messages": MESSAGES, "size": SIZE}
    with ExitStack() as stack:
        procs = _start_peers(stack, "raw", backend)
        out.update(anyio.run(_raw_run, procs, backend=backend))
    with ExitStack() as stack:
        procs = _start_peers(stack, "sink", backend)
        out.update(anyio.run(_pubsub_run, procs, backend=backend))
    out["ratio_pubsub_to_raw"] = out["pubsub_msgs_per_s"] / out["baseline_raw_msgs_per_s"]
    return out
