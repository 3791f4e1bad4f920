"""The whole exception tree of p2pstack.

anyio's stream vocabulary comes first and is used as-is for stream state:
``anyio.EndOfStream`` (the peer finished writing), ``anyio.ClosedResourceError``
(we closed it), ``anyio.BrokenResourceError`` (the underlying connection died),
``anyio.BusyResourceError`` (two tasks used one direction at once).

Everything else a caller may need to tell apart derives from :class:`P2PError`.
"""

from __future__ import annotations

from typing import Any

import anyio


class P2PError(Exception):
    """Base of every p2pstack-specific error."""


class LocalProtocolError(P2PError):
    """We (the local program) misused a protocol core or API."""


class RemoteProtocolError(P2PError):
    """The remote peer violated a protocol.

    ``code`` is what a core wants sent back (a yamux GoAway code, a stream reset code),
    or ``None`` when the protocol has no such code.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class MessageTooLarge(RemoteProtocolError):
    """A length-prefixed message or frame exceeded its limit."""


class ProtocolNotSupported(P2PError):
    """multistream-select found no protocol both sides support."""

    def __init__(self, protocols: list[str] | tuple[str, ...] = ()) -> None:
        self.protocols = tuple(protocols)
        super().__init__(f"protocol not supported: {', '.join(self.protocols) or '(none)'}")


class HandshakeError(P2PError):
    """A security handshake failed (bad frame, bad signature, no common muxer, ...)."""


class PeerIDMismatch(HandshakeError):
    """The remote proved an identity other than the one we dialed."""

    def __init__(self, expected: Any, actual: Any) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"peer id mismatch: expected {expected}, got {actual}")


class CertificateError(HandshakeError):
    """A libp2p TLS certificate (libp2p/specs tls/tls.md) was malformed or did not verify.

    The message names the cause: unparsable DER, outside its validity period, a bad
    self-signature, a missing or malformed libp2p extension, an unsupported critical
    extension, or an identity signature that does not verify.
    """


class StreamReset(anyio.BrokenResourceError, P2PError):
    """A multiplexed stream was reset (by the remote if ``remote`` is true).

    It is a ``BrokenResourceError`` so that generic stream code treats it as a broken
    stream, and a ``P2PError`` so that callers can tell a reset apart.
    """

    def __init__(self, code: int = 0, remote: bool = True) -> None:
        self.code = code
        self.remote = remote
        who = "remote" if remote else "local"
        super().__init__(f"stream reset by {who} (code {code})")


class DialError(P2PError):
    """Every address we tried for a peer failed; ``attempts`` lists (address, error)."""

    def __init__(self, peer: Any, attempts: list[tuple[Any, BaseException]]) -> None:
        self.peer = peer
        self.attempts = list(attempts)
        detail = "; ".join(f"{addr}: {err!r}" for addr, err in self.attempts) or "no addresses"
        super().__init__(f"could not dial {peer}: {detail}")


class ResourceLimitExceeded(P2PError):
    """A configured limit (streams, connections, queue) was reached."""


class ConfigError(P2PError):
    """Invalid configuration or arguments."""


class PublishError(P2PError):
    """A pubsub publish could not be done; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class InvalidKeyError(P2PError, ValueError):
    """Bytes that do not decode to a valid key, peer ID or signature structure."""
