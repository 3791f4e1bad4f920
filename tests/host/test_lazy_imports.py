"""What a host loads before anyone connects, and what it loads only on first use.

A listener that no peer has reached yet needs neither the protobuf runtime, nor pyOpenSSL and
the X.509 code (TLS), nor aioquic (QUIC): together they are several MiB of resident memory.
Each test runs in a fresh interpreter, since this one has imported everything already."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_LAZY = ["google.protobuf.descriptor_pool", "OpenSSL", "cryptography.x509", "aioquic"]

_IDLE_LISTENER = """
import sys
import anyio
from p2pstack import Host

async def main():
    async with Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as host:
        assert host.listen_addrs and host.peer_id
        print(",".join(m for m in {lazy!r} if m in sys.modules))

anyio.run(main, backend={backend!r})
"""

_TWO_HOSTS = """
import sys
import anyio
from p2pstack import Host, KeyPair, Tls

async def main():
    c_key, d_key = KeyPair.generate(), KeyPair.generate()
    async with Host(listen_addrs=["/ip4/127.0.0.1/tcp/0"]) as a, Host() as b:
        peer = await b.connect(a.addrs[0])
        assert peer == a.peer_id
        loaded = [m for m in {lazy!r} if m in sys.modules]
        tls_only = Host(c_key, listen_addrs=["/ip4/127.0.0.1/tcp/0"], security=[Tls(c_key)])
        async with tls_only as c, Host(d_key) as d:  # d offers Noise, then TLS
            assert await d.connect(c.addrs[0]) == c.peer_id
        print(",".join(loaded) + ";" + ",".join(m for m in {lazy!r} if m in sys.modules))

anyio.run(main, backend={backend!r})
"""


def _run(template: str, backend: str) -> str:
    code = textwrap.dedent(template).format(lazy=_LAZY, backend=backend)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


def test_an_idle_listener_loads_no_protobuf_tls_or_quic(anyio_backend_name: str) -> None:
    assert _run(_IDLE_LISTENER, anyio_backend_name) == ""


def test_protobuf_loads_with_the_first_connection_and_tls_with_the_first_tls_handshake(
    anyio_backend_name: str,
) -> None:
    after_noise, after_tls = _run(_TWO_HOSTS, anyio_backend_name).split(";")
    assert after_noise.split(",") == ["google.protobuf.descriptor_pool"]
    assert set(after_tls.split(",")) == {
        "google.protobuf.descriptor_pool",
        "OpenSSL",
        "cryptography.x509",
    }


def test_an_idle_trio_listener_loads_no_asyncio() -> None:
    # p2pstack.lowlevel serves both backends; on trio it must not pull asyncio in.
    code = textwrap.dedent(_IDLE_LISTENER).format(lazy=["asyncio"], backend="trio")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == ""
