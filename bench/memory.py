"""Idle listener memory: RSS of a `p2pstack listen` process after start-up, beside a bare
Python process that imports anyio and trio and listens on a TCP socket."""

from __future__ import annotations

import time

from bench.processes import PYTHON, p2pstack_listener, process, rss_mib

_BARE = (
    "import anyio, trio, socket;"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen();"
    "print(s.getsockname()[1], flush=True); time = __import__('time'); time.sleep(60)"
)


def measure(backend: str = "trio") -> dict[str, float]:
    with p2pstack_listener(backend) as (proc, _), process([PYTHON, "-c", _BARE]) as (bare, _):
        time.sleep(1.0)  # let start-up finish: RSS is read, not waited for
        ours = rss_mib(proc.pid)
        baseline = rss_mib(bare.pid)
    return {"idle_listener_rss_mib": ours, "bare_python_rss_mib": baseline}
