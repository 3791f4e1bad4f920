"""``/echo/1.0.0``: every byte back until the peer half-closes, then we close. For tests
and interop runs (go, rust and js test peers serve the same protocol)."""

from __future__ import annotations

import anyio
import anyio.abc

PROTOCOL_ID = "/echo/1.0.0"
CHUNK = 1 << 20


async def handle_echo(stream: anyio.abc.ByteStream) -> None:
    while True:
        try:
            data = await stream.receive(CHUNK)
        except anyio.EndOfStream:
            break
        await stream.send(data)
    await stream.send_eof()


async def echo_exchange(stream: anyio.abc.ByteStream, data: bytes) -> bytes:
    """Client side: send ``data`` (in 1 MiB writes, then EOF) while reading the echo;
    returns what came back. Closes nothing."""
    received = bytearray()
    view = memoryview(data)

    async def upload() -> None:
        for pos in range(0, len(data), CHUNK):
            await stream.send(bytes(view[pos : pos + CHUNK]))
        await stream.send_eof()

    async with anyio.create_task_group() as tg:
        tg.start_soon(upload)
        while True:
            try:
                received += await stream.receive(CHUNK)
            except anyio.EndOfStream:
                break
    return bytes(received)
