"""The libp2p TLS certificate (libp2p/specs tls/tls.md): make one, and verify a peer's.

A libp2p peer proves its identity in TLS with a self-signed X.509 certificate whose key is
*not* the identity key. The identity key instead signs the certificate's key, and that
signature travels in an extension:

* OID ``1.3.6.1.4.1.53594.1.1``, value the DER of
  ``SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }``;
* ``publicKey`` is the libp2p ``PublicKey`` protobuf of the identity key (any of the four
  key types), ``signature`` is the identity key's signature over
  ``b"libp2p-tls-handshake:" ‖ DER SubjectPublicKeyInfo of the certificate key``.

Rules of this module:

* Generating follows go-libp2p: a fresh ECDSA P-256 certificate key signs the certificate
  with ECDSA-SHA256; NotBefore is one hour in the past (clock skew), NotAfter about 100 years
  ahead; the serial number is random; issuer = subject (a random ``serialNumber`` RDN, as go
  does). The libp2p extension is the only, hence first, extension: js-libp2p reads only the
  first extension. It is not marked critical unless asked (go's choice; rust and js mark it
  critical; every implementation accepts both).
* Verifying checks, in order: the DER parses (strictly, nothing trailing); ``now`` is inside
  ``[NotBefore, NotAfter]``; the self-signature verifies with the certificate's own key
  (ECDSA P-256/P-384, Ed25519, RSA 2048..8192 PKCS#1 v1.5 or PSS; SHA-256/384/512 only);
  exactly one libp2p extension; no critical extension we do not understand; ``SignedKey`` is
  strict DER; the identity key decodes; its signature over the prefix and the
  certificate's SubjectPublicKeyInfo, as the bytes appear in the certificate, verifies.
* Every failure raises :class:`~p2pstack.errors.CertificateError` naming the cause. Only
  one certificate is handled here; refusing a chain of more than one is the TLS layer's job.
* No I/O and no clock: the caller passes ``now`` (a timezone-aware ``datetime``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from p2pstack.errors import CertificateError, ConfigError, InvalidKeyError
from p2pstack.identity import KeyPair, PeerID, PublicKey, decode_public_key
from p2pstack.identity.keys import MAX_RSA_BITS, MIN_RSA_BITS

__all__ = [
    "EXTENSION_OID",
    "SIGNATURE_PREFIX",
    "SignedKey",
    "generate_certificate",
    "verify_certificate",
    "verify_certificate_key",
]

EXTENSION_OID = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.1")
SIGNATURE_PREFIX = b"libp2p-tls-handshake:"
# go-libp2p: NotBefore = now - 1 h, NotAfter = now + 100 * 365 days.
NOT_BEFORE_SKEW = dt.timedelta(hours=1)
VALIDITY = dt.timedelta(days=100 * 365)

# Critical extensions whose meaning cannot widen what a certificate is accepted for here,
# so honouring them means nothing more to do (go's x509 parser handles these too). Any
# other critical extension, except the libp2p one, makes the certificate unacceptable.
_UNDERSTOOD_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
_ALLOWED_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
_ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
_ECDSA_ALGORITHMS = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)
_RSA_ALGORITHMS = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
        SignatureAlgorithmOID.RSASSA_PSS,
    }
)

# --- the SignedKey structure (a tiny strict DER codec) ---------------------------------

_SEQUENCE = 0x30
_OCTET_STRING = 0x04
# Lengths beyond 2**32 cannot occur in anything we accept; refusing them early keeps a
# hostile length field from meaning anything.
_MAX_LENGTH_OCTETS = 4


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _read_tlv(data: bytes, offset: int, what: str) -> tuple[int, int, int]:
    """Read one DER header at ``offset``: (tag, content start, content end).

    Strict DER: one-byte (low-number) tags, definite lengths in the fewest octets, and the
    content must lie within ``data``.
    """
    if offset + 2 > len(data):
        raise CertificateError(f"{what}: truncated DER header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise CertificateError(f"{what}: unsupported high-number DER tag")
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0:
            raise CertificateError(f"{what}: indefinite DER length")
        if count > _MAX_LENGTH_OCTETS:
            raise CertificateError(f"{what}: DER length too long")
        if start + count > len(data):
            raise CertificateError(f"{what}: truncated DER length")
        length_bytes = data[start : start + count]
        length = int.from_bytes(length_bytes, "big")
        if length_bytes[0] == 0 or length < 0x80:
            raise CertificateError(f"{what}: DER length not in its shortest form")
        start += count
    end = start + length
    if end > len(data):
        raise CertificateError(f"{what}: DER content runs past the end")
    return tag, start, end


def _expect(data: bytes, offset: int, tag: int, what: str) -> tuple[int, int]:
    found, start, end = _read_tlv(data, offset, what)
    if found != tag:
        raise CertificateError(f"{what}: expected DER tag 0x{tag:02x}, found 0x{found:02x}")
    return start, end


@dataclasses.dataclass(frozen=True)
class SignedKey:
    """The libp2p extension's value: identity ``PublicKey`` protobuf and its signature."""

    public_key: bytes
    signature: bytes

    def encode(self) -> bytes:
        """DER ``SEQUENCE { OCTET STRING public_key, OCTET STRING signature }``."""
        return _der_tlv(
            _SEQUENCE,
            _der_tlv(_OCTET_STRING, self.public_key) + _der_tlv(_OCTET_STRING, self.signature),
        )

    @classmethod
    def decode(cls, data: bytes) -> SignedKey:
        """Parse strict DER; CertificateError on anything else (including trailing bytes)."""
        data = bytes(data)
        what = "libp2p extension"
        start, end = _expect(data, 0, _SEQUENCE, what)
        if end != len(data):
            raise CertificateError(f"{what}: trailing bytes after SignedKey")
        key_start, key_end = _expect(data, start, _OCTET_STRING, f"{what} publicKey")
        sig_start, sig_end = _expect(data, key_end, _OCTET_STRING, f"{what} signature")
        if sig_end != end:
            raise CertificateError(f"{what}: SignedKey has more than two fields")
        return cls(data[key_start:key_end], data[sig_start:sig_end])

    @classmethod
    def create(cls, identity: KeyPair, certificate_spki: bytes) -> SignedKey:
        """Sign ``certificate_spki`` (DER SubjectPublicKeyInfo) with the identity key."""
        signature = identity.private.sign(SIGNATURE_PREFIX + certificate_spki)
        return cls(identity.public.encode(), signature)

    def identity_key(self, certificate_spki: bytes) -> PublicKey:
        """The identity key, once its signature over ``certificate_spki`` has verified."""
        try:
            key = decode_public_key(self.public_key)
        except InvalidKeyError as exc:
            raise CertificateError(f"libp2p extension: bad identity public key: {exc}") from exc
        if not key.verify(SIGNATURE_PREFIX + certificate_spki, self.signature):
            raise CertificateError(
                "libp2p extension: identity key's signature over the certificate key is invalid"
            )
        return key


