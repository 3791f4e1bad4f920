"""QUIC v1: bulk, latency and sender memory, beside js-libp2p's QUIC in the same run.

- p2pstack: this process dials a ``p2pstack listen --listen .../udp/0/quic-v1`` process;
  handshake + 1 RTT (median of 20 new connections), ping RTT (median of 100), then
  ``/perf/1.0.0`` 256 MiB up and 256 MiB down on one stream. During the upload a task
  samples this process's RSS every 20 ms; the figure is the peak less the RSS just before
  (connection open, idle).
- js-libp2p (@chainsafe/libp2p-quic): ``interop/js/run-peer.sh listen`` and ``dial`` with
  the same perf sizes, both js processes; its own h+1RTT figure (dial to identify) is not
  comparable and is left out. Needs the js peer built (``make interop`` or
  ``interop/js/build.sh``); without it the baseline is reported as missing (NaN).

Issue goals: bulk >= 2x js's QUIC; h+1RTT median <= 5 ms; sender RSS during a 256 MiB upload
within 32 MiB of idle.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
from pathlib import Path

import anyio

from bench.processes import PYTHON, process
from p2pstack import Host
from p2pstack.protocols import perf

ROOT = Path(__file__).resolve().parent.parent
JS_PEER = ROOT / "interop" / "js" / "run-peer.sh"
QUIC_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1"


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _p2pstack(addr: str, size: int, connections: int, pings: int) -> dict[str, float]:
    handshakes: list[float] = []
    async with Host() as host:
        for i in range(connections + 3):
            start = anyio.current_time()
            peer = await host.connect(addr)
            await host.ping(peer)
            if i >= 3:  # warm-up connections
                handshakes.append(anyio.current_time() - start)
            await host.disconnect(peer)
        peer = await host.connect(addr)
        rtts = (await host.ping(peer, count=pings + 10))[10:]

        stream = await host.new_stream(peer, [perf.PROTOCOL_ID])
        idle = _rss_mib()
        peak = idle
        done = anyio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _rss_mib())
                with anyio.move_on_after(0.02):
                    await done.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            up = await perf.run_perf(stream, size, 0)
            done.set()
        stream = await host.new_stream(peer, [perf.PROTOCOL_ID])
        down = await perf.run_perf(stream, 0, size)
    return {
        "p2pstack_handshake_plus_one_rtt_ms_median": 1000 * statistics.median(handshakes),
        "p2pstack_ping_rtt_ms_median": 1000 * statistics.median(rtts),
        "p2pstack_up_mib_s": size / up.seconds / 2**20,
        "p2pstack_down_mib_s": size / down.seconds / 2**20,
        "p2pstack_upload_rss_growth_mib": peak - idle,
    }


def _js(size: int, direction: str) -> float:
    with process([str(JS_PEER), "listen", "--listen", QUIC_LISTEN], stderr=subprocess.DEVNULL) as (
        _,
        addr,
    ):
        up, down = (size, 0) if direction == "up" else (0, size)
        dial = [str(JS_PEER), "dial", addr, "--ping-count", "1"]
        out = subprocess.run(
            [*dial, "--perf-upload", str(up), "--perf-download", str(down)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not result.get("perf_ok"):
        raise RuntimeError(f"js perf failed: {result}")
    return size / float(result["perf_seconds"]) / 2**20


def _js_available() -> bool:
    cache = os.environ.get("P2PSTACK_INTEROP_CACHE", str(Path.home() / ".cache/p2pstack/interop"))
    dest = Path(os.environ.get("P2PSTACK_JS_PEER_DIR", Path(cache) / "js"))
    return (dest / "node_modules" / "@chainsafe" / "libp2p-quic").is_dir()


def measure(size: int = 256 << 20, backend: str = "trio") -> dict[str, float]:
    listen = [PYTHON, "-m", "p2pstack.cli", "--backend", backend, "listen"]
    with process([*listen, "--listen", QUIC_LISTEN]) as (_, addr):
        result = anyio.run(_p2pstack, addr, size, 20, 100, backend=backend)
    if _js_available():
        result["js_up_mib_s"] = _js(size, "up")
        result["js_down_mib_s"] = _js(size, "down")
    else:
        result["js_up_mib_s"] = result["js_down_mib_s"] = math.nan
    result["up_ratio_to_js"] = result["p2pstack_up_mib_s"] / result["js_up_mib_s"]
    result["down_ratio_to_js"] = result["p2pstack_down_mib_s"] / result["js_down_mib_s"]
    return result
