"""yamux (libp2p/specs yamux/README.md): a sans-IO session and its anyio shell."""

from p2pstack.muxer.yamux.connection import PROTOCOL_ID, Yamux, YamuxConnection
from p2pstack.muxer.yamux.session import YamuxSession
from p2pstack.muxer.yamux.stream import YamuxStream

__all__ = ["PROTOCOL_ID", "Yamux", "YamuxConnection", "YamuxSession", "YamuxStream"]
