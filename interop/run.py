"""The interop runner behind ``make interop`` (see interop/README.md and interop/CONTRACT.md).

It builds every peer (``interop/<impl>/build.sh``), starts a private Redis server on a
loopback port, and runs:

1. the matrix: p2pstack (on each anyio backend) as dialer and as listener against every
   other implementation, for every transport combination; per cell ping + identify, echo
   16 MiB verified, perf 64 MiB each way. A combination one side does not support is shown
   as ``n/a`` with that side's own reason (its peer exits 2 and says why).
2. the self-comparison: every implementation against itself on tcp/noise/yamux with
   handshake+1RTT median of 20 fresh connections, ping RTT median of 100, perf 256 MiB
   each way, so that p2pstack's figures stand beside every peer's from the same run.

It prints readable tables and writes ``interop/results.json``. Any failed cell fails the
run (exit 1), unless it is listed in ``interop/known-failures`` (one line per cell:
``DIALER LISTENER COMBO  reason and evidence``), as test-plans does with knownErrors.json.

Usage: ``.venv/bin/python interop/run.py [--impls go,rust,js,py-libp2p] [--no-self]
[--no-matrix] [--backends trio,asyncio] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pstack.interop.resp import RespParser, encode_command

HERE = Path(__file__).resolve().parent
OTHERS = ["go", "rust", "js", "py-libp2p"]
COMBOS = {
    "tcp/noise/yamux": {"transport": "tcp", "security": "noise", "muxer": "yamux"},
    "tcp/tls/yamux": {"transport": "tcp", "security": "tls", "muxer": "yamux"},
    "quic-v1": {"transport": "quic-v1"},
}
EXIT_UNSUPPORTED = 2
#: implementations whose interop peer has the gossipsub mode of CONTRACT.md
GOSSIPSUB_IMPLS = {"go", "rust", "js"}
MESH_FORMATION_SECONDS = 2.0
RATE_SUBSCRIBERS = 5
RATE_MESSAGES = 500
MIB = 1 << 20


@dataclass(frozen=True)
class Peer:
    """One runnable side: an implementation directory plus extra environment."""

    name: str
    impl: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def run_sh(self) -> Path:
        return HERE / self.impl / "run.sh"


def peers_for(impls: list[str], backends: list[str]) -> tuple[list[Peer], list[Peer]]:
    ours = [
        Peer("p2pstack" if b == "trio" else f"p2pstack-{b}", "p2pstack", {"P2PSTACK_BACKEND": b})
        for b in backends
    ]
    return ours, [Peer(i, i) for i in impls]


@dataclass
class Cell:
    dialer: str
    listener: str
    combo: str
    status: str = "pending"  # pass | fail | n/a | known-failure
    reason: str = ""
    result: dict[str, Any] | None = None
    seconds: float = 0.0
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dialer, self.listener, self.combo)


# ---------------------------------------------------------------------------- redis


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free loopback port; yields ``host:port``."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("interop: redis-server not found (Debian package redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # blocks until redis says it is ready, or exits
            seen.append(line)
            if "Ready to accept connections" in line:
                break
        else:
            raise SystemExit("interop: redis-server did not start:\n" + "".join(seen[-20:]))
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------- processes


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_dialer(
    dialer: subprocess.Popen[bytes], listener: subprocess.Popen[bytes], timeout: float
) -> int | None:
    """Wait for the dialer to exit; stop early when the listener exits first (it failed, or
    said the combination is unsupported), so the dialer is not left waiting for Redis.
    Returns the dialer's exit status, or None when it was stopped."""
    done = threading.Event()

    def watch(proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        done.set()

    for proc in (dialer, listener):
        threading.Thread(target=watch, args=(proc,), daemon=True).start()
    done.wait(timeout)
    if dialer.poll() is None and listener.poll() is not None:
        # the listener ended; give a dialer that already has the address a moment to finish
        try:
            dialer.wait(5 if listener.returncode != EXIT_UNSUPPORTED else 0.5)
        except subprocess.TimeoutExpired:
            pass
    if dialer.poll() is None:
        _stop(dialer)
        return None
    return dialer.returncode


def run_cell(
    cell: Cell,
    dialer: Peer,
    listener: Peer,
    redis_addr: str,
    extras: dict[str, str],
    timeout: float,
    logdir: Path,
) -> None:
    redis = SyncRedis(redis_addr)
    try:
        redis.command("DEL", "listenerAddr")
    finally:
        redis.close()
    base = dict(os.environ)
    base.update(COMBOS[cell.combo])
    base.update(
        {"redis_addr": redis_addr, "ip": "127.0.0.1", "test_timeout_seconds": f"{timeout:g}"}
    )
    stem = f"{cell.dialer}__{cell.listener}__{cell.combo.replace('/', '-')}"
    paths = {
        "listener_out": logdir / f"{stem}.listener.out",
        "listener_err": logdir / f"{stem}.listener.err",
        "dialer_out": logdir / f"{stem}.dialer.out",
        "dialer_err": logdir / f"{stem}.dialer.err",
    }
    cell.logs = {k: str(v) for k, v in paths.items()}
    start = time.monotonic()
    l_env = {**base, **listener.env, "is_dialer": "false"}
    d_env = {**base, **dialer.env, **extras, "is_dialer": "true"}
    with (
        open(paths["listener_out"], "wb") as lo,
        open(paths["listener_err"], "wb") as le,
        open(paths["dialer_out"], "wb") as do,
        open(paths["dialer_err"], "wb") as de,
    ):
        lp = subprocess.Popen(
            ["bash", str(listener.run_sh)], env=l_env, stdout=lo, stderr=le, start_new_session=True
        )
        dp = subprocess.Popen(
            ["bash", str(dialer.run_sh)], env=d_env, stdout=do, stderr=de, start_new_session=True
        )
        try:
            d_rc = _wait_dialer(dp, lp, timeout + 30)
            l_rc = lp.poll()
        finally:
            _stop(dp)
            _stop(lp)
    cell.seconds = round(time.monotonic() - start, 2)
    if l_rc == EXIT_UNSUPPORTED or d_rc == EXIT_UNSUPPORTED:
        side, path = (
            (cell.listener, paths["listener_err"])
            if l_rc == EXIT_UNSUPPORTED
            else (cell.dialer, paths["dialer_err"])
        )
        cell.status, cell.reason = "n/a", f"{side}: {_tail(path, 1).strip()}"
        return
    if d_rc is None:
        cell.status, cell.reason = "fail", f"dialer did not finish within {timeout + 30:g} s"
        return
    if l_rc is not None:
        cell.status, cell.reason = "fail", f"listener exited with {l_rc} before the dialer ended"
        return
    if d_rc != 0:
        cell.status, cell.reason = "fail", f"dialer exited with {d_rc}"
        return
    lines = paths["dialer_out"].read_text(errors="replace").strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        cell.status, cell.reason = "fail", "dialer printed no JSON line"
        return
    cell.result = result
    problems = check_result(result, extras)
    cell.status, cell.reason = ("fail", "; ".join(problems)) if problems else ("pass", "")


def check_result(result: dict[str, Any], extras: dict[str, str]) -> list[str]:
    problems = []
    for name in ("handshakePlusOneRTTMillis", "pingRTTMilllis"):
        if not isinstance(result.get(name), (int, float)):
            problems.append(f"{name} missing")
    if not result.get("agentVersion"):
        problems.append("no identify result (agentVersion)")
    protocols = result.get("protocols") or []
    for proto in ("/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/echo/1.0.0", "/perf/1.0.0"):
        if proto not in protocols:
            problems.append(f"identify lacks {proto}")
    if "echo_bytes" in extras:
        if result.get("echoOk") is not True or result.get("echoBytes") != int(extras["echo_bytes"]):
            problems.append("echo not verified")
    if "perf_upload_bytes" in extras:
        if result.get("perfUploadBytes") != int(extras["perf_upload_bytes"]):
            problems.append("perf upload size wrong")
        if result.get("perfDownloadBytes") != int(extras["perf_download_bytes"]):
            problems.append("perf download size wrong")
    return problems


# ---------------------------------------------------------------------------- gossipsub


class SyncRedis:
    """Blocking RESP client for the runner, on p2pstack's own RESP parser."""

    def __init__(self, addr: str) -> None:
        host, _, port = addr.rpartition(":")
        self.sock = socket.create_connection((host, int(port)))
        self.parser = RespParser()

    def command(self, *args: str, wait: float = 30.0) -> Any:
        self.sock.settimeout(wait + 10)
        self.sock.sendall(encode_command(*args))
        while (reply := self.parser.next_reply()) is RespParser.NEED_DATA:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("redis closed the connection")
            self.parser.feed(data)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def blpop(self, key: str, wait: float) -> str | None:
        reply = self.command("BLPOP", key, f"{wait:g}", wait=wait)
        return None if reply is None else reply[1].decode()

    def close(self) -> None:
        self.sock.close()


@dataclass
class GossipRun:
    name: str
    nodes: list[str]
    links: list[tuple[int, int]]
    status: str = "pending"
    reason: str = ""
    results: list[dict[str, Any] | None] = field(default_factory=list)
    seconds: float = 0.0


def run_gossip(
    run: GossipRun,
    peers: list[Peer],
    connect: list[list[int]],
    redis_addr: str,
    publish: int | list[int],
    timeout: float,
    logdir: Path,
) -> None:
    """Start the nodes one by one (each dials the earlier ones it is linked to), release
    them together, and collect every node's JSON line. ``publish``: messages per node (one
    count for all, or one per node); each node expects everyone else's."""
    n = len(peers)
    counts = publish if isinstance(publish, list) else [publish] * n
    expects = [sum(counts) - counts[i] for i in range(n)]
    redis = SyncRedis(redis_addr)
    redis.command("DEL", "gossipsubPeers", "gossipsubReady", "gossipsubGo")
    procs: list[subprocess.Popen[str]] = []
    lines: list[str | None] = [None] * n
    start = time.monotonic()
    try:
        addrs: list[str] = []
        for i, peer in enumerate(peers):
            env = {
                **os.environ,
                **COMBOS["tcp/noise/yamux"],
                **peer.env,
                "redis_addr": redis_addr,
                "ip": "127.0.0.1",
                "test_timeout_seconds": f"{timeout:g}",
                "gossipsub_topic": "interop",
                "gossipsub_index": str(i),
                "gossipsub_connect": ",".join(addrs[j] for j in connect[i]),
                "gossipsub_publish": str(counts[i]),
                "gossipsub_expect": str(expects[i]),
            }
            err = open(logdir / f"gossip-{run.name}-{i}-{peer.name}.err", "wb")
            proc = subprocess.Popen(
                ["bash", str(peer.run_sh)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
            err.close()
            procs.append(proc)
            addr = redis.blpop("gossipsubPeers", 60)
            if addr is None:
                raise RuntimeError(f"node {i} ({peer.name}) did not publish its address")
            addrs.append(addr)
        for _ in range(n):
            if redis.blpop("gossipsubReady", 60) is None:
                raise RuntimeError("not every node found a peer on the topic")
        # Meshes are built on heartbeats (1 s in go, rust, js and p2pstack): give them two
        # before anyone publishes, or a message can reach a node whose mesh does not yet
        # hold its next hop, and gossip would not repair it (that peer is in the mesh by
        # the time the IHAVEs go out).
        time.sleep(MESH_FORMATION_SECONDS)
        for _ in range(n):
            redis.command("RPUSH", "gossipsubGo", "go")

        def read(i: int, proc: subprocess.Popen[str]) -> None:
            assert proc.stdout is not None
            lines[i] = proc.stdout.readline() or None

        readers = [
            threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)
        ]
        for t in readers:
            t.start()
        for t in readers:
            t.join(timeout + 10)
    except RuntimeError as exc:
        run.status, run.reason = "fail", str(exc)
    finally:
        redis.close()
        for proc in procs:
            _stop(proc)  # type: ignore[arg-type]
    run.seconds = round(time.monotonic() - start, 2)
    run.results = []
    missing = []
    for i, line in enumerate(lines):
        try:
            result = json.loads(line) if line else None
        except ValueError:
            result = None
        run.results.append(result)
        if result is None or result.get("received") != expects[i]:
            got = None if result is None else result.get("received")
            missing.append(f"node {i} ({peers[i].name}) got {got}/{expects[i]}")
    if run.status == "pending":
        run.status, run.reason = ("fail", "; ".join(missing)) if missing else ("pass", "")


def gossip_scenarios(ours: list[Peer], others: list[Peer]) -> list[tuple[str, list[Peer]]]:
    """Lines where p2pstack nodes forward between nodes of another implementation and the
    other way round, a line through every implementation, and a full mesh of everyone."""
    if not others:
        return [("line-p2pstack", [ours[0], ours[-1], ours[0]])]
    scenarios = [(f"line-{other.name}", [other, ours[0], other, ours[-1]]) for other in others]
    if len(others) > 1:
        line: list[Peer] = [ours[0]]
        for k, other in enumerate(others):
            line += [other, ours[(k + 1) % len(ours)]]
        scenarios.append(("line-all", line))
    scenarios.append(("mesh-all", [*ours, *others, *ours]))
    return scenarios


def rate_of(run: GossipRun) -> float | None:
    """Messages per second from the publisher (node 0) until the slowest subscriber had
    them all."""
    subs = run.results[1:]
    if run.status != "pass" or not subs or any(r is None for r in subs):
        return None
    slowest = max(float(r["seconds"]) for r in subs if r is not None)
    expected = subs[0]["expected"] if subs[0] is not None else 0
    return expected / slowest if slowest > 0 else None


def print_rates(runs: list[GossipRun]) -> None:
    print(
        f"\n== gossipsub publish rate: 1 publisher, {RATE_SUBSCRIBERS} subscribers, one "
        "implementation each (star, tcp/noise/yamux) =="
    )
    for run in runs:
        rate = rate_of(run)
        impl = run.results[0].get("implementation") if run.results and run.results[0] else "?"
        shown = f"{rate:8.0f} msgs/s" if rate is not None else f"{run.status}: {run.reason}"
        print(f"  {run.nodes[0]:18} {shown}  [{impl}]")


def print_gossip(runs: list[GossipRun]) -> None:
    print("\n== gossipsub: mixed networks (each node publishes, every node must get all) ==")
    for run in runs:
        print(f"{run.name}: {' - '.join(run.nodes)}  [{run.status}] {run.reason}")
        for i, (name, r) in enumerate(zip(run.nodes, run.results, strict=False)):
            if r is not None:
                print(
                    f"  {i:2} {name:18} received {r.get('received')}/{r.get('expected')}"
                    f" in {_f(r.get('seconds'), 3)} s  [{r.get('implementation')}]"
                )
            else:
                print(f"  {i:2} {name:18} no result")


# ---------------------------------------------------------------------------- build


def build(impl: str, logdir: Path) -> tuple[bool, str, float]:
    start = time.monotonic()
    log = logdir / f"build-{impl}.log"
    with open(log, "wb") as out:
        rc = subprocess.call(
            ["bash", str(HERE / impl / "build.sh")], stdout=out, stderr=subprocess.STDOUT
        )
    seconds = time.monotonic() - start
    return rc == 0, "" if rc == 0 else _tail(log, 15), seconds


# ---------------------------------------------------------------------------- reporting


def load_known_failures(path: Path) -> dict[tuple[str, str, str], str]:
    known: dict[tuple[str, str, str], str] = {}
    if not path.exists():
        return known
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if not line:
            continue
        parts = line.split(None, 3)
        if len(parts) < 4:
            raise SystemExit(f"interop/known-failures: needs evidence: {raw!r}")
        known[(parts[0], parts[1], parts[2])] = parts[3]
    return known


def _f(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def _mib_s(nbytes: Any, seconds: Any) -> str:
    if isinstance(nbytes, int) and isinstance(seconds, (int, float)) and seconds > 0:
        return f"{nbytes / MIB / seconds:.0f}"
    return "-"


def print_matrix(cells: list[Cell]) -> None:
    print("\n== matrix: dialer -> listener, per transport combination ==")
    header = f"{'dialer':<18} {'listener':<18} {'combo':<16} {'result':<14} detail"
    print(header)
    print("-" * len(header))
    for c in cells:
        r = c.result or {}
        if c.status == "pass":
            detail = (
                f"h+1RTT {_f(r.get('handshakePlusOneRTTMillis'))} ms, "
                f"ping {_f(r.get('pingRTTMilllis'), 3)} ms, "
                f"echo {(r.get('echoBytes') or 0) / MIB:g} MiB ok, perf up "
                f"{_mib_s(r.get('perfUploadBytes'), r.get('perfUploadSeconds'))} / down "
                f"{_mib_s(r.get('perfDownloadBytes'), r.get('perfDownloadSeconds'))} MiB/s "
                f"[{r.get('agentVersion')}]"
            )
        else:
            detail = c.reason
        print(f"{c.dialer:<18} {c.listener:<18} {c.combo:<16} {c.status:<14} {detail}")


def print_self(cells: list[Cell]) -> None:
    print(f"\n== self-comparison: each implementation against itself, {cells[0].combo} ==")
    header = (
        f"{'implementation':<40} {'h+1RTT ms (med of 20)':>22} {'ping RTT ms (med of 100)':>25}"
        f" {'perf up MiB/s':>14} {'perf down MiB/s':>16}"
    )
    print(header)
    print("-" * len(header))
    for c in cells:
        r = c.result or {}
        name = f"{c.dialer} ({r.get('implementation') or '?'})"
        if c.status != "pass":
            print(f"{name:<40} {c.status}: {c.reason}")
            continue
        print(
            f"{name:<40} {_f(r.get('handshakePlusOneRTTMillis')):>22} "
            f"{_f(r.get('pingRTTMilllis'), 3):>25} "
            f"{_mib_s(r.get('perfUploadBytes'), r.get('perfUploadSeconds')):>14} "
            f"{_mib_s(r.get('perfDownloadBytes'), r.get('perfDownloadSeconds')):>16}"
        )


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impls", default=",".join(OTHERS))
    parser.add_argument("--backends", default="trio,asyncio")
    parser.add_argument("--combos", default=",".join(COMBOS))
    parser.add_argument("--no-matrix", action="store_true")
    parser.add_argument("--no-self", action="store_true")
    parser.add_argument(
        "--self-combos",
        default="tcp/noise/yamux,quic-v1",
        help="combinations of the self-comparison (each implementation against itself)",
    )
    parser.add_argument("--no-gossipsub", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small sizes, few samples")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--results", default=str(HERE / "results.json"))
    args = parser.parse_args(argv)

    impls = [i for i in args.impls.split(",") if i]
    for impl in impls:
        if impl not in OTHERS:
            parser.error(f"unknown implementation {impl!r}")
    ours, others = peers_for(impls, [b for b in args.backends.split(",") if b])
    combos = [c for c in args.combos.split(",") if c]
    known = load_known_failures(HERE / "known-failures")
    logdir = Path(tempfile.mkdtemp(prefix="p2pstack-interop-"))
    print(f"interop: logs in {logdir}", flush=True)

    builds: dict[str, dict[str, Any]] = {}
    for impl in ["p2pstack", *impls]:
        ok, why, seconds = build(impl, logdir)
        builds[impl] = {"ok": ok, "seconds": round(seconds, 1), "error": why}
        print(f"interop: build {impl}: {'ok' if ok else 'FAILED'} in {seconds:.1f} s", flush=True)
        if not ok:
            print(why, file=sys.stderr)

    echo = str(1 * MIB if args.quick else 16 * MIB)
    perf_n = str(4 * MIB if args.quick else 64 * MIB)
    matrix_extras = {
        "ping_count": "3",
        "echo_bytes": echo,
        "perf_upload_bytes": perf_n,
        "perf_download_bytes": perf_n,
    }
    self_perf = str(16 * MIB if args.quick else 256 * MIB)
    self_extras = {
        "handshake_count": "3" if args.quick else "20",
        "ping_count": "10" if args.quick else "100",
        "perf_upload_bytes": self_perf,
        "perf_download_bytes": self_perf,
    }

    # py-libp2p's QUIC moves a few MiB/s: a smaller transfer keeps CI's run short.
    quic_self_perf = str(16 * MIB if args.quick else 64 * MIB)
    quic_self_extras = {
        **self_extras,
        "perf_upload_bytes": quic_self_perf,
        "perf_download_bytes": quic_self_perf,
    }

    matrix: list[Cell] = []
    selfs: list[Cell] = []
    with redis_server() as redis_addr:
        if not args.no_matrix:
            for other in others:
                for combo in combos:
                    for us in ours:
                        for dialer, listener in ((us, other), (other, us)):
                            cell = Cell(dialer.name, listener.name, combo)
                            matrix.append(cell)
                            failed_builds = [
                                p.impl for p in (dialer, listener) if not builds[p.impl]["ok"]
                            ]
                            if failed_builds:
                                cell.status = "fail"
                                cell.reason = f"build failed: {', '.join(failed_builds)}"
                            else:
                                run_cell(
                                    cell,
                                    dialer,
                                    listener,
                                    redis_addr,
                                    matrix_extras,
                                    args.timeout,
                                    logdir,
                                )
                            print(
                                f"interop: {cell.dialer} -> {cell.listener} [{combo}]: "
                                f"{cell.status} {cell.reason} ({cell.seconds} s)",
                                flush=True,
                            )
        if not args.no_self:
            for combo in [c for c in args.self_combos.split(",") if c]:
                extras = self_extras if combo != "quic-v1" else quic_self_extras
                for peer in [*ours, *others]:
                    cell = Cell(peer.name, peer.name, combo)
                    selfs.append(cell)
                    if not builds[peer.impl]["ok"]:
                        cell.status, cell.reason = "fail", "build failed"
                    else:
                        run_cell(cell, peer, peer, redis_addr, extras, args.timeout * 2, logdir)
                    print(
                        f"interop: self {peer.name} [{combo}]: {cell.status} {cell.reason}"
                        f" ({cell.seconds} s)",
                        flush=True,
                    )

        gossip_runs: list[GossipRun] = []
        if not args.no_gossipsub:
            gossip_peers = [p for p in others if p.impl in GOSSIPSUB_IMPLS]
            for name, nodes in gossip_scenarios(ours, gossip_peers):
                if name.startswith("line"):
                    connect = [[i - 1] if i else [] for i in range(len(nodes))]
                else:
                    connect = [list(range(i)) for i in range(len(nodes))]
                links = [(j, i) for i, c in enumerate(connect) for j in c]
                run = GossipRun(name, [p.name for p in nodes], links)
                gossip_runs.append(run)
                broken = [p.impl for p in nodes if not builds[p.impl]["ok"]]
                if broken:
                    run.status, run.reason = "fail", f"build failed: {', '.join(broken)}"
                else:
                    run_gossip(run, nodes, connect, redis_addr, 3, args.timeout, logdir)
                print(f"interop: gossipsub {name}: {run.status} {run.reason} ({run.seconds} s)")

        rate_runs: list[GossipRun] = []
        if not args.no_gossipsub and not args.no_self:
            messages = 30 if args.quick else RATE_MESSAGES
            for peer in [*ours, *(p for p in others if p.impl in GOSSIPSUB_IMPLS)]:
                nodes = [peer] * (1 + RATE_SUBSCRIBERS)
                connect = [[]] + [[0]] * RATE_SUBSCRIBERS
                run = GossipRun(f"rate-{peer.name}", [p.name for p in nodes], [])
                rate_runs.append(run)
                if not builds[peer.impl]["ok"]:
                    run.status, run.reason = "fail", "build failed"
                else:
                    counts = [messages] + [0] * RATE_SUBSCRIBERS
                    run_gossip(run, nodes, connect, redis_addr, counts, args.timeout, logdir)
                print(f"interop: gossipsub {run.name}: {run.status} {run.reason} ({run.seconds} s)")

    failed = sum(1 for r in gossip_runs + rate_runs if r.status == "fail")
    for cell in matrix + selfs:
        if cell.status == "fail" and cell.key in known:
            cell.status, cell.reason = "known-failure", f"{cell.reason} [{known[cell.key]}]"
        elif cell.status == "pass" and cell.key in known:
            print(f"interop: note: {cell.key} is listed in known-failures but passed")
        if cell.status == "fail":
            failed += 1
            print(f"\n--- FAILED {cell.dialer} -> {cell.listener} [{cell.combo}]: {cell.reason}")
            for name in ("dialer_err", "listener_err"):
                print(f"  {name} ({cell.logs.get(name)}):")
                for line in _tail(Path(cell.logs.get(name, "/nonexistent")), 12).splitlines():
                    print(f"    {line}")

    if matrix:
        print_matrix(matrix)
    if gossip_runs:
        print_gossip(gossip_runs)
    if rate_runs:
        print_rates(rate_runs)
    for combo in dict.fromkeys(c.combo for c in selfs):
        print_self([c for c in selfs if c.combo == combo])
        _self_ratios([c for c in selfs if c.combo == combo])
    Path(args.results).write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "builds": builds,
                "matrix": [_cell_json(c) for c in matrix],
                "self": [_cell_json(c) for c in selfs],
                "gossipsub": [
                    {
                        "name": r.name,
                        "nodes": r.nodes,
                        "links": r.links,
                        "status": r.status,
                        "reason": r.reason,
                        "results": r.results,
                    }
                    for r in gossip_runs
                ],
                "gossipsub_rate": [
                    {
                        "name": r.name,
                        "status": r.status,
                        "reason": r.reason,
                        "msgs_per_s": rate_of(r),
                        "results": r.results,
                    }
                    for r in rate_runs
                ],
            },
            indent=2,
        )
        + "\n"
    )
    total = len(matrix) + len(selfs) + len(gossip_runs) + len(rate_runs)
    print(f"\ninterop: {total} cells, {failed} failed; results in {args.results}")
    return 1 if failed else 0


