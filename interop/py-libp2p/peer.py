#!/usr/bin/env python3
"""py-libp2p interop peer (interop/CONTRACT.md: the test-plans transport-interop
contract plus p2pstack's optional extras).

All configuration comes from the environment (transport, security, muxer, is_dialer,
ip, redis_addr, test_timeout_seconds, handshake_count, ping_count, echo_bytes,
perf_upload_bytes, perf_download_bytes). The dialer prints one JSON line on stdout;
everything else goes to stderr. Exit 0 on success, 1 on error, 2 for an unsupported
combination (before touching Redis).

Set PY_LIBP2P_PEER_DEBUG=1 for py-libp2p's debug logs (LIBP2P_DEBUG also works, as
py-libp2p reads it itself at import).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import signal
import statistics
import struct
import sys
import time

PING_PROTOCOL = "/ipfs/ping/1.0.0"
IDENTIFY_PROTOCOL = "/ipfs/id/1.0.0"
ECHO_PROTOCOL = "/echo/1.0.0"
PERF_PROTOCOL = "/perf/1.0.0"
PING_LENGTH = 32
CHUNK = 64 * 1024
REDIS_KEY = "listenerAddr"

log = logging.getLogger("py-libp2p-peer")


class Unsupported(Exception):
    pass


class Config:
    def __init__(self, env: dict[str, str]) -> None:
        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        def get_int(name: str, default: int | None, minimum: int = 0) -> int | None:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise Unsupported(f"{name}={raw!r} is not an integer") from None
            if value < minimum:
                raise Unsupported(f"{name}={value} is below {minimum}")
            return value

        self.transport = get("transport")
        self.security = get("security")
        self.muxer = get("muxer")
        dialer = get("is_dialer")
        if self.transport is None:
            raise Unsupported("transport is not set")
        if dialer not in ("true", "false"):
            raise Unsupported(f"is_dialer must be 'true' or 'false', got {dialer!r}")
        self.is_dialer = dialer == "true"
        if self.transport == "tcp":
            if self.security not in ("noise", "tls"):
                raise Unsupported(
                    f"security {self.security!r} over tcp is not supported "
                    "(py-libp2p peer: noise, tls)"
                )
            if self.muxer != "yamux":
                raise Unsupported(f"muxer {self.muxer!r} is not supported (py-libp2p peer: yamux)")
        elif self.transport == "quic-v1":
            # QUIC brings its own TLS 1.3 and stream multiplexing.
            if self.security not in (None, "quic") or self.muxer not in (None, "quic"):
                raise Unsupported(
                    "quic-v1 takes no separate security/muxer "
                    f"(got security={self.security!r} muxer={self.muxer!r})"
                )
            self.security = None
            self.muxer = None
        else:
            raise Unsupported(
                f"transport {self.transport!r} is not supported (py-libp2p peer: tcp, quic-v1)"
            )
        self.ip = get("ip") or "0.0.0.0"
        redis_addr = get("redis_addr") or "redis:6379"
        host, _, port = redis_addr.rpartition(":")
        if not host or not port.isdigit():
            raise Unsupported(f"redis_addr {redis_addr!r} is not host:port")
        self.redis_host, self.redis_port = host, int(port)
        self.timeout = float(get_int("test_timeout_seconds", 180, minimum=1) or 180)
        self.handshake_count = get_int("handshake_count", 1, minimum=1) or 1
        self.ping_count = max(get_int("ping_count", 1, minimum=1) or 1, 1)
        self.echo_bytes = get_int("echo_bytes", None)
        up = get_int("perf_upload_bytes", None)
        down = get_int("perf_download_bytes", None)
        self.perf = up is not None or down is not None
        self.perf_upload = up or 0
        self.perf_download = down or 0


# --------------------------------------------------------------------------- redis


def redis_client(cfg: Config):
    import redis

    # redis-py 8 defaults socket_timeout to 5 s, which cuts a longer BLPOP short
    # (TimeoutError, then retries); reads block here, bounded by the BLPOP timeout.
    return redis.Redis(
        host=cfg.redis_host,
        port=cfg.redis_port,
        socket_connect_timeout=5,
        socket_timeout=None,
    )


async def redis_connect(cfg: Config, deadline: float):
    """Connect to Redis, retrying until it answers PING (Redis may start late)."""
    import trio

    client = redis_client(cfg)
    while True:
        try:
            await trio.to_thread.run_sync(client.ping, abandon_on_cancel=True)
            return client
        except Exception as exc:  # any connection problem: retry
            if time.monotonic() + 0.5 > deadline:
                raise RuntimeError(
                    f"cannot reach Redis at {cfg.redis_host}:{cfg.redis_port}: {exc}"
                ) from exc
            log.info("waiting for Redis: %s", exc)
            await trio.sleep(0.5)


# ------------------------------------------------------------------------ the node


def workarounds_enabled() -> bool:
    return os.environ.get("PY_LIBP2P_PEER_NO_WORKAROUNDS", "") in ("", "0")


def apply_workarounds() -> None:
    """Work around py-libp2p 0.8.1 bugs found while pairing (README, "Known issues").

    PY_LIBP2P_PEER_NO_WORKAROUNDS=1 turns all of them off, to see py-libp2p as shipped.
    """
    if not workarounds_enabled():
        log.info("py-libp2p workarounds disabled")
        return
    patch_dial_delay()
    patch_quic_stream_read()
    patch_quic_stop_sending()


def patch_dial_delay() -> None:
    """Swarm.dial_peer stalls every dial by 250 ms.

    It starts each address's dial and then always waits _HAPPY_EYEBALLS_DELAY
    (250 ms) for that dial to *fail* before it moves on, even for the last address
    and even when the dial already succeeded, so every connect() takes at least
    250 ms. We dial exactly one address, so a zero delay only removes the stall.
    """
    import libp2p.network.swarm as swarm

    if hasattr(swarm, "_HAPPY_EYEBALLS_DELAY"):
        swarm._HAPPY_EYEBALLS_DELAY = 0.0
    else:
        log.warning("py-libp2p has no swarm._HAPPY_EYEBALLS_DELAY; not patched")


def patch_quic_stream_read() -> None:
    """QUICStream.read() reports EOF or "closed" where the data is still there.

    1. A race: read() checks for buffered data under one lock, then for the
       peer's FIN under another. Taking the second lock is a trio checkpoint; if
       the last data and the FIN arrive in one packet right then (a go identify
       response does), read() raises EOF with the bytes still buffered, and they
       are never read.
    2. After our own FIN (close_write) and the peer's FIN, the stream state is
       CLOSED and read() raises QUICStreamClosedError (NetStream: StreamReset)
       instead of EOF, so an echo or perf client reading to EOF sees a reset.
    Retry while data is buffered; report a clean end as EOF. A real reset
    (state RESET) still raises.
    """
    from libp2p.transport.quic.exceptions import QUICStreamClosedError
    from libp2p.transport.quic.stream import QUICStream, _QUICStreamEOF

    original = QUICStream.read

    async def read(self, n: int | None = None) -> bytes:
        while True:
            try:
                return await original(self, n)
            except (_QUICStreamEOF, QUICStreamClosedError) as exc:
                if self._receive_buffer:
                    continue
                if (
                    isinstance(exc, QUICStreamClosedError)
                    and self._read_closed
                    and not self.is_reset()
                ):
                    raise _QUICStreamEOF() from None
                raise

    QUICStream.read = read


def patch_quic_stop_sending() -> None:
    """A STOP_SENDING on a stream we opened must not end our read side.

    QUICStream.handle_stop_sending() sets an *outbound* stream's state to CLOSED,
    so the next read() that finds the buffer empty raises QUICStreamClosedError
    (seen as StreamReset) although the peer's data and FIN are still coming.
    go-libp2p closes a QUIC stream with CancelRead (STOP_SENDING) + Close (FIN):
    its identify responder does so right after writing, and py-libp2p's identify
    request then fails in most runs. STOP_SENDING only stops our sending
    direction (RFC 9000 section 3.5): close the write side, answer with
    RESET_STREAM as py-libp2p does, and leave reading alone.
    """
    from libp2p.transport.quic.stream import QUICStream, StreamState

    original = QUICStream.handle_stop_sending

    async def handle_stop_sending(self, error_code: int) -> None:
        if self._read_closed:
            return await original(self, error_code)
        self._write_closed = True
        self._backpressure_event.set()
        async with self._state_lock:
            if self._state not in (StreamState.CLOSED, StreamState.RESET):
                self._state = StreamState.WRITE_CLOSED
        try:
            self._connection._quic.reset_stream(int(self.stream_id), error_code)
            await self._connection._transmit()
        except Exception as exc:  # as py-libp2p: best effort
            log.debug("RESET_STREAM after STOP_SENDING on %s: %r", self.stream_id, exc)

    QUICStream.handle_stop_sending = handle_stop_sending


def freeze_startup_heap() -> None:
    """Move everything allocated so far out of the garbage collector's way.

    Importing py-libp2p leaves a large heap of long-lived objects. Each full (gen2)
    collection then walks all of it: 80-200 ms with the event loop stopped, which
    landed in the 4th handshake sample of nearly every run (85 and 76 ms seen, and
    up to 240 ms under load). gc.freeze() after start-up (as CPython documents for
    pre-fork servers) keeps those objects out of later collections; objects
    created afterwards are still collected as usual.
    """
    gc.collect()
    gc.freeze()


def make_host(cfg: Config, listen_addrs: list):
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.network.config import ConnectionConfig
    from libp2p.rcmgr.connection_limits import new_connection_limits
    from libp2p.rcmgr.manager import ResourceLimits, ResourceManager

    key_pair = create_new_key_pair()
    # py-libp2p's default resource manager limits new connections to 10/s per
    # peer (burst 50), opens a circuit breaker after 5 failures and caps
    # per-peer connections at 8; the runner opens many short connections.
    resource_manager = ResourceManager(
        limits=ResourceLimits(max_connections=100_000, max_memory_mb=8192, max_streams=1_000_000),
        connection_limits=new_connection_limits(),
        enable_metrics=False,
        enable_rate_limiting=False,
        enable_circuit_breaker=False,
        enable_graceful_degradation=False,
        enable_memory_limits=False,
    )
    conn_config = ConnectionConfig(
        max_connections=100_000,
        high_watermark=100_000,  # the pruner closes connections above this
        max_connections_per_peer=1000,
    )
    kwargs = dict(
        key_pair=key_pair,
        listen_addrs=listen_addrs or None,
        resource_manager=resource_manager,
        connection_config=conn_config,
    )
    if cfg.transport == "tcp":
        kwargs["sec_opt"] = {security_protocol(cfg): security_transport(cfg, key_pair)}
        from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_ID
        from libp2p.stream_muxer.yamux.yamux import Yamux

        kwargs["muxer_opt"] = {YAMUX_ID: Yamux}
        kwargs["enable_tcp"] = True
    else:
        from libp2p.transport.quic.config import QUICTransportConfig

        kwargs["enable_quic"] = True
        kwargs["enable_tcp"] = False
        # py-libp2p buffers at most MAX_STREAM_RECEIVE_BUFFER (2 MiB) per stream and
        # *drops* what arrives beyond it, while aioquic raises the peer's flow-control
        # credit as data arrives, not as it is read: a fast sender (go, 16 MiB echo)
        # gets its stream silently corrupted. Its 30 s per-read timeout also fires
        # while a perf server drains a large upload at py-libp2p's QUIC speed.
        # Both are configuration, so they apply with or without the workarounds.
        quic_timeout = max(cfg.timeout, 30.0)
        kwargs["quic_transport_opt"] = QUICTransportConfig(
            MAX_STREAM_RECEIVE_BUFFER=1 << 30,
            STREAM_READ_TIMEOUT=quic_timeout,
            STREAM_WRITE_TIMEOUT=quic_timeout,
        )
    host = new_host(**kwargs)
    disable_auto_connector(host)
    return host


def disable_auto_connector(host) -> None:
    """Stop py-libp2p's AutoConnector from dialing peers on its own.

    It redials every peerstore peer it is not connected to, aiming for a connection
    count halfway between the low and high watermarks: it would reconnect to the
    listener between the dialer's handshake samples, and make the listener dial
    peers back. Neither belongs in an interop measurement.
    """

    async def no_auto_connect() -> None:
        return None

    connector = getattr(host.get_network(), "auto_connector", None)
    if connector is not None:
        connector.maybe_connect = no_auto_connect


def security_protocol(cfg: Config):
    if cfg.security == "noise":
        from libp2p.security.noise.transport import PROTOCOL_ID
    else:
        from libp2p.security.tls.transport import PROTOCOL_ID
    return PROTOCOL_ID


def security_transport(cfg: Config, key_pair):
    if cfg.security == "noise":
        from libp2p.crypto.x25519 import create_new_key_pair as new_x25519
        from libp2p.security.noise.transport import Transport as NoiseTransport

        return NoiseTransport(key_pair, noise_privkey=new_x25519().private_key)
    from libp2p.security.tls.transport import TLSTransport

    return TLSTransport(key_pair)


def listen_multiaddr(cfg: Config):
    from multiaddr import Multiaddr

    if cfg.transport == "tcp":
        return Multiaddr(f"/ip4/{cfg.ip}/tcp/0")
    return Multiaddr(f"/ip4/{cfg.ip}/udp/0/quic-v1")


def implementation() -> str:
    from importlib.metadata import version

    return f"py-libp2p v{version('libp2p')}"


# ------------------------------------------------------------------ stream helpers


async def read_some(stream, n: int = CHUNK) -> bytes:
    """One read; b"" at EOF (py-libp2p raises StreamEOF or returns b"")."""
    from libp2p.network.stream.exceptions import StreamEOF

    try:
        return await stream.read(n)
    except StreamEOF:
        return b""


async def read_exact(stream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await read_some(stream, n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


async def close_write(stream) -> None:
    await stream.close_write()


# ------------------------------------------------------------------------ handlers


async def handle_ping(stream) -> None:
    """Echo each 32-byte ping as it arrives, until EOF (no per-peer stream cap)."""
    try:
        while True:
            try:
                payload = await read_exact(stream, PING_LENGTH)
            except EOFError:
                break
            await stream.write(payload)
        await stream.close()
    except Exception as exc:
        log.debug("ping handler: %r", exc)
        await _reset(stream)


async def handle_echo(stream) -> None:
    try:
        while True:
            data = await read_some(stream)
            if not data:
                break
            await stream.write(data)
        await stream.close()
    except Exception as exc:
        log.warning("echo handler: %r", exc)
        await _reset(stream)


_ZEROS = bytes(CHUNK)


async def handle_perf(stream) -> None:
    """libp2p/specs perf/perf.md server: u64 BE N, drain to EOF, send N, close."""
    try:
        header = await read_exact(stream, 8)
        (to_send,) = struct.unpack(">Q", header)
        drained = 0
        while True:
            data = await read_some(stream)
            if not data:
                break
            drained += len(data)
        while to_send > 0:
            n = min(CHUNK, to_send)
            await stream.write(_ZEROS[:n])
            to_send -= n
        await stream.close()
        log.debug("perf: received %d bytes, sent %s", drained, struct.unpack(">Q", header)[0])
    except Exception as exc:
        log.warning("perf handler: %r", exc)
        await _reset(stream)


async def _reset(stream) -> None:
    try:
        await stream.reset()
    except Exception:
        pass


def register_handlers(host) -> None:
    from libp2p.custom_types import TProtocol

    # Replaces py-libp2p's PingService handler, which resets a peer's third
    # concurrent ping stream (max 2 inbound per peer); the contract asks for 16.
    host.set_stream_handler(TProtocol(PING_PROTOCOL), handle_ping)
    host.set_stream_handler(TProtocol(ECHO_PROTOCOL), handle_echo)
    host.set_stream_handler(TProtocol(PERF_PROTOCOL), handle_perf)
    # identify (/ipfs/id/1.0.0) and identify/push stay py-libp2p's defaults.


# ------------------------------------------------------------------------ listener


async def run_listener(cfg: Config) -> int:
    import trio
    from multiaddr import Multiaddr

    deadline = time.monotonic() + cfg.timeout
    client = await redis_connect(cfg, deadline)
    apply_workarounds()
    listen = listen_multiaddr(cfg)
    host = make_host(cfg, [listen])
    register_handlers(host)
    freeze_startup_heap()
    async with host.run(listen_addrs=[listen]):
        addrs = [a for a in host.get_addrs() if _matches(cfg, a)]
        if not addrs:
            raise RuntimeError(f"no {cfg.transport} listen address in {host.get_addrs()}")
        addr = str(addrs[0])
        if "/ip4/0.0.0.0/" in addr:
            addr = addr.replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/", 1)
        Multiaddr(addr)  # sanity
        log.info("listening on %s (%s)", addr, implementation())
        await trio.to_thread.run_sync(client.rpush, REDIS_KEY, addr, abandon_on_cancel=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            with trio.move_on_after(max(deadline - time.monotonic(), 0)):
                async for signum in signals:
                    # Exit at once: py-libp2p's graceful shutdown sleeps 0.1-0.2 s per
                    # open connection, and the runner waits for us.
                    log.info("signal %d: exiting", signum)
                    exit_now(0)
        log.error("test_timeout_seconds (%s s) reached", cfg.timeout)
        return 1


def _matches(cfg: Config, addr) -> bool:
    names = [p.name for p in addr.protocols()]
    if cfg.transport == "tcp":
        return "tcp" in names and not {"ws", "wss"} & set(names)
    return "quic-v1" in names


# -------------------------------------------------------------------------- dialer


async def ping_once(stream) -> float:
    payload = os.urandom(PING_LENGTH)
    t0 = time.perf_counter()
    await stream.write(payload)
    reply = await read_exact(stream, PING_LENGTH)
    rtt = (time.perf_counter() - t0) * 1000.0
    if reply != payload:
        raise RuntimeError("ping payload mismatch")
    return rtt


async def fetch_identify(host, peer_id) -> tuple[str | None, list[str]]:
    """Ask the listener for its Identify message on the kept connection."""
    import trio
    from libp2p.custom_types import TProtocol
    from libp2p.identity.identify.pb.identify_pb2 import Identify

    with trio.move_on_after(10):
        try:
            stream = await host.new_stream(peer_id, [TProtocol(IDENTIFY_PROTOCOL)])
        except Exception as exc:  # the contract reports null/[] then
            log.warning("identify request failed: %s", _describe(exc))
            return None, []
        try:
            length, shift = 0, 0
            while True:
                b = await read_exact(stream, 1)
                length |= (b[0] & 0x7F) << shift
                shift += 7
                if not b[0] & 0x80:
                    break
                if shift > 63:
                    raise RuntimeError("identify: bad varint")
            msg = Identify()
            msg.ParseFromString(await read_exact(stream, length))
        except Exception as exc:
            log.warning("identify response unreadable: %s", _describe(exc))
            await _reset(stream)
            return None, []
        await _reset_or_close(stream)
        agent = msg.agent_version if msg.HasField("agent_version") else None
        return agent, list(msg.protocols)
    log.warning("no identify from the listener within 10 s")
    return None, []


async def _reset_or_close(stream) -> None:
    try:
        await stream.close()
    except Exception:
        await _reset(stream)


async def run_echo(host, peer_id, nbytes: int) -> tuple[bool, float]:
    import trio
    from libp2p.custom_types import TProtocol

    data = random.Random(nbytes).randbytes(nbytes)
    ok = True
    received = 0
    t0 = time.perf_counter()
    stream = await host.new_stream(peer_id, [TProtocol(ECHO_PROTOCOL)])

    async def writer() -> None:
        view = memoryview(data)
        for off in range(0, nbytes, CHUNK):
            await stream.write(bytes(view[off : off + CHUNK]))
        await close_write(stream)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        while True:
            chunk = await read_some(stream)
            if not chunk:
                break
            if data[received : received + len(chunk)] != chunk:
                ok = False
            received += len(chunk)
            if received > nbytes:
                ok = False
    seconds = time.perf_counter() - t0
    await _reset_or_close(stream)
    if received != nbytes:
        log.error("echo: received %d of %d bytes", received, nbytes)
        ok = False
    return ok, seconds


async def run_perf(host, peer_id, upload: int, download: int) -> dict:
    from libp2p.custom_types import TProtocol

    t0 = time.perf_counter()
    stream = await host.new_stream(peer_id, [TProtocol(PERF_PROTOCOL)])
    await stream.write(struct.pack(">Q", download))
    left = upload
    while left > 0:
        n = min(CHUNK, left)
        await stream.write(_ZEROS[:n])
        left -= n
    await close_write(stream)
    first = None
    got = 0
    while True:
        chunk = await read_some(stream)
        if not chunk:
            break
        if first is None:
            first = time.perf_counter()
        got += len(chunk)
    end = time.perf_counter()
    await _reset_or_close(stream)
    if got != download:
        log.error("perf: downloaded %d of %d bytes", got, download)
    return {
        "perfUploadBytes": upload,
        "perfDownloadBytes": got,
        "perfUploadSeconds": (first if first is not None else end) - t0,
        "perfDownloadSeconds": (end - first) if first is not None else 0.0,
    }


async def run_dialer(cfg: Config) -> int:
    import trio
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    deadline = time.monotonic() + cfg.timeout
    client = await redis_connect(cfg, deadline)
    apply_workarounds()
    host = make_host(cfg, [])
    register_handlers(host)
    freeze_startup_heap()
    async with host.run(listen_addrs=[]):
        wait = max(int(deadline - time.monotonic()), 1)
        popped = await trio.to_thread.run_sync(
            lambda: client.blpop([REDIS_KEY], timeout=wait), abandon_on_cancel=True
        )
        if popped is None:
            raise RuntimeError(f"no {REDIS_KEY} in Redis within {wait} s")
        addr = popped[1].decode()
        log.info("dialing %s", addr)
        info = info_from_p2p_addr(Multiaddr(addr))
        peer_id = info.peer_id

        handshakes: list[float] = []
        pings: list[float] = []
        ping_stream = None
        for i in range(cfg.handshake_count):
            t0 = time.perf_counter()
            await host.connect(info)
            t1 = time.perf_counter()
            stream = await host.new_stream(peer_id, [TProtocol(PING_PROTOCOL)])
            t2 = time.perf_counter()
            rtt = await ping_once(stream)
            handshakes.append((time.perf_counter() - t0) * 1000.0)
            log.info(
                "handshake sample %d: %.1f ms = connect %.1f + ping stream %.1f + ping %.1f",
                i + 1,
                handshakes[-1],
                (t1 - t0) * 1000,
                (t2 - t1) * 1000,
                rtt,
            )
            if i + 1 < cfg.handshake_count:
                await _reset_or_close(stream)
                await host.disconnect(peer_id)
            else:
                ping_stream = stream
                pings.append(rtt)
        while len(pings) < cfg.ping_count:
            pings.append(await ping_once(ping_stream))
        await close_write(ping_stream)
        await _reset_or_close(ping_stream)

        agent, protocols = await fetch_identify(host, peer_id)

        result = {
            "handshakePlusOneRTTMillis": statistics.median(handshakes),
            "pingRTTMilllis": statistics.median(pings),
            "handshakePlusOneRTTsMillis": handshakes,
            "pingRTTsMillis": pings,
            "implementation": implementation(),
            "transport": cfg.transport,
            "security": cfg.security,
            "muxer": cfg.muxer,
            "remotePeer": str(peer_id),
            "agentVersion": agent,
            "protocols": protocols,
        }
        if cfg.echo_bytes is not None:
            ok, seconds = await run_echo(host, peer_id, cfg.echo_bytes)
            result.update(echoBytes=cfg.echo_bytes, echoOk=ok, echoSeconds=seconds)
            if not ok:
                print(json.dumps(result), file=sys.stderr)
                raise RuntimeError("echo verification failed")
        if cfg.perf:
            result.update(await run_perf(host, peer_id, cfg.perf_upload, cfg.perf_download))
        print(json.dumps(result), flush=True)
        with trio.move_on_after(2):
            await host.disconnect(peer_id)
        exit_now(0)  # do not wait for py-libp2p's background tasks to wind down
    return 0


# ---------------------------------------------------------------------------- main


def main() -> int:
    debug = os.environ.get("PY_LIBP2P_PEER_DEBUG", "") not in ("", "0")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        cfg = Config(dict(os.environ))
    except Unsupported as exc:
        print(f"py-libp2p peer: unsupported: {exc}", file=sys.stderr, flush=True)
        return 2

    import libp2p  # noqa: F401 - runs py-libp2p's setup_logging() before we adjust it
    import trio

    # py-libp2p's import-time setup_logging() detaches the "libp2p" logger (no
    # handler, propagate=False) unless LIBP2P_DEBUG is set; route it to stderr
    # with our format instead. multiaddr's DEBUG output is one line per parsed
    # component: keep it at WARNING even when debugging.
    if not os.environ.get("LIBP2P_DEBUG"):
        lib = logging.getLogger("libp2p")
        lib.handlers.clear()
        lib.propagate = True
        lib.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("multiaddr").setLevel(logging.WARNING)
    if not debug:
        for name in ("quic", "aioquic", "redis"):
            logging.getLogger(name).setLevel(logging.WARNING)

    async def run() -> int:
        with trio.move_on_after(cfg.timeout + (0 if cfg.is_dialer else 5)):
            if cfg.is_dialer:
                return await run_dialer(cfg)
            return await run_listener(cfg)
        log.error("test_timeout_seconds (%s s) reached", cfg.timeout)
        return 1

    try:
        code = trio.run(run)
    except BaseException as exc:  # report every failure, exit 1
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.error("failed: %s", _describe(exc), exc_info=True)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    # os._exit: py-libp2p may leave system tasks or threads behind; the result is
    # already printed and flushed, so do not wait for them.
    os._exit(main())
