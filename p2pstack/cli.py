"""The ``p2pstack`` command. Other tools drive it, so its output is a contract:

- ``p2pstack id [--key FILE]`` prints the peer ID (``--key`` loads FILE, creating it first
  with a new Ed25519 key if it does not exist).
- ``p2pstack listen [--listen MADDR]... [--key FILE]`` prints each full listen multiaddr
  (ending in ``/p2p/<id>``) on its own stdout line as soon as it listens, then serves ping,
  identify, perf and echo until SIGINT/SIGTERM.
- ``p2pstack ping MADDR [--count N] [--json]``: with ``--json`` one JSON object per line;
  the last holds ``remote_peer``, ``handshake_plus_one_rtt_ms``, ``rtt_ms_median``,
  ``agent_version``, ``protocols`` (and more). Exit status 0 only on success.
- ``p2pstack perf MADDR --upload-bytes N --download-bytes N [--json]``: progress every
  second on stderr; the last stdout line holds ``upload_bytes``, ``download_bytes``,
  ``seconds``, ``mib_per_s``.
- ``p2pstack echo MADDR --bytes N [--json]``: sends N random bytes on ``/echo/1.0.0`` and
  checks that the same bytes come back.
- ``p2pstack pubsub --topic T [--listen MADDR]... [--connect MADDR]... [--publish TEXT]
  [--json] [--router gossipsub|floodsub]``: a chat over gossipsub. It prints each full listen
  multiaddr on its own line, then publishes ``--publish`` and each stdin line once a peer is
  on the topic, prints every message it receives (with ``--json`` one JSON object per line:
  ``from``, ``topic``, ``data``, ``id`` (hex), ``seqno``, ``received_from``), and exits once
  stdin has ended and what it published has been written out.
- ``p2pstack gossipsub-interop --params FILE [--node-id N] [--loopback-base-port B]``: a
  node of libp2p/test-plans gossipsub-interop (``p2pstack.interop.gossipsub_interop``).
- ``p2pstack interop``: the libp2p/test-plans transport-interop peer, configured by
  environment variables (``interop/CONTRACT.md``, ``p2pstack.interop.peer``).

``--backend trio|asyncio`` (before the command) picks the event loop; trio by default.
``--security noise|tls|both`` (before the command) picks the secure channels: a dialer
offers them in that order, a listener accepts them; both (Noise, then TLS) by default.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from p2pstack.errors import P2PError
from p2pstack.host import Host
from p2pstack.identity import KeyPair
from p2pstack.protocols import echo, perf
from p2pstack.security.abc import SecureTransport
from p2pstack.security.noise import Noise
from p2pstack.security.tls import Tls

DEFAULT_LISTEN = "/ip4/127.0.0.1/tcp/0"


def load_or_create_key(path: str | None) -> KeyPair:
    if path is None:
        return KeyPair.generate()
    if Path(path).exists():
        return KeyPair.load(path)
    pair = KeyPair.generate()
    pair.save(path)
    return pair


def security_for(args: argparse.Namespace, key: KeyPair) -> list[SecureTransport]:
    choice = getattr(args, "security", "both")
    chosen: list[SecureTransport] = []
    if choice in ("noise", "both"):
        chosen.append(Noise(key))
    if choice in ("tls", "both"):
        chosen.append(Tls(key))
    return chosen


def make_host(args: argparse.Namespace, key: KeyPair, listen: list[str] | None = None) -> Host:
    return Host(key, listen_addrs=listen or [], security=security_for(args, key))


def serve_all(host: Host) -> None:
    """Register the test protocols a ``listen`` node serves besides ping and identify."""
    host.set_stream_handler(echo.PROTOCOL_ID, echo.handle_echo, max_inbound_per_peer=1024)
    host.set_stream_handler(perf.PROTOCOL_ID, perf.handle_perf, max_inbound_per_peer=1024)


def _print_addrs(host: Host) -> None:
    """Each full listen address, ``.../p2p/<id>``, on its own line. Written as text: parsing
    a ``/p2p`` component would load py-multiaddr's CID codec (~2 MiB) into the listener."""
    for addr in host.listen_addrs:
        print(f"{addr}/p2p/{host.peer_id}", flush=True)


def _freeze_startup_objects() -> None:
    """Move everything alive now (modules, the host) out of the garbage collector's
    reach: they live as long as the process, and each full collection would walk them
    again. On a listener serving many short streams that took full-collection pauses
    from ~35 ms to ~5 ms and the collector's share of its CPU from ~8 % to ~4 %. A
    library leaves the collector alone; a program embedding p2pstack can do the same."""
    gc.freeze()


