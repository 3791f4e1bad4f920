"""TCP transport on anyio: ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>``.

Sockets get TCP_NODELAY (libp2p traffic is small framed messages; Nagle would add up to
40 ms to a ping). A listen address with port 0 reports the port the system bound.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from multiaddr import Multiaddr

from p2pstack import lowlevel
from p2pstack.attributes import P2PAttribute
from p2pstack.errors import ConfigError
from p2pstack.transport.abc import ConnectionHandler, Listener, Transport

_HOST_PROTOCOLS = ("ip4", "ip6", "dns", "dns4", "dns6")
LISTEN_BACKLOG = 1024
log = logging.getLogger(__name__)
_A = TypeVar("_A")
_R = TypeVar("_R", int, bytes)


def split_tcp_addr(addr: Multiaddr) -> tuple[str, int, str]:
    """``(host, port, host protocol)`` of a TCP multiaddr (a trailing /p2p is ignored).

    Cached by binary form, answers for other addresses too: decoding the components costs
    tens of microseconds, and a dial asks twice (``can_dial``, ``dial``)."""
    split = _split_tcp_addr(addr.to_bytes())
    if split is None:
        raise ConfigError(f"not a TCP multiaddr: {addr}")
    return split


@functools.lru_cache(maxsize=1024)
def _split_tcp_addr(packed: bytes) -> tuple[str, int, str] | None:
    parts = [(p.name, v) for p, v in Multiaddr(packed).items()]
    if parts and parts[-1][0] == "p2p":
        parts = parts[:-1]
    if len(parts) != 2 or parts[0][0] not in _HOST_PROTOCOLS or parts[1][0] != "tcp":
        return None
    return parts[0][1], int(parts[1][1]), parts[0][0]


def socket_multiaddr(sockaddr: Any) -> Multiaddr:
    """The multiaddr of a socket address, built from its binary form: parsing the text form
    costs ~27 us, four times per connection (a zone such as ``%eth0`` is dropped)."""
    host, port = sockaddr[0], sockaddr[1]
    if ":" in host:
        packed = _IP6 + socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    else:
        packed = _IP4 + socket.inet_aton(host)
    return Multiaddr(packed + _TCP + port.to_bytes(2, "big"))


# Multicodec codes (single-byte varints) of the components socket_multiaddr writes.
_IP4, _IP6, _TCP = b"\x04", b"\x29", b"\x06"


def _close_socket(sock: socket.socket) -> None:
    """Close ``sock``, first waking any task waiting on it (with ClosedResourceError)."""
    anyio.notify_closing(sock)
    sock.close()


async def _connect_ip(host: str, port: int, proto: str) -> socket.socket:
    """Connect to an IP literal without a getaddrinfo round trip through a worker thread,
    which costs more than a whole loopback handshake."""
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
        return sock
    except BaseException:
        sock.close()
        raise


class TcpStream(anyio.abc.ByteStream):
    """A TCP connection as a ByteStream, driving the non-blocking socket directly.

    Besides the ByteStream methods it offers those the Noise channel's fast paths use:
    ``receive_into(buffer)`` (no intermediate bytes object), ``try_send(data)`` (write
    what the kernel takes now, without waiting), and ``receive_into_nowait(buffer)`` with
    ``wait_readable()`` (receive only what is there; wait apart from receiving).
    ``aclose()`` closes the socket and wakes any task waiting on it with
    ``ClosedResourceError``; a reset or broken connection raises ``BrokenResourceError``;
    the peer's FIN raises ``EndOfStream``.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._closed = False
        self._eof_sent = False
        self._drained = False
        self._lowlevel = lowlevel.current()
        self._send_guard = anyio.ResourceGuard("sending to")
        self._receive_guard = anyio.ResourceGuard("receiving from")
        remote = socket_multiaddr(sock.getpeername())
        local = socket_multiaddr(sock.getsockname())
        self._attrs: dict[Any, Callable[[], Any]] = {
            P2PAttribute.remote_addr: lambda: remote,
            P2PAttribute.local_addr: lambda: local,
            SocketAttribute.raw_socket: lambda: sock,
            SocketAttribute.family: lambda: sock.family,
            SocketAttribute.remote_address: lambda: sock.getpeername()[:2],
            SocketAttribute.local_address: lambda: sock.getsockname()[:2],
        }

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._attrs

    @property
    def has_buffered_data(self) -> bool:
        """Whether bytes from the peer are waiting (a non-blocking peek). multistream uses
        it to answer a pipelined proposal together with what follows."""
        if self._closed:
            return False
        try:
            return bool(self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:
            return False

    def _broken(self, exc: OSError) -> anyio.BrokenResourceError | anyio.ClosedResourceError:
        if self._closed:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError(str(exc))

    async def receive(self, max_bytes: int = 65536) -> bytes:
        # Handshakes come this way (the data path uses receive_into): recv() sizes its
        # result to what arrived, without zeroing a max_bytes buffer (256 KiB from Noise)
        # and copying out of it.
        data = await self._receive_with(self._sock.recv, max_bytes)
        self._drained = len(data) < max_bytes
        return data

    async def receive_into(self, buffer: memoryview) -> int:
        """Receive into ``buffer``; returns the byte count (never 0: EOF raises)."""
        data = await self._receive_with(self._sock.recv_into, buffer)
        self._drained = data < len(buffer)
        return data

    async def _receive_with(self, recv: Callable[[_A], _R], arg: _A) -> _R:
        """``recv(arg)`` (one non-blocking recv call) once the socket is readable."""
        ll = self._lowlevel
        await ll.checkpoint_if_cancelled()
        waited = False
        with self._receive_guard:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._drained:
                # The last receive emptied the socket: wait before trying, which saves
                # a recv that would almost surely fail (a syscall per message).
                self._drained = False
                await self._wait(ll.wait_readable)
                waited = True
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                try:
                    data = recv(arg)
                except BlockingIOError:
                    await self._wait(ll.wait_readable)
                    waited = True
                    continue
                except OSError as exc:
                    raise self._broken(exc) from exc
                if not data:
                    raise anyio.EndOfStream
                if not waited:
                    await ll.cancel_shielded_checkpoint()
                return data

    def receive_into_nowait(self, buffer: memoryview) -> int:
        """One non-blocking receive into ``buffer``: the byte count, 0 when nothing is
        waiting. EOF raises ``EndOfStream``. With :meth:`wait_readable` it lets a muxer
        read from whichever task needs the data (see the yamux shell)."""
        with self._receive_guard:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                n = self._sock.recv_into(buffer)
            except BlockingIOError:
                return 0
            except OSError as exc:
                raise self._broken(exc) from exc
            if not n:
                raise anyio.EndOfStream
            return n

    async def wait_readable(self) -> None:
        """Wait until a receive would not block: data, EOF or an error is waiting, or
        :meth:`interrupt_wait` was called. Consumes nothing, so a cancelled wait loses
        nothing. ``aclose()`` ends it with ``ClosedResourceError``."""
        with self._receive_guard:
            if self._closed:
                raise anyio.ClosedResourceError
            await self._wait(self._lowlevel.wait_readable)

    def interrupt_wait(self) -> None:
        """End the waits on this socket under way: :meth:`wait_readable` returns, and the
        other waits (a blocked ``send``, say) go on waiting. The socket stays open.

        This uses the event loop's close notification (``anyio.notify_closing``) without
        closing: the loops wake the socket's waiters with ``ClosedResourceError`` and drop
        its registration, which the next wait makes again; each wait here tells such a
        wake-up from a real close by ``_closed``. Rare: a muxer calls it when another
        task closes a stream whose receiver is waiting on the socket."""
        if not self._closed:
            anyio.notify_closing(self._sock)

    async def _wait(self, wait: Callable[[socket.socket], Awaitable[None]]) -> None:
        """``wait(sock)``, where a wake-up by :meth:`interrupt_wait` is not a close."""
        try:
            await wait(self._sock)
        except anyio.ClosedResourceError:
            if self._closed:
                raise

    def _check_writable(self) -> None:
        if self._closed or self._eof_sent:
            raise anyio.ClosedResourceError

    def try_send(self, data: bytes | bytearray | memoryview) -> int:
        """Write what the kernel accepts right now; returns the count (maybe 0). Not to be
        mixed with a concurrent :meth:`send`."""
        self._check_writable()
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise self._broken(exc) from exc

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        ll = self._lowlevel
        await ll.checkpoint_if_cancelled()
        view = memoryview(item)
        sock = self._sock
        with self._send_guard:
            self._check_writable()
            waited = False
            while view:
                try:
                    n = sock.send(view)
                except BlockingIOError:
                    await self._wait(ll.wait_writable)
                    waited = True
                    self._check_writable()
                    continue
                except OSError as exc:
                    raise self._broken(exc) from exc
                view = view[n:]
            if not waited:
                await ll.cancel_shielded_checkpoint()

    async def send_eof(self) -> None:
        await anyio.lowlevel.checkpoint()
        if self._closed:
            raise anyio.ClosedResourceError
        if self._eof_sent:
            return
        self._eof_sent = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise self._broken(exc) from exc

    async def aclose(self) -> None:
        """Close the socket at once (tasks waiting on it get ClosedResourceError), then
        yield once. Never waits and never raises a cancellation: closing is most often
        done in a cancelled scope (``aclose_forcefully``), where raising one would cost
        more than the close."""
        if not self._closed:
            self._closed = True
            _close_socket(self._sock)
        await self._lowlevel.cancel_shielded_checkpoint()


class TcpListener(Listener):
    """Accepts on one bound, non-blocking socket; each connection's handler gets its own
    task. ``aclose()`` stops accepting; connections already handed out live on."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._closed = False
        self._addrs = [socket_multiaddr(sock.getsockname())]

    @property
    def addrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    async def serve(
        self,
        handler: ConnectionHandler,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async def handle(conn: socket.socket) -> None:
            try:
                stream = TcpStream(conn)
            except OSError:  # the peer already hung up
                conn.close()
                return
            await handler(stream)

        sock = self._sock
        # A task per connection: spawned the backend's cheapest way.
        async with lowlevel.current().open_task_group() as tg:
            task_status.started()
            while not self._closed:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    try:
                        await anyio.wait_readable(sock)
                    except anyio.ClosedResourceError:
                        break
                    continue
                except OSError as exc:
                    if self._closed:
                        break
                    # EMFILE and friends: back off instead of spinning on the error.
                    log.warning("accept failed: %r", exc)
                    await anyio.sleep(0.1)
                    continue
                tg.start_soon(handle, conn)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            _close_socket(self._sock)
        await anyio.lowlevel.checkpoint()


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
            family = {"dns4": socket.AF_INET, "dns6": socket.AF_INET6}.get(proto, 0)
            infos = await anyio.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
            if not infos:
                raise OSError(f"{host} does not resolve")
            ip = str(infos[0][4][0])
            sock = await _connect_ip(ip, port, "ip6" if ":" in ip else "ip4")
        try:
            return TcpStream(sock)
        except OSError:
            sock.close()
            raise

    async def listen(self, addr: Multiaddr) -> TcpListener:
        host, port, proto = split_tcp_addr(addr)
        family = socket.AF_INET6 if proto == "ip6" else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        await anyio.lowlevel.checkpoint()
        return TcpListener(sock)
