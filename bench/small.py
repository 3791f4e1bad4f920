"""Small messages against a `p2pstack listen` process (and, for comparison, against a host
in the same process): 10,000 request/response round trips
of 100 bytes on one /echo/1.0.0 stream, and 1,000 streams each opened, used for one byte
and closed (64 at a time: by 64 tasks in turn, and by a task per stream); beside 10,000 raw
TCP round trips of 32 bytes in the same run."""

from __future__ import annotations

import json
import subprocess

import anyio
import anyio.abc

from bench.processes import PYTHON, p2pstack_listener, raw_listener
from p2pstack import Host, PeerID
from p2pstack.protocols import echo


async def _exactly(stream: anyio.abc.ByteStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        data += await stream.receive(n - len(data))
    return data


CONCURRENCY = 64


async def _streams(host: Host, peer: PeerID, streams: int, pooled: bool) -> float:
    """Streams per second: ``streams`` streams, each opened, used for one byte each way
    and closed, 64 at a time. ``pooled``: 64 tasks open streams one after another; else
    a task per stream, 64 of them admitted at a time (the task-per-request style, which
    adds the cost of a thousand anyio tasks and their limiter to each stream)."""

    async def one_stream() -> None:
        s = await host.new_stream(peer, [echo.PROTOCOL_ID])
        async with s:
            await s.send(b"!")
            await _exactly(s, 1)

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        if pooled:

            async def worker(n: int) -> None:
                for _ in range(n):
                    await one_stream()

            for i in range(CONCURRENCY):
                tg.start_soon(worker, streams // CONCURRENCY + (i < streams % CONCURRENCY))
        else:
            limiter = anyio.CapacityLimiter(CONCURRENCY)

            async def limited() -> None:
                async with limiter:
                    await one_stream()

            for _ in range(streams):
                tg.start_soon(limited)
    return streams / (anyio.current_time() - start)


async def _run(addr: str, round_trips: int, streams: int) -> tuple[float, float, float]:
    """(round trips/s, streams/s pooled, streams/s with a task per stream)."""
    message = b"x" * 100
    async with Host() as host:
        peer = await host.connect(addr)
        stream = await host.new_stream(peer, [echo.PROTOCOL_ID])
        async with stream:
            for _ in range(100):  # warm-up
                await stream.send(message)
                await _exactly(stream, 100)
            start = anyio.current_time()
            for _ in range(round_trips):
                await stream.send(message)
                await _exactly(stream, 100)
            rps = round_trips / (anyio.current_time() - start)
        task_sps = await _streams(host, peer, streams, pooled=False)
        sps = await _streams(host, peer, streams, pooled=True)
    return rps, sps, task_sps


async def _in_process(round_trips: int, streams: int) -> tuple[float, float, float]:
    async with Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as server:
        server.set_stream_handler(echo.PROTOCOL_ID, echo.handle_echo, max_inbound_per_peer=1024)
        return await _run(str(server.addrs[0]), round_trips, streams)


def measure(
    round_trips: int = 10_000, streams: int = 1_000, backend: str = "trio"
) -> dict[str, float]:
    with p2pstack_listener(backend) as (_, addr), raw_listener(backend) as (_, port):
        rps, sps, task_sps = anyio.run(_run, addr, round_trips, streams, backend=backend)
        in_rps, in_sps, _ = anyio.run(_in_process, round_trips, streams, backend=backend)
        raw = subprocess.run(
            [PYTHON, "-m", "bench.raw_tcp", "ping", port, str(round_trips), backend],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        raw_rps = len(json.loads(raw.stdout)["rtts"]) / sum(json.loads(raw.stdout)["rtts"])
    return {
        "round_trips_per_s": rps,
        "raw_tcp_round_trips_per_s": raw_rps,
        "round_trip_ratio_to_raw": rps / raw_rps,
        "streams_per_s": sps,
        "streams_per_s_task_per_stream": task_sps,
        "in_process_round_trips_per_s": in_rps,
        "in_process_streams_per_s": in_sps,
    }
