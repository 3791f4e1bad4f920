"""Baseline peer: a raw anyio TCP socket pair doing what /perf/1.0.0 does, unencrypted and
unmultiplexed. ``python -m bench.raw_tcp serve BACKEND`` prints its port;
``... client PORT UP DOWN BACKEND`` prints the JSON result. It also answers 32-byte pings for the
latency baseline (``... ping PORT COUNT BACKEND``). BACKEND is the anyio backend (trio or asyncio)
of the p2pstack side being compared, so that both sides of a ratio pay the same event loop."""

from __future__ import annotations

import json
import socket
import struct
import sys

import anyio
import anyio.abc

CHUNK = 1 << 20
ZEROS = bytes(CHUNK)


async def _drain(stream: anyio.abc.ByteStream) -> int:
    total = 0
    while True:
        try:
            total += len(await stream.receive(CHUNK))
        except anyio.EndOfStream:
            return total


async def _send(stream: anyio.abc.ByteStream, n: int) -> None:
    while n > 0:
        size = min(n, CHUNK)
        await stream.send(ZEROS if size == CHUNK else ZEROS[:size])
        n -= size


async def _handle(stream: anyio.abc.SocketStream) -> None:
    stream.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
        socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
    )
    async with stream:
        header = await stream.receive(9)
        if header[:1] == b"p":  # ping mode: echo 32-byte messages until EOF
            buf = header[1:]
            while True:
                while len(buf) < 32:
                    try:
                        buf += await stream.receive()
                    except anyio.EndOfStream:
                        return
                await stream.send(buf[:32])
                buf = buf[32:]
        (down,) = struct.unpack(">Q", header[1:9])
        await _drain(stream)
        await _send(stream, down)
        await stream.send_eof()


async def serve() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    print(listener.extra(anyio.abc.SocketAttribute.local_port), flush=True)
    await listener.serve(_handle)


async def client(port: int, up: int, down: int) -> None:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    start = anyio.current_time()
    async with stream:
        await stream.send(b"d" + struct.pack(">Q", down))
        await _send(stream, up)
        await stream.send_eof()
        got = await _drain(stream)
    seconds = anyio.current_time() - start
    assert got == down
    print(
        json.dumps(
            {
                "upload_bytes": up,
                "download_bytes": down,
                "seconds": seconds,
                "mib_per_s": (up + down) / seconds / 2**20,
            }
        )
    )


async def ping(port: int, count: int) -> None:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    rtts = []
    async with stream:
        await stream.send(b"p")
        for _ in range(count):
            start = anyio.current_time()
            await stream.send(b"x" * 32)
            got = b""
            while len(got) < 32:
                got += await stream.receive()
            rtts.append(anyio.current_time() - start)
    print(json.dumps({"rtts": rtts}))


if __name__ == "__main__":
    mode, *args, backend = sys.argv[1:]
    if mode == "serve":
        anyio.run(serve, backend=backend)
    elif mode == "client":
        anyio.run(client, int(args[0]), int(args[1]), int(args[2]), backend=backend)
    else:
        anyio.run(ping, int(args[0]), int(args[1]), backend=backend)
