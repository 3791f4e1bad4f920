"""Helpers for testing p2pstack and protocols built on it."""

from p2pstack.testing.conformance import (
    HALF_CLOSE_CHECKS,
    TWO_WAY_CHECKS,
    PairFactory,
    StreamCheck,
    StreamPair,
    StreamTraits,
    check_half_closeable_stream,
    check_two_way_stream,
)
from p2pstack.testing.loopback import noise_stream_pair, tcp_stream_pair
from p2pstack.testing.memory import MemoryByteStream, memory_stream_pair

__all__ = [
    "HALF_CLOSE_CHECKS",
    "TWO_WAY_CHECKS",
    "MemoryByteStream",
    "PairFactory",
    "StreamCheck",
    "StreamPair",
    "StreamTraits",
    "check_half_closeable_stream",
    "check_two_way_stream",
    "memory_stream_pair",
    "noise_stream_pair",
    "tcp_stream_pair",
]
