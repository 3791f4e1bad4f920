"""The CLI as other tools drive it: a `p2pstack listen` process and client processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "p2pstack.cli"]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[str]:
    key = tmp_path / "listener.key"
    proc = subprocess.Popen(
        [*CLI, "listen", "--key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("/ip4/127.0.0.1/tcp/"), line
        expected_id = subprocess.run(
            [*CLI, "id", "--key", str(key)], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert line.endswith(f"/p2p/{expected_id}")
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_ping_json(listener: str, backend: str) -> None:
    result = run("--backend", backend, "ping", listener, "--count", "3", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seq"] for line in lines[:-1]] == [0, 1, 2]
    summary = lines[-1]
    assert listener.endswith(summary["remote_peer"])
    assert summary["agent_version"].startswith("p2pstack/")
    assert {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/echo/1.0.0", "/perf/1.0.0"} <= set(
        summary["protocols"]
    )
    assert 0 < summary["rtt_ms_median"] <= summary["handshake_plus_one_rtt_ms"]
    assert summary["observed_addr"].startswith("/ip4/127.0.0.1/tcp/")


def test_echo_and_perf(listener: str) -> None:
    result = run("echo", listener, "--bytes", str(3 << 20), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["echo_ok"] is True
    result = run(
        "perf", listener, "--upload-bytes", "5000000", "--download-bytes", "3000001", "--json"
    )
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["upload_bytes"] == 5000000 and last["download_bytes"] == 3000001
    assert last["seconds"] > 0 and last["mib_per_s"] > 0


def test_ping_wrong_peer_id_fails(listener: str) -> None:
    other = run("id").stdout.strip()
    wrong = listener.rsplit("/p2p/", 1)[0] + f"/p2p/{other}"
    result = run("ping", wrong, "--json")
    assert result.returncode == 1
    assert "PeerIDMismatch" in result.stderr


def test_ping_nothing_listening_fails() -> None:
    result = run("ping", "/ip4/127.0.0.1/tcp/1", "--count", "1")
    assert result.returncode == 1
    assert "DialError" in result.stderr


def test_pubsub_chat_between_two_processes() -> None:
    receiver = subprocess.Popen(
        [*CLI, "pubsub", "--topic", "chat", "--listen", "/ip4/127.0.0.1/tcp/0", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None and receiver.stdin is not None
        addr = receiver.stdout.readline().strip()
        assert addr.startswith("/ip4/127.0.0.1/tcp/") and "/p2p/" in addr
        sender = subprocess.run(
            [*CLI, "pubsub", "--topic", "chat", "--connect", addr, "--publish", "first"],
            input="hello\nwörld\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sender.returncode == 0, sender.stderr
        lines = [json.loads(receiver.stdout.readline()) for _ in range(3)]
        assert [m["data"] for m in lines] == ["first", "hello", "wörld"]
        assert {m["topic"] for m in lines} == {"chat"}
        assert len({m["id"] for m in lines}) == 3
        assert lines[0]["from"] == lines[0]["received_from"]
        receiver.stdin.close()  # stdin ends: the receiver exits
        assert receiver.wait(timeout=30) == 0
        assert "Traceback" not in (receiver.stderr.read() if receiver.stderr else "")
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def test_security_choice(tmp_path: Path) -> None:
    """A default listener accepts TLS and Noise; a TLS-only listener refuses a Noise-only
    dialer (multistream says `na`), and the dialer exits 1 with the reason."""
    tls_only = subprocess.Popen(
        [*CLI, "--security", "tls", "listen"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert tls_only.stdout is not None
        addr = tls_only.stdout.readline().strip()
        ok = run("--security", "tls", "ping", addr, "--count", "1", "--json")
        assert ok.returncode == 0, ok.stderr
        refused = run("--security", "noise", "ping", addr, "--count", "1")
        assert refused.returncode == 1
        assert "DialError" in refused.stderr or "ProtocolNotSupported" in refused.stderr
        both = run("ping", addr, "--count", "1")  # default: Noise, then TLS
        assert both.returncode == 0, both.stderr
    finally:
        tls_only.terminate()
        tls_only.wait(timeout=10)
