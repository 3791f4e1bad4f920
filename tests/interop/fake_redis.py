"""A Redis stand-in for tests: RPUSH, BLPOP and DEL over RESP, parsed with our own
``RespParser`` (commands are RESP arrays, the same grammar as replies)."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc

from p2pstack.interop.resp import RespParser, encode_command


class FakeRedis:
    def __init__(self) -> None:
        self.lists: defaultdict[bytes, deque[bytes]] = defaultdict(deque)
        self.pushed = anyio.Event()
        self.commands: list[list[bytes]] = []

    async def _serve(self, stream: anyio.abc.ByteStream) -> None:
        parser = RespParser()
        async with stream:
            while True:
                command = parser.next_reply()
                if command is RespParser.NEED_DATA:
                    try:
                        parser.feed(await stream.receive())
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                    continue
                assert isinstance(command, list)
                self.commands.append(command)
                await stream.send(await self._execute(command))

    async def _execute(self, command: list[bytes]) -> bytes:
        name = command[0].upper()
        if name == b"RPUSH":
            self.lists[command[1]].extend(command[2:])
            self.pushed.set()
            self.pushed = anyio.Event()
            return b":%d\r\n" % len(self.lists[command[1]])
        if name == b"DEL":
            existed = command[1] in self.lists
            self.lists.pop(command[1], None)
            return b":%d\r\n" % existed
        if name == b"BLPOP":
            key, wait = command[1], float(command[2])
            with anyio.move_on_after(wait if wait > 0 else float("inf")):
                while not self.lists[key]:
                    await self.pushed.wait()
                return encode_command(key, self.lists[key].popleft())
            return b"*-1\r\n"
        return b"-ERR unknown command '%s'\r\n" % name

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self._serve)
            yield f"127.0.0.1:{port}"
            tg.cancel_scope.cancel()