# --- generating ------------------------------------------------------------------------


def _utc(now: dt.datetime, what: str) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError(f"{what} must be a timezone-aware datetime")
    return now.astimezone(dt.UTC)


def generate_certificate(
    identity: KeyPair, now: dt.datetime | None = None, *, critical: bool = False
) -> tuple[bytes, bytes]:
    """A new self-signed libp2p certificate for ``identity``.

    Returns ``(certificate DER, certificate private key as PKCS#8 DER)``. The certificate
    key is a fresh ECDSA P-256 key, unrelated to the identity key. ``now`` (timezone-aware,
    default the current time) places the validity window; ``critical`` marks the libp2p
    extension critical.
    """
    moment = _utc(now, "now") if now is not None else dt.datetime.now(dt.UTC)
    moment = moment.replace(microsecond=0)
    cert_key = ec.generate_private_key(ec.SECP256R1())
    spki = cert_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    extension = x509.UnrecognizedExtension(EXTENSION_OID, SignedKey.create(identity, spki).encode())
    # An issuer is required (RFC 5280 4.1.2.4); like go, a random serialNumber RDN.
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(secrets.randbits(62)))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(cert_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - NOT_BEFORE_SKEW)
        .not_valid_after(moment + VALIDITY)
        .add_extension(extension, critical=critical)
        .sign(cert_key, hashes.SHA256())
    )
    key_der = cert_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.DER), key_der


# --- verifying -------------------------------------------------------------------------


