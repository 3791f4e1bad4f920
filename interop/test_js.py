"""Interop with a real js-libp2p 3.3.11 node (interop/js/peer.mjs), both directions.

Run with ``make interop-js`` (builds the js peer, then runs this file) or directly::

    .venv/bin/python -m pytest -q -s interop/test_js.py -p no:cacheprovider

Every process runs on 127.0.0.1 with bounded timeouts and is terminated at teardown. The
js peer is built by ``interop/js/build.sh``; if that fails (no npm, no registry) the tests
fail rather than skip, because this file is the proof of interop. ``-s`` shows the measured
figures. Set ``DEBUG='libp2p:*'`` (or ``'*yamux*'``) to get js-libp2p's logs in the
failure messages; set ``P2PSTACK_INTEROP_VERBOSE=1`` to run p2pstack with ``-v``.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

HERE = Path(__file__).resolve().parent
JS_DIR = HERE / "js"
BACKENDS = ["trio", "asyncio"]

PING_COUNT = 3
ECHO_BYTES = 16 * 2**20
PERF_BYTES = 64 * 2**20
MIB = 2**20

BUILD_TIMEOUT = 900  # a cold `npm install` downloads the Node 22 binary
START_TIMEOUT = 30  # until a listener prints its addresses
RUN_TIMEOUT = 180  # one client run
STOP_TIMEOUT = 5  # after SIGTERM, before SIGKILL

P2PSTACK_PROTOCOLS = ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/echo/1.0.0", "/perf/1.0.0"]
JS_PROTOCOLS = ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/echo/1.0.0", "/perf/1.0.0"]


# ---------------------------------------------------------------------------- commands


def p2pstack_cmd(backend: str) -> list[str]:
    script = Path(sys.executable).parent / "p2pstack"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "p2pstack.cli"]
    verbose = ["-v"] if os.environ.get("P2PSTACK_INTEROP_VERBOSE") else []
    return [*base, "--backend", backend, *verbose]


def js_cmd() -> list[str]:
    return ["bash", str(JS_DIR / "run-peer.sh")]


@functools.cache
def _build_js_peer() -> str | RuntimeError:
    """Run build.sh once per session: the node binary path, or the error (not retried)."""
    try:
        return _run_build_sh()
    except RuntimeError as exc:
        return exc  # cached: a failed build is not retried by every test


def _run_build_sh() -> str:
    if shutil.which("bash") is None:
        raise RuntimeError("bash not found")
    try:
        proc = subprocess.run(
            ["bash", str(JS_DIR / "build.sh")],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"interop/js/build.sh timed out after {BUILD_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"interop/js/build.sh failed with status {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return proc.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------------------- processes


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the process group we created, then SIGKILL it if it lingers.

    Only while the leader is unreaped: its pid (= the group id) is then still ours.
    run-peer.sh execs node and p2pstack is one process, so there are no grandchildren.
    """
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(STOP_TIMEOUT)


