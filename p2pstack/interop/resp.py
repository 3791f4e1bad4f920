"""The few Redis commands the interop contract needs, over RESP2.

``RespParser`` is the sans-IO part: bytes in, decoded replies out. ``RedisClient`` is the
anyio shell: one TCP connection, one command at a time.

The test-plans contract only needs ``RPUSH``, ``BLPOP`` and ``DEL``; a full client library
would be a dependency for three commands, and redis-py does not run on trio.
"""

from __future__ import annotations

from types import TracebackType

import anyio
import anyio.abc

from p2pstack.errors import P2PError, RemoteProtocolError

RespValue = bytes | int | list["RespValue"] | None

_MAX_LINE = 64 * 1024
_MAX_BULK = 512 * 1024 * 1024


class RedisError(P2PError):
    """Redis answered a command with an error reply (``-ERR ...``)."""


def encode_command(*args: bytes | str | int) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = str(arg).encode()
        else:
            data = arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RespParser:
    """Incremental RESP2 reply parser.

    ``feed(data)`` then ``next_reply()`` until it returns ``NEED_DATA``. Error replies are
    returned as ``RedisError`` instances (not raised), so that the caller decides.
    Malformed input raises ``RemoteProtocolError``.
    """

    NEED_DATA = object()

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_reply(self) -> RespValue | RedisError | object:
        result = self._parse(0)
        if result is None:
            return self.NEED_DATA
        value, end = result
        del self._buf[:end]
        return value

    def _line(self, pos: int) -> tuple[bytes, int] | None:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            if len(self._buf) - pos > _MAX_LINE:
                raise RemoteProtocolError("RESP line too long")
            return None
        return bytes(self._buf[pos:end]), end + 2

    def _int(self, text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise RemoteProtocolError(f"bad RESP integer {text[:32]!r}") from None

    def _parse(self, pos: int) -> tuple[RespValue | RedisError, int] | None:
        line = self._line(pos)
        if line is None:
            return None
        head, pos = line
        if not head:
            raise RemoteProtocolError("empty RESP line")
        kind, rest = head[:1], head[1:]
        if kind == b"+":
            return rest, pos
        if kind == b"-":
            return RedisError(rest.decode(errors="replace")), pos
        if kind == b":":
            return self._int(rest), pos
        if kind == b"$":
            size = self._int(rest)
            if size == -1:
                return None, pos
            if not 0 <= size <= _MAX_BULK:
                raise RemoteProtocolError(f"bad RESP bulk length {size}")
            if len(self._buf) < pos + size + 2:
                return None
            if self._buf[pos + size : pos + size + 2] != b"\r\n":
                raise RemoteProtocolError("RESP bulk string not followed by CRLF")
            return bytes(self._buf[pos : pos + size]), pos + size + 2
        if kind == b"*":
            count = self._int(rest)
            if count == -1:
                return None, pos
            if count < 0:
                raise RemoteProtocolError(f"bad RESP array length {count}")
            items: list[RespValue] = []
            for _ in range(count):
                item = self._parse(pos)
                if item is None:
                    return None
                value, pos = item
                if isinstance(value, RedisError):
                    raise RemoteProtocolError("error reply inside a RESP array")
                items.append(value)
            return items, pos
        raise RemoteProtocolError(f"unknown RESP type byte {kind!r}")


class RedisClient:
    """``async with await RedisClient.connect("127.0.0.1:6379") as redis:``.

    Commands run one at a time (a lock serialises them). Closing the client closes the
    socket; a cancelled command leaves the connection unusable (the reply would be
    misattributed), so the client closes itself then.
    """

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._parser = RespParser()
        self._lock = anyio.Lock()

    @classmethod
    async def connect(cls, addr: str) -> RedisClient:
        host, _, port = addr.rpartition(":")
        if not host:
            raise ValueError(f"redis address {addr!r} is not host:port")
        return cls(await anyio.connect_tcp(host.strip("[]"), int(port)))

    async def __aenter__(self) -> RedisClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def command(self, *args: bytes | str | int) -> RespValue:
        async with self._lock:
            try:
                await self._stream.send(encode_command(*args))
                reply = await self._reply()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._stream.aclose()
                raise
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def _reply(self) -> RespValue | RedisError:
        while True:
            reply = self._parser.next_reply()
            if reply is not RespParser.NEED_DATA:
                return reply  # type: ignore[return-value]
            try:
                self._parser.feed(await self._stream.receive())
            except anyio.EndOfStream:
                raise RemoteProtocolError("redis closed the connection") from None

    async def rpush(self, key: str, value: str) -> int:
        reply = await self.command("RPUSH", key, value)
        assert isinstance(reply, int)
        return reply

    async def delete(self, key: str) -> int:
        reply = await self.command("DEL", key)
        assert isinstance(reply, int)
        return reply

    async def blpop(self, key: str, wait_seconds: float) -> str | None:
        """Pop the head of list ``key``, waiting server-side up to ``wait_seconds``
        (0: forever); ``None`` when nothing came."""
        reply = await self.command("BLPOP", key, f"{wait_seconds:g}")
        if reply is None:
            return None
        if not (isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes)):
            raise RemoteProtocolError(f"unexpected BLPOP reply {reply!r}")
        return reply[1].decode()
