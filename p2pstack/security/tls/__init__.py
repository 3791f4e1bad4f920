"""libp2p TLS security (libp2p/specs tls/tls.md).

``certificate`` makes and verifies the self-signed certificate that carries the libp2p
public key extension; :class:`Tls` (``/tls/1.0.0`` over a byte stream, ``transport``) runs
the handshake (``handshake``) and gives a :class:`TlsStream` (``stream``).

Only :class:`Tls` is imported with this package. The rest loads on first use (a handshake,
or an attribute of this package): it brings pyOpenSSL and the X.509 code, which a host that
never speaks TLS does not need in memory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from p2pstack.security.tls.transport import PROTOCOL_ID, Tls

if TYPE_CHECKING:
    from p2pstack.security.tls.certificate import (
        EXTENSION_OID,
        SIGNATURE_PREFIX,
        SignedKey,
        generate_certificate,
        verify_certificate,
        verify_certificate_key,
    )
    from p2pstack.security.tls.stream import TlsRecordError, TlsStream

_LAZY = {
    "EXTENSION_OID": "certificate",
    "SIGNATURE_PREFIX": "certificate",
    "SignedKey": "certificate",
    "generate_certificate": "certificate",
    "verify_certificate": "certificate",
    "verify_certificate_key": "certificate",
    "TlsRecordError": "stream",
    "TlsStream": "stream",
}

__all__ = [
    "EXTENSION_OID",
    "PROTOCOL_ID",
    "SIGNATURE_PREFIX",
    "SignedKey",
    "Tls",
    "TlsRecordError",
    "TlsStream",
    "generate_certificate",
    "verify_certificate",
    "verify_certificate_key",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
