"""libp2p TLS 1.3 security (libp2p/specs tls/tls.md).

``certificate`` makes and verifies the self-signed certificate that carries the libp2p
public key extension; the TLS stream built on it (``/tls/1.0.0`` over TCP, and QUIC) uses
these two functions on each side of the handshake.
"""

from p2pstack.security.tls.certificate import (
    EXTENSION_OID,
    SIGNATURE_PREFIX,
    SignedKey,
    generate_certificate,
    verify_certificate,
    verify_certificate_key,
)

__all__ = [
    "EXTENSION_OID",
    "SIGNATURE_PREFIX",
    "SignedKey",
    "generate_certificate",
    "verify_certificate",
    "verify_certificate_key",
]
