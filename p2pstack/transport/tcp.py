"""TCP transport on anyio: ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>``.

Sockets get TCP_NODELAY (libp2p traffic is small framed messages; Nagle would add up to
40 ms to a ping). A listen address with port 0 reports the port the system bound.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from multiaddr import Multiaddr

from p2pstack.attributes import P2PAttribute
from p2pstack.errors import ConfigError
from p2pstack.transport.abc import ConnectionHandler, Listener, Transport

_HOST_PROTOCOLS = ("ip4", "ip6", "dns", "dns4", "dns6")


def split_tcp_addr(addr: Multiaddr) -> tuple[str, int, str]:
    """``(host, port, host protocol)`` of a TCP multiaddr (a trailing /p2p is ignored)."""
    parts = [(p.name, v) for p, v in addr.items()]
    if parts and parts[-1][0] == "p2p":
        parts = parts[:-1]
    if len(parts) != 2 or parts[0][0] not in _HOST_PROTOCOLS or parts[1][0] != "tcp":
        raise ConfigError(f"not a TCP multiaddr: {addr}")
    return parts[0][1], int(parts[1][1]), parts[0][0]


def socket_multiaddr(sockaddr: Any) -> Multiaddr:
    host, port = sockaddr[0], sockaddr[1]
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/tcp/{port}")


async def _connect_ip(host: str, port: int, proto: str) -> anyio.abc.SocketStream:
    """Connect to an IP literal without anyio's getaddrinfo round trip through a worker
    thread, which costs more than the whole loopback handshake."""
    family = socket.AF_INET6 if proto == "ip6" else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            sock.connect((host, port))
        except BlockingIOError:
            await anyio.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, f"connect to {host}:{port}: {os.strerror(error)}") from None
        return await anyio.abc.SocketStream.from_socket(sock)
    except BaseException:
        sock.close()
        raise


class TcpStream(anyio.abc.ByteStream):
    """An anyio socket stream with multiaddr attributes. Closing closes the socket."""

    def __init__(self, inner: anyio.abc.SocketStream) -> None:
        self._inner = inner
        raw = inner.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        remote = socket_multiaddr(inner.extra(SocketAttribute.remote_address))
        local = socket_multiaddr(inner.extra(SocketAttribute.local_address))
        attrs: dict[Any, Callable[[], Any]] = {**inner.extra_attributes}
        attrs[P2PAttribute.remote_addr] = lambda: remote
        attrs[P2PAttribute.local_addr] = lambda: local
        self._attrs = attrs

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._attrs


class TcpListener(Listener):
    def __init__(self, inner: anyio.abc.Listener[anyio.abc.SocketStream], addrs: list[Multiaddr]):
        self._inner = inner
        self._addrs = addrs

    @property
    def addrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    async def serve(
        self,
        handler: ConnectionHandler,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async def wrapped(sock: anyio.abc.SocketStream) -> None:
            try:
                stream = TcpStream(sock)
            except OSError:  # the peer already hung up
                await anyio.aclose_forcefully(sock)
                return
            await handler(stream)

        async with anyio.create_task_group() as tg:
            task_status.started()
            await self._inner.serve(wrapped, tg)

    async def aclose(self) -> None:
        await self._inner.aclose()


class TcpTransport(Transport):
    def can_dial(self, addr: Multiaddr) -> bool:
        try:
            _, port, _ = split_tcp_addr(addr)
        except ConfigError:
            return False
        return port != 0

    def can_listen(self, addr: Multiaddr) -> bool:
        try:
            _, _, proto = split_tcp_addr(addr)
        except ConfigError:
            return False
        return proto in ("ip4", "ip6")

    async def dial(self, addr: Multiaddr) -> TcpStream:
        host, port, proto = split_tcp_addr(addr)
        if proto in ("ip4", "ip6"):
            sock = await _connect_ip(host, port, proto)
        else:
            sock = await anyio.connect_tcp(host, port)
        try:
            return TcpStream(sock)
        except OSError:
            await anyio.aclose_forcefully(sock)
            raise

    async def listen(self, addr: Multiaddr) -> TcpListener:
        host, port, _ = split_tcp_addr(addr)
        inner = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
        addrs = [
            socket_multiaddr(listener.extra(SocketAttribute.local_address))
            for listener in inner.listeners
        ]
        return TcpListener(inner, addrs)
