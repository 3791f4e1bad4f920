"""Start and stop the peer processes a benchmark talks to (loopback only)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

PYTHON = sys.executable


@contextlib.contextmanager
def process(
    args: list[str], stderr: int | None = subprocess.DEVNULL
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``args``; yield the process and the first line it prints (its address)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        if not first:
            raise RuntimeError(f"{args} printed nothing")
        yield proc, first
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def p2pstack_listener(
    backend: str = "trio",
) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    return process([PYTHON, "-m", "p2pstack.cli", "--backend", backend, "listen"])


def raw_listener(
    backend: str = "trio",
) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """A raw anyio TCP peer (bench.raw_tcp) on the same backend as the p2pstack side."""
    return process([PYTHON, "-m", "bench.raw_tcp", "serve", backend])


def run_json(args: list[str]) -> dict[str, Any]:
    import json

    out = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")