class Listener:
    """A long-running listener process whose stdout lines are read by a thread."""

    def __init__(self, name: str, argv: list[str], stderr_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.stderr_path = stderr_dir / f"{name}.stderr"
        self.maddr = ""
        self._stderr = open(self.stderr_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def read_addrs(self, done: Callable[[str, list[str]], bool]) -> list[str]:
        """Collect stdout lines that are multiaddrs until ``done(line, addrs)``."""
        deadline = time.monotonic() + START_TIMEOUT
        addrs: list[str] = []
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"{self.name}: no listen address within {START_TIMEOUT} s\n{self.stderr()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"{self.name} exited ({self.proc.wait()}) before it was ready\n{self.stderr()}"
                )
            if line.startswith("/"):
                addrs.append(line)
            if done(line, addrs):
                return addrs

    def stderr(self) -> str:
        self._stderr.flush()
        return f"--- {self.name} stderr (tail) ---\n{_tail(self.stderr_path)}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        _stop(self.proc)
        self._stderr.close()


def loopback_addr(addrs: list[str]) -> str:
    for a in addrs:
        if a.startswith("/ip4/127.0.0.1/tcp/") and "/p2p/" in a:
            return a
    raise AssertionError(f"no /ip4/127.0.0.1/tcp/.../p2p/... address in {addrs}")


class Run:
    """A finished client process."""

    def __init__(self, name: str, argv: list[str], code: int, out: str, err: str) -> None:
        self.name, self.argv, self.code, self.out, self.err = name, argv, code, out, err

    def describe(self) -> str:
        return (
            f"{self.name}: {' '.join(self.argv)}\nexit status {self.code}\n"
            f"--- stdout ---\n{self.out[-4000:]}\n--- stderr (tail) ---\n{self.err[-6000:]}"
        )

    def last_json(self) -> dict[str, Any]:
        for line in reversed(self.out.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    return obj
        raise AssertionError(f"no JSON object on stdout\n{self.describe()}")


class Client:
    """A client process started now and collected by ``result()`` (bounded, always reaped)."""

    def __init__(self, name: str, argv: list[str], timeout: float = RUN_TIMEOUT) -> None:
        self.name, self.argv, self.timeout = name, argv, timeout
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def result(self) -> Run:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _stop(self.proc)
            out, err = self.proc.communicate()
            err += f"\n[test] killed after {self.timeout} s"
            return Run(self.name, self.argv, -1, out, err)
        finally:
            _stop(self.proc)
        return Run(self.name, self.argv, self.proc.returncode, out, err)


def run(name: str, argv: list[str], timeout: float = RUN_TIMEOUT) -> Run:
    return Client(name, argv, timeout).result()


def ok_json(r: Run) -> dict[str, Any]:
    assert r.code == 0, r.describe()
    return r.last_json()


def mib_per_s(nbytes: float, seconds: float) -> float:
    return nbytes / MIB / seconds if seconds > 0 else float("inf")


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def js_node() -> str:
    result = _build_js_peer()
    if isinstance(result, RuntimeError):
        pytest.fail(f"js peer unavailable, interop cannot be checked: {result}", pytrace=False)
    return result


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="p2pstack-interop-js-") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def listeners(workdir: Path) -> Iterator[dict[str, Listener]]:
    started: dict[str, Listener] = {}
    yield started
    for listener in started.values():
        listener.stop()


def _p2pstack_listener(listeners: dict[str, Listener], workdir: Path, backend: str) -> str:
    name = f"p2pstack-listen-{backend}"
    if name not in listeners:
        listeners[name] = Listener(
            name,
            [*p2pstack_cmd(backend), "listen", "--listen", "/ip4/127.0.0.1/tcp/0"],
            workdir,
        )
        listeners[name].maddr = loopback_addr(
            listeners[name].read_addrs(lambda _line, addrs: bool(addrs))
        )
    assert listeners[name].alive(), f"{name} died\n{listeners[name].stderr()}"
    return listeners[name].maddr


@pytest.fixture(scope="module")
def p2pstack_listener(listeners: dict[str, Listener], workdir: Path) -> Callable[[str], str]:
    """``p2pstack_listener(backend)`` -> multiaddr of a ``p2pstack listen`` (one per backend)."""
    return functools.partial(_p2pstack_listener, listeners, workdir)


@pytest.fixture(scope="module")
def js_listener(js_node: str, listeners: dict[str, Listener], workdir: Path) -> str:
    name = "js-listen"
    # js's own default of 2 inbound ping streams per connection (the peer's default is 16):
    # p2pstack must stay within it even while js's connection monitor pings it
    listeners[name] = Listener(
        name,
        [*js_cmd(), "listen", "--listen", "/ip4/127.0.0.1/tcp/0", "--max-ping-streams", "2"],
        workdir,
    )
    addrs = listeners[name].read_addrs(lambda line, _addrs: line == "READY")
    return loopback_addr(addrs)


@pytest.fixture
def listener_logs(listeners: dict[str, Listener]) -> Callable[[], str]:
    return lambda: "\n".join(lst.stderr() for lst in listeners.values())


# ---------------------------------------------------------------------------- tests


def test_js_peer_builds() -> None:
    """build.sh must work: without the js peer there is no interop proof (fail, not skip)."""
    result = _build_js_peer()
    if isinstance(result, RuntimeError):
        pytest.fail(str(result), pytrace=False)
    node = result
    assert Path(node).is_file(), node
    print(f"\njs peer node binary: {node}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_js_dials_p2pstack(
    backend: str,
    js_node: str,
    p2pstack_listener: Callable[[str], str],
    listener_logs: Callable[[], str],
) -> None:
    """js dials ``p2pstack listen``: ping x3, identify, 16 MiB echo, 64 MiB perf each way."""
    maddr = p2pstack_listener(backend)
    r = run(
        f"js dial -> p2pstack[{backend}]",
        [
            *js_cmd(),
            "dial",
            maddr,
            "--ping-count",
            str(PING_COUNT),
            "--echo-bytes",
            str(ECHO_BYTES),
            "--perf-upload",
            str(PERF_BYTES),
            "--perf-download",
            str(PERF_BYTES),
            "--timeout",
            str(RUN_TIMEOUT - 10),
        ],
    )
    why = f"{r.describe()}\n{listener_logs()}"
    assert r.code == 0, why
    out = r.last_json()

    assert maddr.endswith("/p2p/" + out["remote_peer"]), why
    assert out["muxer"] == "/yamux/1.0.0", why
    assert out["encryption"] == "/noise", why
    # ping
    assert len(out["ping_rtts_ms"]) == PING_COUNT, why
    # identify (of p2pstack, as js parsed it)
    assert str(out["agent_version"]).startswith("p2pstack/"), why
    for proto in P2PSTACK_PROTOCOLS:
        assert proto in out["protocols"], f"{proto} missing\n{why}"
    assert out["observed_addr"], f"no observed_addr\n{why}"
    assert out["observed_addr"].startswith("/ip4/127.0.0.1/tcp/"), why
    assert out["listen_addrs"], why
    # js's identify reader ends at EOF: had p2pstack not closed its write side after the
    # Identify message, js would have waited for its 5 s identify timeout
    assert out["identify_ms"] is not None and out["identify_ms"] < 4000, why
    # echo
    assert out["echo_bytes"] == ECHO_BYTES and out["echo_ok"] is True, why
    # perf
    assert out["perf_ok"] is True, why
    assert out["perf_upload"] == PERF_BYTES and out["perf_download"] == PERF_BYTES, why

    print(
        f"\n[js -> p2pstack/{backend}] ping rtts {out['ping_rtts_ms']} ms;"
        f" identify in {out['identify_ms']} ms from dial, agent {out['agent_version']!r},"
        f" observed {out['observed_addr']};"
        f"\n  echo {ECHO_BYTES // MIB} MiB in {out['echo_seconds']:.3f} s"
        f" ({mib_per_s(ECHO_BYTES, out['echo_seconds']):.1f} MiB/s each way);"
        f" perf {PERF_BYTES // MIB} MiB up + {PERF_BYTES // MIB} MiB down in"
        f" {out['perf_seconds']:.3f} s ({mib_per_s(2 * PERF_BYTES, out['perf_seconds']):.1f}"
        " MiB/s)"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_p2pstack_dials_js(
    backend: str, js_listener: str, listener_logs: Callable[[], str]
) -> None:
    """``p2pstack ping|echo|perf`` against the js listener."""
    cmd = p2pstack_cmd(backend)

    r = run(
        f"p2pstack[{backend}] ping -> js", [*cmd, "ping", js_listener, "--count", "3", "--json"]
    )
    why = f"{r.describe()}\n{listener_logs()}"
    p = ok_json(r)
    assert js_listener.endswith("/p2p/" + p["remote_peer"]), why
    assert len(p["rtts_ms"]) == 3, why
    assert str(p["agent_version"]).startswith("js-libp2p/"), why
    for proto in JS_PROTOCOLS:
        assert proto in p["protocols"], f"{proto} missing\n{why}"
    assert p["observed_addr"], f"no observed_addr\n{why}"
    assert p["observed_addr"].startswith("/ip4/127.0.0.1/tcp/"), why
    assert p["listen_addrs"], why
    # js signs its addresses (RFC 0003); p2pstack verified the envelope it sent.
    assert p["peer_record_addrs"], f"no verified signed peer record from js\n{why}"
    assert js_listener.rsplit("/p2p/", 1)[0] in p["peer_record_addrs"], why

    r = run(
        f"p2pstack[{backend}] echo -> js",
        [*cmd, "echo", js_listener, "--bytes", str(ECHO_BYTES), "--json"],
    )
    why = f"{r.describe()}\n{listener_logs()}"
    e = ok_json(r)
    assert e["echo_ok"] is True and e["echo_bytes"] == ECHO_BYTES, why

    r = run(
        f"p2pstack[{backend}] perf -> js",
        [
            *cmd,
            "perf",
            js_listener,
            "--upload-bytes",
            str(PERF_BYTES),
            "--download-bytes",
            str(PERF_BYTES),
            "--json",
        ],
    )
    why = f"{r.describe()}\n{listener_logs()}"
    f = ok_json(r)
    assert f["upload_bytes"] == PERF_BYTES and f["download_bytes"] == PERF_BYTES, why

    print(
        f"\n[p2pstack/{backend} -> js] handshake+1 RTT {p['handshake_plus_one_rtt_ms']:.1f} ms,"
        f" ping rtts {p['rtts_ms']} ms (median {p['rtt_ms_median']:.2f});"
        f" agent {p['agent_version']!r}, observed {p['observed_addr']};"
        f"\n  echo {ECHO_BYTES // MIB} MiB in {e['echo_seconds']:.3f} s"
        f" ({mib_per_s(ECHO_BYTES, e['echo_seconds']):.1f} MiB/s each way);"
        f" perf {PERF_BYTES // MIB} MiB up + {PERF_BYTES // MIB} MiB down in"
        f" {f['seconds']:.3f} s ({f['mib_per_s']:.1f} MiB/s)"
    )


# A p2pstack dialer that keeps its connection to the js listener until js's connection
# monitor has pinged it over that connection, then checks the connection is still the same
# live one and pings back on it. Exit status 0 on success; one JSON line on stdout.
HOLD_SCRIPT = r"""
import json, sys
import anyio
from p2pstack.host import Host
from p2pstack.protocols import ping

async def main(maddr: str, wait: float) -> int:
    monitor_pings = 0
    pinged = anyio.Event()

    async def counting_ping(stream):
        nonlocal monitor_pings
        try:
            await ping.handle_ping(stream)
        finally:
            monitor_pings += 1
            pinged.set()

    async with Host() as host:
        host.set_stream_handler(
            ping.PROTOCOL_ID, counting_ping, max_inbound_per_peer=ping.MAX_INBOUND_STREAMS_PER_PEER
        )
        start = anyio.current_time()
        peer = await host.connect(maddr)
        conn = host.connections(peer)[0]
        with anyio.move_on_after(wait):
            await pinged.wait()
        out = {"monitor_pings": monitor_pings,
               "monitor_wait_seconds": round(anyio.current_time() - start, 3)}
        await anyio.sleep(0.3)  # let a late abort land
        out["alive_after_monitor"] = (not conn.is_closed) and host.connections(peer) == [conn]
        if monitor_pings and out["alive_after_monitor"]:
            out["ping_after_monitor_ms"] = round((await host.ping(peer))[0] * 1000, 3)
            out["same_connection"] = (not conn.is_closed) and host.connections(peer) == [conn]
        print(json.dumps(out), flush=True)
        return 0 if monitor_pings and out.get("same_connection") else 1

sys.exit(anyio.run(main, sys.argv[1], float(sys.argv[2]), backend=sys.argv[3]))
"""

MONITOR_WAIT = 12  # js pings every connection every 10 s, counted from its node's start


def test_connection_survives_js_connection_monitor(
    js_node: str,
    js_listener: str,
    p2pstack_listener: Callable[[str], str],
    listener_logs: Callable[[], str],
) -> None:
    """js-libp2p pings every connection every 10 s on a ping stream it does not half-close
    first, and aborts the connection if that fails. Both directions, both backends, run
    concurrently (about 11 s in all)."""
    clients: list[Client] = []
    try:
        results = _start_monitor_clients(clients, js_listener, p2pstack_listener)
    finally:
        for c in clients:
            _stop(c.proc)
    lines = []
    for r in results:
        why = f"{r.describe()}\n{listener_logs()}"
        assert r.code == 0, why
        out = r.last_json()
        if "monitor_rtt_ms" in out:
            assert out["status_after_monitor"] == "open", why
            lines.append(
                f"  {r.name}: monitor ping after {out['monitor_wait_seconds']:.1f} s,"
                f" monitor rtt {out['monitor_rtt_ms']} ms, ping after it"
                f" {out['ping_after_monitor_ms']} ms"
            )
        else:
            assert out["monitor_pings"] >= 1 and out["same_connection"] is True, why
            lines.append(
                f"  {r.name}: {out['monitor_pings']} monitor ping(s) served after"
                f" {out['monitor_wait_seconds']:.1f} s, ping after it"
                f" {out['ping_after_monitor_ms']} ms"
            )
    print("\n[connection monitor]\n" + "\n".join(lines))


def _start_monitor_clients(
    clients: list[Client], js_listener: str, p2pstack_listener: Callable[[str], str]
) -> list[Run]:
    for backend in BACKENDS:
        clients.append(
            Client(
                f"js dial --await-monitor -> p2pstack[{backend}]",
                [
                    *js_cmd(),
                    "dial",
                    p2pstack_listener(backend),
                    "--ping-count",
                    "1",
                    "--await-monitor",
                    str(MONITOR_WAIT),
                    "--timeout",
                    str(MONITOR_WAIT + 20),
                ],
                timeout=MONITOR_WAIT + 30,
            )
        )
        clients.append(
            Client(
                f"p2pstack[{backend}] hold -> js",
                [sys.executable, "-c", HOLD_SCRIPT, js_listener, str(MONITOR_WAIT), backend],
                timeout=MONITOR_WAIT + 30,
            )
        )
    return [c.result() for c in clients]
