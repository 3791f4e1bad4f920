"""Interop peers: p2pstack following the libp2p/test-plans transport-interop contract
(``interop/CONTRACT.md``), with the small Redis client that contract needs."""

from p2pstack.interop.peer import InteropConfig, main
from p2pstack.interop.resp import RedisClient, RedisError, RespParser

__all__ = ["InteropConfig", "RedisClient", "RedisError", "RespParser", "main"]
