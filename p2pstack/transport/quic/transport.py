"""The QUIC v1 transport: ``/ip4|ip6|dns|dns4|dns6/<host>/udp/<port>/quic-v1``.

libp2p over QUIC (libp2p/specs quic/README.md): ALPN ``libp2p``, TLS 1.3 with the libp2p
certificate both ways (tls/tls.md), one QUIC bidirectional stream per libp2p stream. QUIC
brings its own security and multiplexing, so the swarm uses a connection as it comes
(:class:`~p2pstack.transport.abc.MuxedTransport`).

Lifetime: ``run()`` (the swarm starts it) owns every socket; ``listen`` binds one and serves
it; ``dial`` sends from a listening socket of the right family when there is one (so the
peer sees our listen address), else from one shared ephemeral socket per family. Closing a
listener closes its socket, and so every connection that uses it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2pstack.errors import ConfigError
from p2pstack.identity import KeyPair, PeerID
from p2pstack.muxer.abc import MuxedConnection
from p2pstack.transport.abc import MuxedConnectionHandler, MuxedListener, MuxedTransport

if TYPE_CHECKING:  # aioquic (and X.509) load on first use: a host that never speaks QUIC is lighter
    from aioquic.quic.configuration import QuicConfiguration
    from cryptography import x509

    from p2pstack.transport.quic.endpoint import QuicEndpoint

QUIC_V1 = 0x00000001
#: Length of the connection IDs we issue (short-header packets are routed by it).
CID_LENGTH = 8
#: The ALPN protocol of libp2p over QUIC.
ALPN_LIBP2P = "libp2p"

_HOST_PROTOCOLS = ("ip4", "ip6", "dns", "dns4", "dns6")
#: A connection with no packets for this long is gone (go-libp2p uses 30 s as well).
IDLE_TIMEOUT = 30.0
#: Datagram size on loopback, whose MTU is 64 KiB (the largest allowed is 65507, IPv4's
#: largest UDP payload). Per packet aioquic costs tens of microseconds of Python, so large
#: packets are what makes bulk transfers fast; 32 KiB did as well as 64 KiB here.
LOOPBACK_DATAGRAM_SIZE = 32768
MAX_DATAGRAM_SIZE = 65507
#: A PING this often keeps a quiet connection alive (and NAT bindings open).
KEEPALIVE_INTERVAL = 15.0


def split_quic_addr(addr: Multiaddr) -> tuple[str, int, str]:
    """``(host, port, host protocol)`` of a QUIC v1 multiaddr (a trailing /p2p is ignored)."""
    parts = [(p.name, v) for p, v in addr.items()]
    if parts and parts[-1][0] == "p2p":
        parts = parts[:-1]
    if (
        len(parts) != 3
        or parts[0][0] not in _HOST_PROTOCOLS
        or parts[1][0] != "udp"
        or parts[2][0] != "quic-v1"
    ):
        raise ConfigError(f"not a QUIC v1 multiaddr: {addr}")
    return parts[0][1], int(parts[1][1]), parts[0][0]


def _is_quic(addr: Multiaddr) -> bool:
    try:
        split_quic_addr(addr)
    except (ConfigError, ValueError):
        return False
    return True


class QuicTransport(MuxedTransport):
    """QUIC v1 for the host whose identity is ``identity``.

    ``max_inbound_streams``: streams the peer may have open at once on a connection;
    ``idle_timeout`` and ``keepalive_interval`` in seconds (``None`` turns keep-alive off);
    ``loopback_datagram_size``: the datagram size on loopback paths (1200 elsewhere), where
    fewer, larger packets make bulk transfers several times faster.
    """

    def __init__(
        self,
        identity: KeyPair,
        *,
        max_inbound_streams: int = 256,
        idle_timeout: float = IDLE_TIMEOUT,
        keepalive_interval: float | None = KEEPALIVE_INTERVAL,
        handshake_timeout: float = 10.0,
        loopback_datagram_size: int = LOOPBACK_DATAGRAM_SIZE,
    ) -> None:
        if not 1200 <= loopback_datagram_size <= MAX_DATAGRAM_SIZE:
            raise ConfigError(f"loopback_datagram_size must be 1200..{MAX_DATAGRAM_SIZE}")
        for name, value in (
            ("idle_timeout", idle_timeout),
            ("keepalive_interval", keepalive_interval),
            ("handshake_timeout", handshake_timeout),
        ):
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive (got {value})")
        self.loopback_datagram_size = loopback_datagram_size
        self.identity = identity
        self.local_peer: PeerID = identity.peer_id
        self.idle_timeout = idle_timeout
        self.core_options: dict[str, Any] = {
            "max_inbound_streams": max_inbound_streams,
            "keepalive_interval": keepalive_interval,
            "handshake_timeout": handshake_timeout,
        }
        self._tg: anyio.abc.TaskGroup | None = None
        self._endpoints: list[QuicEndpoint] = []
        self._dial_endpoints: dict[int, QuicEndpoint] = {}
        self._dial_endpoint_lock = anyio.Lock()  # concurrent first dials share one socket

    # ------------------------------------------------------------------ configuration

    @functools.cached_property
    def _certificate(self) -> tuple[x509.Certificate, Any]:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from p2pstack.security.tls.certificate import generate_certificate

        cert_der, key_der = generate_certificate(self.identity)
        return (
            x509.load_der_x509_certificate(cert_der),
            serialization.load_der_private_key(key_der, password=None),
        )

    def configuration(self, *, is_client: bool) -> QuicConfiguration:
        from aioquic.quic.configuration import QuicConfiguration

        certificate, private_key = self._certificate
        return QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[ALPN_LIBP2P],
            certificate=certificate,
            private_key=private_key,
            verify_mode=ssl.CERT_NONE,  # our own check runs instead (see quic/tls.py)
            supported_versions=[QUIC_V1],
            connection_id_length=CID_LENGTH,
            idle_timeout=self.idle_timeout,
        )

    # ------------------------------------------------------------------ Transport

    def can_dial(self, addr: Multiaddr) -> bool:
        return _is_quic(addr)

    def can_listen(self, addr: Multiaddr) -> bool:
        return _is_quic(addr)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            for endpoint in list(self._endpoints):
                endpoint.close()

    async def _start(self, sock: socket.socket, listening: bool) -> QuicEndpoint:
        from p2pstack.transport.quic.endpoint import QuicEndpoint

        if self._tg is None:
            sock.close()
            raise anyio.ClosedResourceError("the QUIC transport is not running")
        endpoint = QuicEndpoint(self, sock, listening)
        self._endpoints.append(endpoint)
        await self._tg.start(endpoint.run)
        return endpoint

    def _endpoint_closed(self, endpoint: QuicEndpoint) -> None:
        if endpoint in self._endpoints:
            self._endpoints.remove(endpoint)
        for family, dialer in list(self._dial_endpoints.items()):
            if dialer is endpoint:
                del self._dial_endpoints[family]

    async def listen(self, addr: Multiaddr) -> QuicListener:
        host, port, proto = split_quic_addr(addr)
        if proto.startswith("dns"):
            raise ConfigError(f"listen on an IP address, not a name: {addr}")
        _ = self._certificate  # made now rather than during the first peer's handshake
        family = socket.AF_INET6 if proto == "ip6" else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return QuicListener(await self._start(sock, listening=True))

    async def dial(self, addr: Multiaddr, expected_peer: PeerID | None) -> MuxedConnection:
        host, port, proto = split_quic_addr(addr)
        target = await _resolve(host, port, proto)
        endpoint = await self._endpoint_for(target)
        return await endpoint.connect(target, expected_peer)

    async def _endpoint_for(self, target: tuple[str, int]) -> QuicEndpoint:
        ip = ipaddress.ip_address(target[0])
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        for endpoint in self._endpoints:
            if endpoint.listening and endpoint.family == family:
                bound = ipaddress.ip_address(endpoint.local_address[0])
                if bound.is_unspecified or bound.is_loopback == ip.is_loopback:
                    return endpoint
        async with self._dial_endpoint_lock:
            dialer = self._dial_endpoints.get(family)
            if dialer is None:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
                except OSError:
                    sock.close()
                    raise
                dialer = await self._start(sock, listening=False)
                self._dial_endpoints[family] = dialer
        return dialer


class QuicListener(MuxedListener):
    def __init__(self, endpoint: QuicEndpoint) -> None:
        self._endpoint = endpoint
        host, port = endpoint.local_address
        family = "ip6" if endpoint.family == socket.AF_INET6 else "ip4"
        self._addrs = [Multiaddr(f"/{family}/{host}/udp/{port}/quic-v1")]

    @property
    def addrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    async def serve(
        self,
        handler: MuxedConnectionHandler,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async with anyio.create_task_group() as tg:
            task_status.started()
            async for conn in self._endpoint.accepted:
                tg.start_soon(_handle, handler, conn)

    async def aclose(self) -> None:
        self._endpoint.close()
        await anyio.lowlevel.checkpoint()


async def _handle(handler: MuxedConnectionHandler, conn: MuxedConnection) -> None:
    await handler(conn)


async def _resolve(host: str, port: int, proto: str) -> tuple[str, int]:
    if proto in ("ip4", "ip6"):
        return host, port
    family = {"dns4": socket.AF_INET, "dns6": socket.AF_INET6}.get(proto, socket.AF_UNSPEC)
    infos: Sequence[Any] = await anyio.getaddrinfo(
        host, port, family=family, type=socket.SOCK_DGRAM
    )
    if not infos:
        raise OSError(f"{host} does not resolve")
    address = infos[0][4]
    return str(address[0]), int(address[1])
