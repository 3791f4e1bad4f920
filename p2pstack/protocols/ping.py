"""``/ipfs/ping/1.0.0`` (libp2p/specs ping/ping.md).

The dialer writes 32 random bytes, the listener echoes them; this may repeat on one stream.
A peer may have at most two inbound ping streams open with us (go, rust and js use the same
limit), and we open at most one outbound ping stream per peer at a time.
"""

from __future__ import annotations

import os

import anyio
import anyio.abc

from p2pstack.errors import RemoteProtocolError

PROTOCOL_ID = "/ipfs/ping/1.0.0"
PING_SIZE = 32
MAX_INBOUND_STREAMS_PER_PEER = 2


async def _read_exactly(stream: anyio.abc.ByteStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        data += await stream.receive(n - len(data))
    return data


async def handle_ping(stream: anyio.abc.ByteStream) -> None:
    """Echo every 32-byte ping until the peer ends the stream."""
    while True:
        try:
            payload = await _read_exactly(stream, PING_SIZE)
        except anyio.EndOfStream:
            return
        await stream.send(payload)


async def ping_once(stream: anyio.abc.ByteStream) -> float:
    """One ping on an open ping stream; returns the round trip in seconds."""
    payload = os.urandom(PING_SIZE)
    start = anyio.current_time()
    await stream.send(payload)
    try:
        reply = await _read_exactly(stream, PING_SIZE)
    except anyio.EndOfStream:
        raise RemoteProtocolError("ping stream ended before the reply") from None
    rtt = anyio.current_time() - start
    if reply != payload:
        raise RemoteProtocolError("ping reply does not match")
    return rtt
