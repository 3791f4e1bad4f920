"""p2pstack as a libp2p/test-plans transport-interop peer (see ``interop/CONTRACT.md``).

All configuration comes from the environment (lower-case names, as test-plans passes them):
``transport``, ``security``, ``muxer``, ``is_dialer``, ``ip``, ``redis_addr``,
``test_timeout_seconds``, plus our runner's optional ``handshake_count``, ``ping_count``,
``echo_bytes``, ``perf_upload_bytes`` and ``perf_download_bytes``.

The listener pushes its address to the Redis list ``listenerAddr`` and serves until
SIGTERM/SIGINT (exit 0) or until ``test_timeout_seconds`` (exit 1). The dialer pops that
address, measures, and prints one JSON line on stdout. Diagnostics go to stderr.
Exit status 2: a combination p2pstack does not support (nothing was started).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from p2pstack.errors import ConfigError, RemoteProtocolError
from p2pstack.host import Host
from p2pstack.host.host import AGENT_VERSION
from p2pstack.identity import KeyPair, PeerID
from p2pstack.interop.resp import RedisClient
from p2pstack.protocols import echo, perf, ping
from p2pstack.pubsub import GossipSub, PubSub
from p2pstack.security.abc import SecureTransport
from p2pstack.security.noise import Noise
from p2pstack.security.tls import Tls
from p2pstack.transport.abc import MuxedTransport, Transport
from p2pstack.transport.quic import QuicTransport
from p2pstack.transport.tcp import TcpTransport

LISTENER_ADDR_KEY = "listenerAddr"
IDENTIFY_WAIT_SECONDS = 10.0
#: Inbound streams per protocol and peer the listener allows (the contract asks >= 16).
LISTENER_STREAM_LIMIT = 1024
EXIT_UNSUPPORTED = 2
SECURITY: dict[str, Callable[[KeyPair], SecureTransport]] = {"noise": Noise, "tls": Tls}


class Unsupported(ConfigError):
    """A transport/security/muxer combination p2pstack does not have (yet)."""


@dataclass(frozen=True, slots=True)
class InteropConfig:
    transport: str
    security: str | None
    muxer: str | None
    is_dialer: bool
    ip: str
    redis_addr: str
    timeout_seconds: float
    handshake_count: int
    ping_count: int
    echo_bytes: int | None
    perf_upload_bytes: int | None
    perf_download_bytes: int | None
    gossipsub_topic: str | None = None
    gossipsub_index: int = 0
    gossipsub_connect: tuple[str, ...] = ()
    gossipsub_publish: int = 1
    gossipsub_expect: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> InteropConfig:
        def get(name: str) -> str | None:
            value = env.get(name, env.get(name.upper()))
            return value if value not in (None, "") else None

        def number(name: str, default: int | None, minimum: int = 0) -> int | None:
            text = get(name)
            if text is None:
                return default
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(f"{name}={text!r} is not an integer") from None
            if value < minimum:
                raise ConfigError(f"{name}={value} is below {minimum}")
            return value

        transport = get("transport")
        if transport is None:
            raise ConfigError("transport is not set")
        topic = get("gossipsub_topic")
        dialer = (get("is_dialer") or ("false" if topic else "")).lower()
        if dialer not in ("true", "false"):
            raise ConfigError(f"is_dialer must be true or false, not {dialer!r}")
        upload = number("perf_upload_bytes", None)
        download = number("perf_download_bytes", None)
        if (upload is None) != (download is None):
            upload, download = upload or 0, download or 0
        timeout = get("test_timeout_seconds") or "180"
        try:
            timeout_seconds = float(timeout)
        except ValueError:
            raise ConfigError(f"test_timeout_seconds={timeout!r} is not a number") from None
        return cls(
            transport=transport,
            security=get("security"),
            muxer=get("muxer"),
            is_dialer=dialer == "true",
            ip=get("ip") or "0.0.0.0",
            redis_addr=get("redis_addr") or "redis:6379",
            timeout_seconds=timeout_seconds,
            handshake_count=number("handshake_count", 1, 1) or 1,
            ping_count=number("ping_count", 1, 1) or 1,
            echo_bytes=number("echo_bytes", None),
            perf_upload_bytes=upload,
            perf_download_bytes=download,
            gossipsub_topic=topic,
            gossipsub_index=number("gossipsub_index", 0) or 0,
            gossipsub_connect=tuple(a for a in (get("gossipsub_connect") or "").split(",") if a),
            gossipsub_publish=number("gossipsub_publish", 1) or 0,
            gossipsub_expect=number("gossipsub_expect", 0) or 0,
        )

    def check_supported(self) -> None:
        if self.transport == "quic-v1":
            return  # QUIC brings its own security (TLS 1.3) and multiplexing
        if self.transport != "tcp":
            raise Unsupported(f"transport {self.transport!r}: p2pstack has tcp and quic-v1")
        if self.security not in SECURITY:
            raise Unsupported(f"security {self.security!r}: p2pstack has only noise and tls")
        if self.muxer != "yamux":
            raise Unsupported(f"muxer {self.muxer!r}: p2pstack has only yamux")


def _security(config: InteropConfig, key: KeyPair) -> list[SecureTransport]:
    """Only the security protocol under test, so that a combination proves what it says."""
    return [SECURITY[config.security or "noise"](key)]


def _host(config: InteropConfig, key: KeyPair, listen: Sequence[str] = ()) -> Host:
    """A host with only the transport (and security) under test."""
    transports: list[Transport | MuxedTransport]
    if config.transport == "quic-v1":
        transports = [QuicTransport(key)]
    else:
        transports = [TcpTransport()]
    return Host(key, listen_addrs=listen, transports=transports, security=_security(config, key))


def _log(message: str) -> None:
    print(f"p2pstack interop: {message}", file=sys.stderr, flush=True)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 4)


def _listen_addr(config: InteropConfig) -> str:
    family = "ip6" if ":" in config.ip else "ip4"
    if config.transport == "quic-v1":
        return f"/{family}/{config.ip}/udp/0/quic-v1"
    return f"/{family}/{config.ip}/tcp/0"


def _advertised(addr: str, config: InteropConfig) -> str:
    """An address a dialer can use: an unspecified bind IP becomes loopback."""
    if config.ip == "0.0.0.0":
        return addr.replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/", 1)
    if config.ip == "::":
        return addr.replace("/ip6/::/", "/ip6/::1/", 1)
    return addr


async def run_listener(config: InteropConfig) -> int:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with await RedisClient.connect(config.redis_addr) as redis:
            key = KeyPair.generate()
            async with _host(config, key, [_listen_addr(config)]) as host:
                for protocol, handler in (
                    (ping.PROTOCOL_ID, ping.handle_ping),
                    (echo.PROTOCOL_ID, echo.handle_echo),
                    (perf.PROTOCOL_ID, perf.handle_perf),
                ):
                    host.set_stream_handler(
                        protocol, handler, max_inbound_per_peer=LISTENER_STREAM_LIMIT
                    )
                addr = _advertised(str(host.addrs[0]), config)
                await redis.rpush(LISTENER_ADDR_KEY, addr)
                _log(f"listening on {addr}")
                with anyio.move_on_after(config.timeout_seconds):
                    async for signum in signals:
                        _log(f"signal {signum}, stopping")
                        return 0
    _log(f"test_timeout_seconds ({config.timeout_seconds:g}) passed")
    return 1


async def run_dialer(config: InteropConfig) -> dict[str, Any]:
    async with await RedisClient.connect(config.redis_addr) as redis:
        key = KeyPair.generate()
        async with _host(config, key) as host:
            addr = await redis.blpop(LISTENER_ADDR_KEY, config.timeout_seconds)
            if addr is None:
                raise RemoteProtocolError("no listener address in Redis before the timeout")
            _log(f"dialing {addr}")
            return await _measure(host, addr, config)


async def _measure(host: Host, addr: str, config: InteropConfig) -> dict[str, Any]:
    handshakes: list[float] = []
    rtts: list[float] = []
    peer: PeerID | None = None
    for i in range(config.handshake_count):
        start = anyio.current_time()
        peer = await host.connect(addr)
        rtt = (await host.ping(peer))[0]
        handshakes.append(anyio.current_time() - start)
        if i + 1 < config.handshake_count:
            await host.disconnect(peer)
        else:
            rtts.append(rtt)
    assert peer is not None
    if config.ping_count > 1:
        rtts += await host.ping(peer, count=config.ping_count - 1)

    result: dict[str, Any] = {
        "handshakePlusOneRTTMillis": _ms(statistics.median(handshakes)),
        "pingRTTMilllis": _ms(statistics.median(rtts)),
        "handshakePlusOneRTTsMillis": [_ms(s) for s in handshakes],
        "pingRTTsMillis": [_ms(s) for s in rtts],
        "implementation": AGENT_VERSION,
        "transport": config.transport,
        "security": config.security,
        "muxer": config.muxer,
        "remotePeer": str(peer),
        "agentVersion": None,
        "protocols": [],
    }
    with anyio.move_on_after(IDENTIFY_WAIT_SECONDS):
        info = await host.identify(peer)
        result["agentVersion"] = info.agent_version
        result["protocols"] = list(info.protocols)

    if config.echo_bytes is not None:
        data = os.urandom(config.echo_bytes)
        start = anyio.current_time()
        async with await host.new_stream(peer, [echo.PROTOCOL_ID]) as stream:
            received = await echo.echo_exchange(stream, data)
        result["echoSeconds"] = round(anyio.current_time() - start, 6)
        result["echoBytes"] = len(data)
        result["echoOk"] = received == data
        if received != data:
            raise RemoteProtocolError(
                f"echo came back different ({len(received)} of {len(data)} bytes)"
            )

    if config.perf_upload_bytes is not None and config.perf_download_bytes is not None:
        async with await host.new_stream(peer, [perf.PROTOCOL_ID]) as stream:
            outcome = await perf.run_perf(
                stream, config.perf_upload_bytes, config.perf_download_bytes
            )
        result["perfUploadBytes"] = outcome.upload_bytes
        result["perfDownloadBytes"] = outcome.download_bytes
        result["perfUploadSeconds"] = round(outcome.upload_seconds, 6)
        result["perfDownloadSeconds"] = round(outcome.download_seconds, 6)
    return result


async def run_gossipsub(config: InteropConfig) -> int:
    """Gossipsub mode (CONTRACT.md): join a mixed network, publish, count what arrives."""
    assert config.gossipsub_topic is not None
    topic = config.gossipsub_topic
    deadline = anyio.current_time() + config.timeout_seconds
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with await RedisClient.connect(config.redis_addr) as redis:
            async with Host(KeyPair.generate(), listen_addrs=[_listen_addr(config)]) as host:
                async with PubSub(host, GossipSub()) as ps, anyio.create_task_group() as tg:
                    sub = await ps.subscribe(topic)
                    received: set[str] = set()
                    complete = anyio.Event()
                    clock = {"start": 0.0, "last": 0.0}

                    async def collect() -> None:
                        # from subscription time on: others may publish before our token
                        async for msg in sub:
                            if msg.received_from is None:
                                continue
                            received.add(msg.data.decode(errors="replace"))
                            clock["last"] = anyio.current_time()
                            if len(received) >= config.gossipsub_expect:
                                complete.set()

                    tg.start_soon(collect)
                    if config.gossipsub_expect == 0:
                        complete.set()
                    addr = _advertised(str(host.addrs[0]), config)
                    await redis.rpush("gossipsubPeers", addr)
                    _log(f"gossipsub node {config.gossipsub_index} at {addr}")
                    for target in config.gossipsub_connect:
                        await host.connect(target)
                    with anyio.fail_after(max(deadline - anyio.current_time(), 0)):
                        await ps.wait_for_peers(topic)
                    await redis.rpush("gossipsubReady", str(config.gossipsub_index))
                    wait = max(deadline - anyio.current_time(), 0.001)
                    if await redis.blpop("gossipsubGo", wait) is None:
                        raise RemoteProtocolError("no gossipsubGo token before the timeout")
                    clock["start"] = anyio.current_time()
                    published = 0
                    for i in range(config.gossipsub_publish):
                        await ps.publish(topic, f"{config.gossipsub_index}:{i}".encode())
                        published += 1
                        if published % 100 == 0:
                            await ps.flush()  # backpressure: bounded queues never overflow
                    with anyio.move_on_at(deadline):
                        await complete.wait()
                    seconds = max(clock["last"] - clock["start"], 0.0) if received else 0.0
                    print(
                        json.dumps(
                            {
                                "implementation": AGENT_VERSION,
                                "gossipsubIndex": config.gossipsub_index,
                                "peerId": str(host.peer_id),
                                "published": published,
                                "received": len(received),
                                "expected": config.gossipsub_expect,
                                "receivedData": sorted(received),
                                "seconds": round(seconds, 6),
                                "meshPeers": len(ps.mesh_peers(topic)),
                            }
                        ),
                        flush=True,
                    )
                    code = 0
                    if not complete.is_set():
                        _log("test_timeout_seconds passed before every message arrived")
                        code = 1
                    else:
                        with anyio.move_on_at(deadline):
                            async for _ in signals:  # keep forwarding for the others
                                break
                    tg.cancel_scope.cancel()
    return code


async def run(config: InteropConfig) -> int:
    if config.gossipsub_topic is not None:
        return await run_gossipsub(config)
    if not config.is_dialer:
        return await run_listener(config)
    with anyio.fail_after(config.timeout_seconds):
        result = await run_dialer(config)
    print(json.dumps(result), flush=True)
    return 0


def main(env: Mapping[str, str] | None = None, backend: str | None = None) -> int:
    """Entry point of ``python -m p2pstack.interop`` and ``p2pstack interop``.

    ``backend`` (else ``$P2PSTACK_BACKEND``, else trio) picks the anyio backend."""
    env = os.environ if env is None else env
    try:
        config = InteropConfig.from_env(env)
        config.check_supported()
    except Unsupported as exc:
        _log(f"unsupported: {exc}")
        return EXIT_UNSUPPORTED
    except ConfigError as exc:
        _log(f"bad configuration: {exc}")
        return 1
    chosen = backend or env.get("P2PSTACK_BACKEND") or "trio"
    try:
        return int(anyio.run(run, config, backend=chosen))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the contract wants a message and exit status 1
        while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        _log(f"failed: {type(exc).__name__}: {exc}")
        return 1
