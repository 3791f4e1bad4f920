"""QUIC v1 (aioquic's sans-IO connection, driven by one anyio task per UDP socket).

Only :mod:`~p2pstack.transport.quic.transport` loads with this package; aioquic and the rest
load when a QUIC connection is first made (or one of their names is imported).
"""

from typing import Any

from p2pstack.transport.quic.transport import QuicListener, QuicTransport, split_quic_addr

__all__ = [
    "QuicConnectionClosed",
    "QuicListener",
    "QuicMuxedConnection",
    "QuicStream",
    "QuicTransport",
    "split_quic_addr",
]

_LAZY = {
    "QuicConnectionClosed": "p2pstack.transport.quic.connection",
    "QuicMuxedConnection": "p2pstack.transport.quic.connection",
    "QuicStream": "p2pstack.transport.quic.stream",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