def _emit(obj: dict[str, Any] | str) -> None:
    print(json.dumps(obj) if isinstance(obj, dict) else obj, flush=True)


def _median(values: list[float]) -> float:
    """The median (``statistics`` is not imported for it: it pulls in ``decimal``)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# ---------------------------------------------------------------------------- commands


async def cmd_id(args: argparse.Namespace) -> int:
    print(load_or_create_key(args.key).peer_id)
    return 0


async def cmd_listen(args: argparse.Namespace) -> int:
    listen = args.listen or [DEFAULT_LISTEN]
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        key = load_or_create_key(args.key)
        async with make_host(args, key, listen) as host:
            serve_all(host)
            _freeze_startup_objects()
            _print_addrs(host)
            async for _ in signals:
                break
    return 0


async def cmd_ping(args: argparse.Namespace) -> int:
    async with make_host(args, load_or_create_key(args.key)) as host:
        start = anyio.current_time()
        peer = await host.connect(args.maddr)
        first = await host.ping(peer)
        handshake_plus_one = anyio.current_time() - start
        rtts = first + await host.ping(peer, count=max(args.count - 1, 0))
        if args.json:
            for seq, rtt in enumerate(rtts):
                _emit({"seq": seq, "rtt_ms": _ms(rtt)})
        else:
            for seq, rtt in enumerate(rtts):
                _emit(f"ping {seq}: {_ms(rtt)} ms")
        info = await host.identify(peer)
        summary = {
            "remote_peer": str(peer),
            "handshake_plus_one_rtt_ms": _ms(handshake_plus_one),
            "rtt_ms_median": _ms(_median(rtts)),
            "rtts_ms": [_ms(r) for r in rtts],
            "agent_version": info.agent_version,
            "protocol_version": info.protocol_version,
            "protocols": info.protocols,
            "listen_addrs": [str(a) for a in info.listen_addrs],
            "observed_addr": str(info.observed_addr) if info.observed_addr else None,
            # the peer's signed peer record, verified (None: it sent none, or a bad one)
            "peer_record_addrs": (
                [str(a) for a in info.peer_record.addrs] if info.peer_record else None
            ),
        }
        if args.json:
            _emit(summary)
        else:
            _emit(
                f"{peer}: handshake+1 RTT {summary['handshake_plus_one_rtt_ms']} ms, "
                f"median RTT {summary['rtt_ms_median']} ms, agent {info.agent_version}, "
                f"{len(info.protocols)} protocols"
            )
    return 0


async def cmd_perf(args: argparse.Namespace) -> int:
    moved = 0

    def progress(n: int) -> None:
        nonlocal moved
        moved += n

    async def report(start: float) -> None:
        last = 0
        while True:
            await anyio.sleep(1)
            elapsed = anyio.current_time() - start
            rate = (moved - last) / 2**20
            last = moved
            print(f"perf: {moved} bytes in {elapsed:.1f} s ({rate:.1f} MiB/s)", file=sys.stderr)

    async with make_host(args, load_or_create_key(args.key)) as host:
        peer = await host.connect(args.maddr)
        stream = await host.new_stream(peer, [perf.PROTOCOL_ID])
        async with stream, anyio.create_task_group() as tg:
            tg.start_soon(report, anyio.current_time())
            result = await perf.run_perf(stream, args.upload_bytes, args.download_bytes, progress)
            tg.cancel_scope.cancel()
    line = {
        "upload_bytes": result.upload_bytes,
        "download_bytes": result.download_bytes,
        "seconds": round(result.seconds, 6),
        "upload_seconds": round(result.upload_seconds, 6),
        "mib_per_s": round(result.mib_per_s, 2),
    }
    if args.json:
        _emit(line)
    else:
        _emit(
            f"perf: up {result.upload_bytes} B, down {result.download_bytes} B in "
            f"{result.seconds:.3f} s = {result.mib_per_s:.1f} MiB/s"
        )
    return 0


async def cmd_echo(args: argparse.Namespace) -> int:
    data = os.urandom(args.bytes)
    async with make_host(args, load_or_create_key(args.key)) as host:
        peer = await host.connect(args.maddr)
        stream = await host.new_stream(peer, [echo.PROTOCOL_ID])
        start = anyio.current_time()
        async with stream:
            received = await echo.echo_exchange(stream, data)
        seconds = anyio.current_time() - start
    ok = received == data
    line = {
        "remote_peer": str(peer),
        "echo_bytes": len(data),
        "echo_ok": ok,
        "echo_seconds": round(seconds, 6),
    }
    _emit(line if args.json else f"echo: {len(data)} bytes, ok={ok}, {seconds:.3f} s")
    return 0 if ok else 1


async def cmd_pubsub(args: argparse.Namespace) -> int:
    from p2pstack.pubsub import FloodSub, GossipSub, PubSub

    key = load_or_create_key(args.key)
    async with make_host(args, key, args.listen) as host:
        router = FloodSub() if args.router == "floodsub" else GossipSub()
        async with PubSub(host, router) as ps, anyio.create_task_group() as tg:
            serve_all(host)
            _print_addrs(host)
            sub = await ps.subscribe(args.topic)

            async def show() -> None:
                async for msg in sub:
                    if msg.received_from is None:
                        continue  # our own
                    text = msg.data.decode("utf-8", errors="replace")
                    if args.json:
                        _emit(
                            {
                                "from": str(msg.source) if msg.source else None,
                                "topic": msg.topic,
                                "data": text,
                                "id": msg.msg_id.hex(),
                                "seqno": msg.seqno,
                                "received_from": str(msg.received_from),
                            }
                        )
                    else:
                        _emit(f"{msg.source}: {text}")

            tg.start_soon(show)
            for target in args.connect or []:
                await host.connect(target)
            await ps.wait_for_peers(args.topic)
            if args.publish is not None:
                await ps.publish(args.topic, args.publish.encode())
            async for line in anyio.wrap_file(sys.stdin):
                await ps.publish(args.topic, line.rstrip("\n").encode())
            await ps.flush()
            tg.cancel_scope.cancel()
    return 0


# ---------------------------------------------------------------------------- parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2pstack", description="p2pstack libp2p node")
    parser.add_argument("--backend", choices=["trio", "asyncio"], default="trio")
    parser.add_argument("--security", choices=["noise", "tls", "both"], default="both")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], Awaitable[int]], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=func)
        p.add_argument("--key", help="private key file (created if missing)")
        return p

    add("id", cmd_id, "print the peer ID")
    p = add("listen", cmd_listen, "serve ping, identify, perf and echo")
    p.add_argument("--listen", action="append", metavar="MADDR")
    p = add("ping", cmd_ping, "connect, identify and ping")
    p.add_argument("maddr")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p = add("perf", cmd_perf, "run /perf/1.0.0 against a peer")
    p.add_argument("maddr")
    p.add_argument("--upload-bytes", type=int, required=True)
    p.add_argument("--download-bytes", type=int, required=True)
    p.add_argument("--json", action="store_true")
    p = add("echo", cmd_echo, "send bytes over /echo/1.0.0 and verify them")
    p.add_argument("maddr")
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--json", action="store_true")
    p = add("pubsub", cmd_pubsub, "chat on a gossipsub topic")
    p.add_argument("--topic", required=True)
    p.add_argument("--listen", action="append", metavar="MADDR")
    p.add_argument("--connect", action="append", metavar="MADDR")
    p.add_argument("--publish", metavar="TEXT")
    p.add_argument("--json", action="store_true")
    p.add_argument("--router", choices=["gossipsub", "floodsub"], default="gossipsub")
    p = sub.add_parser("interop", help="test-plans interop peer, configured by environment")
    p.set_defaults(func=None)
    p = sub.add_parser("gossipsub-interop", help="test-plans gossipsub-interop node")
    p.set_defaults(func=None)
    p.add_argument("--params", required=True)
    p.add_argument("--node-id", type=int)
    p.add_argument("--loopback-base-port", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        import logging

        # Only our own debug output: py-multiaddr logs every codec call at DEBUG.
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        logging.getLogger("p2pstack").setLevel(logging.DEBUG)
    if args.command == "interop":
        from p2pstack.interop.peer import main as interop_main

        return interop_main(backend=args.backend)
    if args.command == "gossipsub-interop":
        from p2pstack.interop import gossipsub_interop

        forwarded = ["--params", args.params, "--backend", args.backend]
        if args.node_id is not None:
            forwarded += ["--node-id", str(args.node_id)]
        if args.loopback_base_port is not None:
            forwarded += ["--loopback-base-port", str(args.loopback_base_port)]
        return gossipsub_interop.main(forwarded)
    try:
        return int(anyio.run(args.func, args, backend=args.backend))
    except KeyboardInterrupt:
        return 130
    except (P2PError, OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
        print(f"p2pstack {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:
        # A task group wraps the one error that ended it; show that error itself.
        while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
            group = group.exceptions[0]
        print(f"p2pstack {args.command}: {type(group).__name__}: {group}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
