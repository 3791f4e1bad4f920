"""Idle listener memory: RSS of a `p2pstack listen` process after start-up, beside a bare
Python process that imports anyio and trio and listens on a TCP socket.

The listener loads what only a connection needs (the protobuf runtime, TLS, QUIC) when it
is first needed, so its RSS is also read once a peer has connected, pinged and identified,
and once that peer is gone again."""

from __future__ import annotations

import time

from bench.processes import PYTHON, p2pstack_listener, process, rss_mib, run_json

_BARE = (
    "import anyio, trio, socket;"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen();"
    "print(s.getsockname()[1], flush=True); time = __import__('time'); time.sleep(60)"
)


def measure(backend: str = "trio") -> dict[str, float]:
    with (
        p2pstack_listener(backend) as (proc, addr),
        process([PYTHON, "-c", _BARE]) as (bare, _),
    ):
        time.sleep(1.0)  # let start-up finish: RSS is read, not waited for
        ours = rss_mib(proc.pid)
        baseline = rss_mib(bare.pid)
        run_json([PYTHON, "-m", "p2pstack.cli", "ping", addr, "--count", "3", "--json"])
        time.sleep(0.5)  # the dialer has exited; let the listener notice and clean up
        after = rss_mib(proc.pid)
    return {
        "idle_listener_rss_mib": ours,
        "bare_python_rss_mib": baseline,
        "after_one_peer_came_and_went_mib": after,
    }
