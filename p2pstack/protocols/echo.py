"""``/echo/1.0.0``: every byte back until the peer half-closes, then we close. For tests
and interop runs (go, rust and js test peers serve the same protocol)."""

from __future__ import annotations

import anyio
import anyio.abc

PROTOCOL_ID = "/echo/1.0.0"


async def handle_echo(stream: anyio.abc.ByteStream) -> None:
    while True:
        try:
            data = await stream.receive(1 << 20)
        except anyio.EndOfStream:
            break
        await stream.send(data)
    await stream.send_eof()
