"""``/perf/1.0.0`` (libp2p/specs perf/perf.md).

The client writes the number of bytes it wants back as a u64 big-endian, uploads its bytes
and closes its write side; the server drains to EOF, then writes the requested number of
bytes and closes.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.abc

from p2pstack.errors import RemoteProtocolError

PROTOCOL_ID = "/perf/1.0.0"
CHUNK = 1 << 20
_U64 = struct.Struct(">Q")


@functools.cache
def _zeros() -> bytes:
    """What perf sends: a MiB of zeros, made when first sent rather than at import."""
    return bytes(CHUNK)


async def _send_zeros(
    stream: anyio.abc.ByteStream, n: int, progress: Callable[[int], None] | None
) -> None:
    while n > 0:
        size = min(n, CHUNK)
        zeros = _zeros()
        await stream.send(zeros if size == CHUNK else zeros[:size])
        n -= size
        if progress is not None:
            progress(size)


async def _drain(
    stream: anyio.abc.ByteStream, progress: Callable[[int], None] | None
) -> tuple[int, float | None]:
    """Read to EOF; returns (bytes read, when the first of them arrived)."""
    total = 0
    first_at: float | None = None
    while True:
        try:
            data = await stream.receive(CHUNK)
        except anyio.EndOfStream:
            return total, first_at
        if first_at is None:
            first_at = anyio.current_time()
        total += len(data)
        if progress is not None:
            progress(len(data))


async def handle_perf(stream: anyio.abc.ByteStream) -> None:
    header = b""
    while len(header) < 8:
        try:
            header += await stream.receive(8 - len(header))
        except anyio.EndOfStream:
            raise RemoteProtocolError("perf stream ended before its 8-byte header") from None
    (requested,) = _U64.unpack(header)
    await _drain(stream, None)
    await _send_zeros(stream, requested, None)
    await stream.send_eof()


@dataclass(frozen=True, slots=True)
class PerfResult:
    """``upload_seconds``: from the start to the first downloaded byte (to EOF when nothing
    is downloaded), i.e. until the server had drained the upload; ``seconds``: the whole
    exchange."""

    upload_bytes: int
    download_bytes: int
    upload_seconds: float
    seconds: float

    @property
    def download_seconds(self) -> float:
        return self.seconds - self.upload_seconds

    @property
    def mib_per_s(self) -> float:
        return (self.upload_bytes + self.download_bytes) / max(self.seconds, 1e-9) / 2**20


async def run_perf(
    stream: anyio.abc.ByteStream,
    upload_bytes: int,
    download_bytes: int,
    progress: Callable[[int], None] | None = None,
) -> PerfResult:
    """Run one perf exchange on an open ``/perf/1.0.0`` stream."""
    start = anyio.current_time()
    await stream.send(_U64.pack(download_bytes))
    await _send_zeros(stream, upload_bytes, progress)
    await stream.send_eof()
    received, first_at = await _drain(stream, progress)
    end = anyio.current_time()
    if received != download_bytes:
        raise RemoteProtocolError(f"perf server sent {received} bytes, asked for {download_bytes}")
    uploaded = first_at if first_at is not None else end
    return PerfResult(upload_bytes, received, uploaded - start, end - start)
