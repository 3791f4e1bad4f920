"""Real connected stream pairs over loopback TCP, for tests that need the kernel's sockets
(buffers that fill, half-close by shutdown, resets) rather than a memory pair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2pstack.identity import KeyPair
from p2pstack.security.noise import Noise, NoiseStream
from p2pstack.transport.tcp import TcpStream, TcpTransport


@asynccontextmanager
async def tcp_stream_pair() -> AsyncIterator[tuple[TcpStream, TcpStream]]:
    """A loopback connection made through the TCP transport's public API: ``(dialer's
    stream, listener's stream)``. Both are closed when the block ends."""
    transport = TcpTransport()
    listener = await transport.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    hand_over, accepted = anyio.create_memory_object_stream[anyio.abc.ByteStream](1)
    done = anyio.Event()

    async def handler(stream: anyio.abc.ByteStream) -> None:
        await hand_over.send(stream)
        await done.wait()  # the handler owns the stream: keep it until the block ends

    async with anyio.create_task_group() as tg:
        await tg.start(listener.serve, handler)
        client = await transport.dial(listener.addrs[0])
        served = await accepted.receive()
        await listener.aclose()
        assert isinstance(served, TcpStream)
        try:
            yield client, served
        finally:
            done.set()
            await anyio.aclose_forcefully(client)
            await anyio.aclose_forcefully(served)
            hand_over.close()
            accepted.close()


async def noise_stream_pair(
    dialer: anyio.abc.ByteStream, listener: anyio.abc.ByteStream
) -> tuple[NoiseStream, NoiseStream]:
    """Run the Noise handshake over a connected pair (fresh identities, the first stream
    as initiator) and return the two secure streams."""
    out: dict[str, NoiseStream] = {}

    async def outbound() -> None:
        out["dialer"] = await Noise(KeyPair.generate()).secure_outbound(dialer, None)

    async def inbound() -> None:
        out["listener"] = await Noise(KeyPair.generate()).secure_inbound(listener)

    async with anyio.create_task_group() as tg:
        tg.start_soon(outbound)
        tg.start_soon(inbound)
    return out["dialer"], out["listener"]
