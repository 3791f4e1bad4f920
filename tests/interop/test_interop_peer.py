"""The p2pstack test-plans peer: configuration, the in-process listener/dialer pair, and
two processes (one per backend) meeting through a Redis stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import anyio
import pytest

from p2pstack.errors import ConfigError
from p2pstack.interop import peer
from p2pstack.interop.peer import InteropConfig, Unsupported

from .fake_redis import FakeRedis

pytestmark = pytest.mark.anyio

TCP = {"transport": "tcp", "security": "noise", "muxer": "yamux"}


def test_config_defaults_and_extras() -> None:
    c = InteropConfig.from_env({**TCP, "is_dialer": "true"})
    assert (c.ip, c.redis_addr, c.timeout_seconds) == ("0.0.0.0", "redis:6379", 180.0)
    assert (c.handshake_count, c.ping_count, c.echo_bytes) == (1, 1, None)
    assert c.perf_upload_bytes is None and c.perf_download_bytes is None
    c = InteropConfig.from_env(
        {**TCP, "is_dialer": "false", "perf_upload_bytes": "5", "HANDSHAKE_COUNT": "3"}
    )
    assert not c.is_dialer
    assert (c.perf_upload_bytes, c.perf_download_bytes, c.handshake_count) == (5, 0, 3)


@pytest.mark.parametrize(
    "env",
    [
        {"is_dialer": "true"},
        {**TCP, "is_dialer": "maybe"},
        {**TCP, "is_dialer": "true", "ping_count": "0"},
        {**TCP, "is_dialer": "true", "echo_bytes": "lots"},
        {**TCP, "is_dialer": "true", "test_timeout_seconds": "soon"},
    ],
)
def test_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        InteropConfig.from_env(env)


@pytest.mark.parametrize(
    "env",
    [
        {"transport": "webtransport"},
        {**TCP, "security": "plaintext"},
        {**TCP, "muxer": "mplex"},
    ],
)
def test_unsupported_combinations_exit_2(env: dict[str, str]) -> None:
    config = InteropConfig.from_env({**env, "is_dialer": "true"})
    with pytest.raises(Unsupported):
        config.check_supported()
    # main() says so before it touches Redis (there is none at this address)
    assert peer.main({**env, "is_dialer": "true", "redis_addr": "127.0.0.1:1"}) == 2


@pytest.mark.parametrize("security", ["noise", "tls", "quic-v1"])
async def test_listener_and_dialer_in_process(security: str) -> None:
    """``security`` names the combination: Noise or TLS over TCP, or QUIC."""
    fake = FakeRedis()
    combination = (
        {"transport": "quic-v1"} if security == "quic-v1" else {**TCP, "security": security}
    )
    async with fake.running() as addr, anyio.create_task_group() as tg:
        base = {
            **combination,
            "redis_addr": addr,
            "ip": "127.0.0.1",
            "test_timeout_seconds": "30",
        }
        tg.start_soon(peer.run_listener, InteropConfig.from_env({**base, "is_dialer": "false"}))
        dialer = InteropConfig.from_env(
            {
                **base,
                "is_dialer": "true",
                "handshake_count": "3",
                "ping_count": "4",
                "echo_bytes": "300000",
                "perf_upload_bytes": "200000",
                "perf_download_bytes": "100000",
            }
        )
        with anyio.fail_after(20):
            result = await peer.run_dialer(dialer)
        tg.cancel_scope.cancel()
    assert len(result["handshakePlusOneRTTsMillis"]) == 3
    assert len(result["pingRTTsMillis"]) == 4
    assert result["pingRTTMilllis"] > 0 and result["handshakePlusOneRTTMillis"] > 0
    assert result["agentVersion"].startswith("p2pstack/")
    assert {"/ipfs/ping/1.0.0", "/echo/1.0.0", "/perf/1.0.0"} <= set(result["protocols"])
    assert result["echoOk"] is True and result["echoBytes"] == 300000
    assert (result["perfUploadBytes"], result["perfDownloadBytes"]) == (200000, 100000)
    assert result["perfUploadSeconds"] >= 0 and result["perfDownloadSeconds"] >= 0
    assert sorted(c[0] for c in fake.commands) == [b"BLPOP", b"RPUSH"]


async def test_dialer_without_listener_fails_when_blpop_times_out() -> None:
    fake = FakeRedis()
    async with fake.running() as addr:
        config = InteropConfig.from_env(
            {**TCP, "redis_addr": addr, "is_dialer": "true", "test_timeout_seconds": "0.2"}
        )
        with pytest.raises(Exception, match="no listener address"):
            await peer.run_dialer(config)


async def test_two_processes_trio_listener_asyncio_dialer() -> None:
    fake = FakeRedis()
    async with fake.running() as addr:
        env = {**os.environ, **TCP, "redis_addr": addr, "ip": "0.0.0.0"}
        cmd = [sys.executable, "-m", "p2pstack.interop"]
        async with await anyio.open_process(
            cmd, env={**env, "is_dialer": "false", "P2PSTACK_BACKEND": "trio"}
        ) as listener:
            with anyio.fail_after(60):
                dialer = await anyio.run_process(
                    cmd,
                    env={**env, "is_dialer": "true", "P2PSTACK_BACKEND": "asyncio"},
                    check=False,
                )
                listener.send_signal(signal.SIGTERM)
                assert await listener.wait() == 0
        assert dialer.returncode == 0, dialer.stderr.decode()
        result = json.loads(dialer.stdout.decode().strip().splitlines()[-1])
        assert result["agentVersion"].startswith("p2pstack/")
        # the listener bound 0.0.0.0 and pushed a loopback address the dialer could use
        (pushed,) = [c for c in fake.commands if c[0] == b"RPUSH"]
        assert pushed[2].startswith(b"/ip4/127.0.0.1/tcp/")


def test_cli_subcommand_reports_bad_configuration() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "p2pstack.cli", "interop"],
        env={k: v for k, v in os.environ.items() if k.lower() != "transport"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "transport is not set" in proc.stderr
