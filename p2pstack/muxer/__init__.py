"""Stream multiplexers: the interfaces and yamux."""

from p2pstack.muxer.abc import MuxedConnection, MuxedStream, StreamMuxer

__all__ = ["MuxedConnection", "MuxedStream", "StreamMuxer"]
