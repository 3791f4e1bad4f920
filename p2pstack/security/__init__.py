"""Secure channels: the interfaces, Noise (and later TLS)."""

from p2pstack.security.abc import SecureStream, SecureTransport

__all__ = ["SecureStream", "SecureTransport"]