def _self_ratios(cells: list[Cell]) -> None:
    mine = next((c for c in cells if c.dialer == "p2pstack" and c.status == "pass"), None)
    if mine is None or mine.result is None:
        return
    r0 = mine.result
    print(
        f"\np2pstack (trio) relative to each over {mine.combo}"
        " (h+1RTT and ping: lower is better, perf: higher)"
    )
    for c in cells:
        if c is mine or c.status != "pass" or c.result is None:
            continue
        r = c.result

        def ratio(a: Any, b: Any) -> str:
            ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0
            return f"{a / b:.2f}x" if ok else "-"

        up = [
            x.get("perfUploadBytes", 0) / max(x.get("perfUploadSeconds", 0) or 1e-9, 1e-9)
            for x in (r0, r)
        ]
        down = [
            x.get("perfDownloadBytes", 0) / max(x.get("perfDownloadSeconds", 0) or 1e-9, 1e-9)
            for x in (r0, r)
        ]
        print(
            f"  vs {c.dialer + ' (' + str(r.get('implementation')) + ')':<40} h+1RTT "
            f"{ratio(r0.get('handshakePlusOneRTTMillis'), r.get('handshakePlusOneRTTMillis'))}"
            f", ping {ratio(r0.get('pingRTTMilllis'), r.get('pingRTTMilllis'))}, perf up "
            f"{ratio(*up)}, perf down {ratio(*down)}"
        )


def _cell_json(c: Cell) -> dict[str, Any]:
    return {
        "dialer": c.dialer,
        "listener": c.listener,
        "combo": c.combo,
        "status": c.status,
        "reason": c.reason,
        "seconds": c.seconds,
        "result": c.result,
    }


if __name__ == "__main__":
    sys.exit(main())