def _parse(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(bytes(der))
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        raise CertificateError(f"certificate is not valid DER X.509: {exc}") from exc


def _check_validity(certificate: x509.Certificate, now: dt.datetime) -> None:
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    if now < not_before:
        raise CertificateError(f"certificate not valid before {not_before.isoformat()}")
    if now > not_after:
        raise CertificateError(f"certificate expired at {not_after.isoformat()}")


def _check_self_signature(certificate: x509.Certificate) -> None:
    """The certificate's signature must verify with its own key, by an accepted scheme."""
    try:
        key = certificate.public_key()
        oid = certificate.signature_algorithm_oid
        hash_algorithm = certificate.signature_hash_algorithm
        parameters = certificate.signature_algorithm_parameters
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"certificate key or signature algorithm: {exc}") from exc
    tbs, signature = certificate.tbs_certificate_bytes, certificate.signature
    if hash_algorithm is not None and not isinstance(hash_algorithm, _ALLOWED_HASHES):
        raise CertificateError(f"certificate signed with weak hash {hash_algorithm.name}")
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if oid != SignatureAlgorithmOID.ED25519:
                raise CertificateError("Ed25519 certificate key with a non-Ed25519 signature")
            key.verify(signature, tbs)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, _ALLOWED_CURVES):
                raise CertificateError(f"unsupported certificate curve {key.curve.name}")
            if oid not in _ECDSA_ALGORITHMS or not isinstance(parameters, ec.ECDSA):
                raise CertificateError("EC certificate key with a non-ECDSA signature")
            key.verify(signature, tbs, parameters)
        elif isinstance(key, rsa.RSAPublicKey):
            if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
                raise CertificateError(f"unsupported RSA certificate key size {key.key_size}")
            if (
                oid not in _RSA_ALGORITHMS
                or hash_algorithm is None
                or not isinstance(parameters, padding.PKCS1v15 | padding.PSS)
            ):
                raise CertificateError("RSA certificate key with a non-RSA signature")
            key.verify(signature, tbs, parameters, hash_algorithm)
        else:
            raise CertificateError(f"unsupported certificate key type {type(key).__name__}")
    except InvalidSignature:
        raise CertificateError("certificate self-signature is invalid") from None


def _libp2p_extension(certificate: x509.Certificate) -> bytes:
    """The libp2p extension's value; rejects unknown critical extensions and duplicates."""
    try:
        extensions = certificate.extensions
    except (ValueError, x509.DuplicateExtension) as exc:
        raise CertificateError(f"certificate extensions: {exc}") from exc
    value: bytes | None = None
    for extension in extensions:
        if extension.oid == EXTENSION_OID:
            if not isinstance(extension.value, x509.UnrecognizedExtension):  # pragma: no cover
                raise CertificateError("libp2p extension parsed as a known extension")
            value = extension.value.value
        elif extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
            raise CertificateError(
                f"certificate has an unsupported critical extension {extension.oid.dotted_string}"
            )
    if value is None:
        raise CertificateError("certificate lacks the libp2p public key extension")
    return value


def _subject_public_key_info(certificate: x509.Certificate) -> bytes:
    """The SubjectPublicKeyInfo DER exactly as it appears in the certificate.

    The identity signature covers these bytes; re-encoding the parsed key could change
    them (a compressed EC point, say). The TBS was already parsed strictly by
    ``cryptography``, so this walk over its fields cannot go astray.
    """
    tbs = certificate.tbs_certificate_bytes
    what = "TBSCertificate"
    offset, _ = _expect(tbs, 0, _SEQUENCE, what)
    if tbs[offset] == 0xA0:  # [0] EXPLICIT version
        offset = _read_tlv(tbs, offset, what)[2]
    # serialNumber, signature, issuer, validity, subject: skip to subjectPublicKeyInfo.
    for _ in range(5):
        offset = _read_tlv(tbs, offset, what)[2]
    _, end = _expect(tbs, offset, _SEQUENCE, f"{what} subjectPublicKeyInfo")
    return tbs[offset:end]


def verify_certificate_key(der: bytes, now: dt.datetime) -> PublicKey:
    """Verify a peer's libp2p certificate (DER) at ``now``; return its identity public key.

    ``now`` must be timezone-aware. Raises CertificateError for any failure.
    """
    moment = _utc(now, "now")
    certificate = _parse(der)
    _check_validity(certificate, moment)
    _check_self_signature(certificate)
    signed_key = SignedKey.decode(_libp2p_extension(certificate))
    return signed_key.identity_key(_subject_public_key_info(certificate))


def verify_certificate(der: bytes, now: dt.datetime) -> PeerID:
    """Verify a peer's libp2p certificate (DER) at ``now``; return the peer ID it proves.

    See :func:`verify_certificate_key`; comparing with the peer ID that was dialed is the
    caller's job (raise ``PeerIDMismatch`` there).
    """
    return PeerID.from_public_key(verify_certificate_key(der, now))
