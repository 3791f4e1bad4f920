"""Helpers for testing p2pstack and protocols built on it."""

from p2pstack.testing.memory import MemoryByteStream, memory_stream_pair

__all__ = ["MemoryByteStream", "memory_stream_pair"]
