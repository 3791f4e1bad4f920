"""libp2p TLS 1.3 security (libp2p/specs tls/tls.md).

``certificate`` makes and verifies the self-signed certificate that carries the libp2p
public key extension; :class:`Tls` (``/tls/1.0.0`` over a byte stream, ``transport``) and
its :class:`TlsStream` (``stream``) use it on each side of the handshake.
"""

from p2pstack.security.tls.certificate import (
    EXTENSION_OID,
    SIGNATURE_PREFIX,
    SignedKey,
    generate_certificate,
    verify_certificate,
    verify_certificate_key,
)
from p2pstack.security.tls.stream import TlsRecordError, TlsStream
from p2pstack.security.tls.transport import Tls

__all__ = [
    "EXTENSION_OID",
    "SIGNATURE_PREFIX",
    "SignedKey",
    "Tls",
    "TlsRecordError",
    "TlsStream",
    "generate_certificate",
    "verify_certificate",
    "verify_certificate_key",
]
