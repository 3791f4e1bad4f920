"""p2pstack.security.tls.certificate: the tls.md test vectors, round trips, and refusals.

Certificates that our generator would never make are built with ``cryptography``'s
``CertificateBuilder`` (:func:`build`), or, where the builder refuses (duplicate
extensions), by editing a TBSCertificate and signing it again (:func:`resign`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from p2pstack.errors import CertificateError, ConfigError, HandshakeError
from p2pstack.identity import KeyPair, KeyType, PeerID
from p2pstack.security.tls import (
    EXTENSION_OID,
    SIGNATURE_PREFIX,
    SignedKey,
    generate_certificate,
    verify_certificate,
    verify_certificate_key,
)
from p2pstack.security.tls.certificate import NOT_BEFORE_SKEW, VALIDITY

# libp2p/specs tls/tls.md, "Test vectors". All four certificates are valid from
# 1975-01-01 13:00:00 UTC to 4096-01-01 13:00:00 UTC, signed ECDSA-SHA256 by a P-256 key.
VECTOR_NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
VECTOR_NOT_BEFORE = dt.datetime(1975, 1, 1, 13, tzinfo=dt.UTC)
VECTOR_NOT_AFTER = dt.datetime(4096, 1, 1, 13, tzinfo=dt.UTC)
ED25519_VECTOR = (
    "308201ae30820156a0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a"
    "13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f"
    "34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806"
    "035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca8"
    "5e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a6"
    "51691606d8173e55bd37e381569ea37c307a3078060a2b0601040183a25a0101046a3068042408011220"
    "a77f1d92fedb59dddaea5a1c4abd1ac2fbde7d7b879ed364501809923d7c11b90440d90d2769db992d5e"
    "6195dbb08e706b6651e024fda6cfb8846694a435519941cac215a8207792e42849cccc6cd8136c6e4bde"
    "92a58c5e08cfd4206eb5fe0bf909300a06082a8648ce3d0403020346003043021f50f6b6c52711a88177"
    "8718238f650c9fb48943ae6ee6d28427dc6071ae55e702203625f116a7a454db9c56986c82a25682f724"
    "8ea1cb764d322ea983ed36a31b77"
)
VALID_VECTORS = [
    pytest.param(
        ED25519_VECTOR,
        "12D3KooWM6CgA9iBFZmcYAHA6A2qvbAxqfkmrYiRQuz3XEsk4Ksv",
        KeyType.Ed25519,
        id="ed25519",
    ),
    pytest.param(
        "308201f63082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a"
        "13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f"
        "34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806"
        "035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca8"
        "5e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a6"
        "51691606d8173e55bd37e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa04"
        "5f0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd32"
        "42178fd290f093a551cf75c973155de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3d"
        "d72a801980d205e8a1ad29f2044730450220064ea8124774caf8f50e57f436aa62350ce652418c019df5"
        "d98a3ac666c9386a022100aa59d704a931b5f72fb9222cb6cc51f954d04a4e2e5450f8805fe8918f71ea"
        "ae300a06082a8648ce3d04030203470030440220799395b0b6c1e940a7e4484705f610ab51ed376f19ff"
        "9d7c16757cfbf61b8d4302206205c03fbb0f95205c779be86581d3e31c01871ad5d1f3435bcf375cb0e5"
        "088a",
        "QmfXbAwNjJLXfesgztEHe8HwgVDCMMpZ9Eax1HYq6hn9uE",
        KeyType.ECDSA,
        id="ecdsa",
    ),
    pytest.param(
        "308201ba3082015fa0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a"
        "13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f"
        "34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806"
        "035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca8"
        "5e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a6"
        "51691606d8173e55bd37e381569ea38184308181307f060a2b0601040183a25a01010471306f04250802"
        "12210206dc6968726765b820f050263ececf7f71e4955892776c0970542efd689d238204463044022014"
        "5e15a991961f0d08cd15425bb95ec93f6ffa03c5a385eedc34ecf464c7a8ab022026b3109b8a3f40ef83"
        "3169777eb2aa337cfb6282f188de0666d1bcec2a4690dd300a06082a8648ce3d04030203490030460221"
        "00e1a217eeef9ec9204b3f774a08b70849646b6a1e6b8b27f93dc00ed58545d9fe022100b00dafa549d0"
        "f03547878338c7b15e7502888f6d45db387e5ae6b5d46899cef0",
        "16Uiu2HAkutTMoTzDw1tCvSRtu6YoixJwS46S1ZFxW8hSx9fWHiPs",
        KeyType.Secp256k1,
        id="secp256k1",
    ),
]
# "This certificate has a mismatch between the Peer ID that it claims to authenticate vs
# the key that was used to sign it."
INVALID_VECTOR = (
    "308201f73082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a1309"
    "6c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f3430393630"
    "3130313133303030305a302031123010060355040a13096c69627032702e696f310a30080603550405130131"
    "3059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba13272"
    "1bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e3"
    "81569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a86"
    "48ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155d"
    "e0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f20447304502"
    "2100bb6e03577b7cc7a3cd1558df0da2b117dfdcc0399bc2504ebe7de6f65cade72802206de96e2a5be9b620"
    "2adba24ee0362e490641ac45c240db71fe955f2c5cf8df6e300a06082a8648ce3d0403020348003045022100"
    "e847f267f43717358f850355bdcabbefb2cfbf8a3c043b203a14788a092fe8db022027c1d04a2d41fd6b57a7"
    "e8b3989e470325de4406e52e084e34a3fd56eef0d0df"
)
KEY_TYPES = [KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA, KeyType.RSA]
NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
OTHER_CRITICAL_OID = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.99")
SHA256 = hashes.SHA256()
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo

CertKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
SignatureHash = hashes.SHA224 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512


@cache
def identity(key_type: KeyType = KeyType.Ed25519) -> KeyPair:
    """One identity per key type, generated once per run (RSA 2048 is slow to generate)."""
    return KeyPair.generate(key_type)


@cache
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def spki(key: CertKey) -> bytes:
    return key.public_key().public_bytes(DER, SPKI)


def libp2p_extension(signed_key: bytes, critical: bool = False) -> tuple[x509.ExtensionType, bool]:
    return x509.UnrecognizedExtension(EXTENSION_OID, signed_key), critical


def build(
    *,
    key: CertKey | None = None,
    extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
    signed_key: bytes | None = None,
    not_before: dt.datetime = NOW - dt.timedelta(hours=1),
    not_after: dt.datetime = NOW + dt.timedelta(days=1),
    hash_algorithm: SignatureHash | None = SHA256,
    rsa_padding: padding.PSS | padding.PKCS1v15 | None = None,
) -> bytes:
    """A self-signed certificate; by default valid at NOW with a correct libp2p extension."""
    key = key or p256()
    if extensions is None:
        if signed_key is None:
            signed_key = SignedKey.create(identity(), spki(key)).encode()
        extensions = [libp2p_extension(signed_key)]
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "1")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        hash_algorithm = None
    certificate = builder.sign(key, hash_algorithm, rsa_padding=rsa_padding)
    return certificate.public_bytes(DER)


def tlv(tag: int, content: bytes) -> bytes:
    """A DER element (test-side, written independently of the module's encoder)."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def resign(tbs: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A certificate around ``tbs`` with a fresh ECDSA-SHA256 signature by ``key``."""
    algorithm = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return tlv(0x30, tbs + algorithm + tlv(0x03, b"\x00" + signature))


# --- the spec's test vectors ---------------------------------------------------------


@pytest.mark.parametrize(("cert_hex", "peer_id", "key_type"), VALID_VECTORS)
def test_valid_vector(cert_hex: str, peer_id: str, key_type: KeyType) -> None:
    der = bytes.fromhex(cert_hex)
    assert verify_certificate(der, VECTOR_NOW) == PeerID.from_string(peer_id)
    assert verify_certificate_key(der, VECTOR_NOW).key_type is key_type
    # The window's edges are inclusive, and just outside them is refused.
    verify_certificate(der, VECTOR_NOT_BEFORE)
    verify_certificate(der, VECTOR_NOT_AFTER)
    with pytest.raises(CertificateError, match="not valid before"):
        verify_certificate(der, VECTOR_NOT_BEFORE - dt.timedelta(seconds=1))
    with pytest.raises(CertificateError, match="expired"):
        verify_certificate(der, VECTOR_NOT_AFTER + dt.timedelta(seconds=1))


def test_invalid_vector() -> None:
    with pytest.raises(CertificateError, match="identity key's signature") as info:
        verify_certificate(bytes.fromhex(INVALID_VECTOR), VECTOR_NOW)
    assert isinstance(info.value, HandshakeError)


def test_every_single_bit_flip_is_refused_with_a_typed_error() -> None:
    der = bytes.fromhex(ED25519_VECTOR)
    for i in range(len(der)):
        corrupt = bytearray(der)
        corrupt[i] ^= 0x01
        with pytest.raises(CertificateError):
            verify_certificate(bytes(corrupt), VECTOR_NOW)


def test_every_truncation_is_refused() -> None:
    der = bytes.fromhex(ED25519_VECTOR)
    for n in range(len(der)):
        with pytest.raises(CertificateError):
            verify_certificate(der[:n], VECTOR_NOW)


# --- generate -> verify ----------------------------------------------------------------


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=lambda k: k.name)
def test_round_trip(key_type: KeyType) -> None:
    me = identity(key_type)
    cert, key_der = generate_certificate(me, NOW)
    assert verify_certificate(cert, NOW) == me.peer_id
    assert verify_certificate_key(cert, NOW) == me.public
    # The certificate key is a fresh P-256 key, given as PKCS#8, that matches the cert.
    cert_key = serialization.load_der_private_key(key_der, password=None)
    assert isinstance(cert_key, ec.EllipticCurvePrivateKey)
    assert isinstance(cert_key.curve, ec.SECP256R1)
    parsed = x509.load_der_x509_certificate(cert)
    assert parsed.public_key() == cert_key.public_key()


def test_generated_certificate_shape() -> None:
    cert, _ = generate_certificate(identity(), NOW)
    parsed = x509.load_der_x509_certificate(cert)
    assert parsed.not_valid_before_utc == NOW - NOT_BEFORE_SKEW
    assert parsed.not_valid_after_utc == NOW + VALIDITY
    assert parsed.issuer == parsed.subject
    assert parsed.signature_hash_algorithm is not None
    assert parsed.signature_hash_algorithm.name == "sha256"
    # js-libp2p only looks at the first extension, so ours is the one and only.
    (extension,) = parsed.extensions
    assert extension.oid == EXTENSION_OID
    assert not extension.critical
    # Fresh certificate key and serial number each time.
    again = x509.load_der_x509_certificate(generate_certificate(identity(), NOW)[0])
    assert again.serial_number != parsed.serial_number
    assert again.public_key() != parsed.public_key()


def test_generated_certificate_with_critical_extension_verifies() -> None:
    cert, _ = generate_certificate(identity(), NOW, critical=True)
    (extension,) = x509.load_der_x509_certificate(cert).extensions
    assert extension.critical
    assert verify_certificate(cert, NOW) == identity().peer_id


def test_generate_defaults_to_the_current_time() -> None:
    cert, _ = generate_certificate(identity())
    assert verify_certificate(cert, dt.datetime.now(dt.UTC)) == identity().peer_id


def test_naive_datetimes_are_refused() -> None:
    cert, _ = generate_certificate(identity(), NOW)
    with pytest.raises(ConfigError):
        verify_certificate(cert, NOW.replace(tzinfo=None))
    with pytest.raises(ConfigError):
        generate_certificate(identity(), NOW.replace(tzinfo=None))


def test_other_timezones_are_converted() -> None:
    cert, _ = generate_certificate(identity(), NOW)
    east = dt.timezone(dt.timedelta(hours=5))
    just_before = (NOW - NOT_BEFORE_SKEW - dt.timedelta(seconds=1)).astimezone(east)
    with pytest.raises(CertificateError, match="not valid before"):
        verify_certificate(cert, just_before)
    verify_certificate(cert, NOW.astimezone(east))


# --- validity period -------------------------------------------------------------------


def test_not_yet_valid() -> None:
    cert, _ = generate_certificate(identity(), NOW)
    with pytest.raises(CertificateError, match="not valid before"):
        verify_certificate(cert, NOW - dt.timedelta(hours=2))


def test_expired() -> None:
    cert, _ = generate_certificate(identity(), NOW)
    with pytest.raises(CertificateError, match="expired"):
        verify_certificate(cert, NOW + VALIDITY + dt.timedelta(seconds=1))


# --- the self-signature ----------------------------------------------------------------


def test_tampered_self_signature() -> None:
    cert = bytearray(generate_certificate(identity(), NOW)[0])
    cert[-5] ^= 0x40  # inside the signature's last INTEGER
    with pytest.raises(CertificateError, match="self-signature is invalid"):
        verify_certificate(bytes(cert), NOW)


def test_signed_by_another_key() -> None:
    parsed = x509.load_der_x509_certificate(generate_certificate(identity(), NOW)[0])
    forged = resign(parsed.tbs_certificate_bytes, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CertificateError, match="self-signature is invalid"):
        verify_certificate(forged, NOW)


@pytest.mark.parametrize(
    ("make_key", "hash_algorithm", "rsa_padding"),
    [
        pytest.param(
            lambda: ec.generate_private_key(ec.SECP384R1()), hashes.SHA384(), None, id="p384"
        ),
        pytest.param(
            lambda: ec.generate_private_key(ec.SECP256R1()), hashes.SHA512(), None, id="p256-sha512"
        ),
        pytest.param(ed25519.Ed25519PrivateKey.generate, None, None, id="ed25519"),
        pytest.param(
            lambda: rsa.generate_private_key(65537, 2048), hashes.SHA256(), None, id="rsa-pkcs1"
        ),
        pytest.param(
            lambda: rsa.generate_private_key(65537, 2048),
            hashes.SHA384(),
            padding.PSS(padding.MGF1(hashes.SHA384()), padding.PSS.DIGEST_LENGTH),
            id="rsa-pss",
        ),
    ],
)
def test_accepted_certificate_keys(
    make_key: Callable[[], CertKey],
    hash_algorithm: SignatureHash | None,
    rsa_padding: padding.PSS | None,
) -> None:
    key = make_key()
    der = build(key=key, hash_algorithm=hash_algorithm, rsa_padding=rsa_padding)
    assert verify_certificate(der, NOW) == identity().peer_id


@pytest.mark.parametrize(
    ("key", "hash_algorithm", "message"),
    [
        pytest.param(
            ec.generate_private_key(ec.SECP256K1()), hashes.SHA256(), "curve", id="secp256k1"
        ),
        pytest.param(ec.generate_private_key(ec.SECP521R1()), hashes.SHA512(), "curve", id="p521"),
        pytest.param(None, hashes.SHA224(), "weak hash", id="sha224"),
    ],
)
def test_refused_certificate_keys(
    key: ec.EllipticCurvePrivateKey | None, hash_algorithm: SignatureHash, message: str
) -> None:
    with pytest.raises(CertificateError, match=message):
        verify_certificate(build(key=key, hash_algorithm=hash_algorithm), NOW)


def test_small_rsa_certificate_key_refused() -> None:
    key = rsa.generate_private_key(65537, 1024)
    with pytest.raises(CertificateError, match="RSA certificate key size 1024"):
        verify_certificate(build(key=key), NOW)


# --- the libp2p extension --------------------------------------------------------------


def test_missing_extension() -> None:
    with pytest.raises(CertificateError, match="lacks the libp2p public key extension"):
        verify_certificate(build(extensions=[]), NOW)
    other = x509.UnrecognizedExtension(OTHER_CRITICAL_OID, b"\x05\x00")
    with pytest.raises(CertificateError, match="lacks the libp2p"):
        verify_certificate(build(extensions=[(other, False)]), NOW)


def test_libp2p_extension_may_be_critical() -> None:
    key = p256()
    signed = SignedKey.create(identity(), spki(key)).encode()
    der = build(key=key, extensions=[libp2p_extension(signed, critical=True)])
    assert verify_certificate(der, NOW) == identity().peer_id


def test_unknown_critical_extension_refused() -> None:
    key = p256()
    signed = SignedKey.create(identity(), spki(key)).encode()
    other = x509.UnrecognizedExtension(OTHER_CRITICAL_OID, b"\x05\x00")
    der = build(key=key, extensions=[libp2p_extension(signed), (other, True)])
    with pytest.raises(
        CertificateError, match=r"unsupported critical extension 1\.3\.6\.1\.4\.1\.53594\.1\.99"
    ):
        verify_certificate(der, NOW)


def test_unknown_noncritical_and_known_critical_extensions_accepted() -> None:
    key = p256()
    signed = SignedKey.create(identity(), spki(key)).encode()
    der = build(
        key=key,
        extensions=[
            (x509.UnrecognizedExtension(OTHER_CRITICAL_OID, b"\x05\x00"), False),
            libp2p_extension(signed),
            (x509.BasicConstraints(ca=False, path_length=None), True),
        ],
    )
    assert verify_certificate(der, NOW) == identity().peer_id


def test_duplicate_libp2p_extension_refused() -> None:
    key = p256()
    signed = SignedKey.create(identity(), spki(key)).encode()
    decoy_oid = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.2")  # same encoded length
    decoy_extension = (x509.UnrecognizedExtension(decoy_oid, signed), False)
    der = build(key=key, extensions=[libp2p_extension(signed), decoy_extension])
    tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
    decoy = bytes.fromhex("060a2b0601040183a25a0102")
    assert tbs.count(decoy) == 1
    duplicated = resign(tbs.replace(decoy, bytes.fromhex("060a2b0601040183a25a0101")), key)
    with pytest.raises(CertificateError, match="extensions"):
        verify_certificate(duplicated, NOW)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(b"", "truncated", id="empty"),
        pytest.param(b"\x05\x00", "expected DER tag 0x30", id="null"),
        pytest.param(b"\x30\x00", "truncated", id="empty-sequence"),
        pytest.param(tlv(0x30, tlv(0x04, b"k")), "truncated", id="one-field"),
        pytest.param(
            tlv(0x30, tlv(0x03, b"\x00k") + tlv(0x04, b"s")),
            "expected DER tag 0x04",
            id="bitstring",
        ),
        pytest.param(
            tlv(0x30, tlv(0x04, b"k") + tlv(0x04, b"s") + tlv(0x04, b"x")),
            "more than two fields",
            id="three-fields",
        ),
        pytest.param(
            tlv(0x30, tlv(0x04, b"k") + tlv(0x04, b"s")) + b"\x00", "trailing", id="trailing"
        ),
        pytest.param(
            b"\x30\x81\x06" + tlv(0x04, b"k") + tlv(0x04, b"s"), "shortest", id="long-len"
        ),
        pytest.param(
            b"\x30\x80" + tlv(0x04, b"k") + tlv(0x04, b"s") + b"\0\0", "indefinite", id="ber"
        ),
        pytest.param(
            tlv(0x30, tlv(0x04, b"\x08\x01\x12\x01\x00") + tlv(0x04, b"s")),
            "bad identity public key",
            id="bad-key",
        ),
        pytest.param(
            tlv(0x30, tlv(0x04, b"garbage") + tlv(0x04, b"s")),
            "bad identity public key",
            id="garbage-key",
        ),
    ],
)
def test_malformed_extension_content(value: bytes, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        verify_certificate(build(signed_key=value), NOW)


def test_identity_signature_over_another_certificate_key() -> None:
    signed = SignedKey.create(identity(), spki(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(CertificateError, match="identity key's signature"):
        verify_certificate(build(signed_key=signed.encode()), NOW)


def test_identity_signature_without_prefix() -> None:
    key = p256()
    me = identity()
    signed = SignedKey(me.public.encode(), me.private.sign(spki(key)))
    with pytest.raises(CertificateError, match="identity key's signature"):
        verify_certificate(build(key=key, signed_key=signed.encode()), NOW)


def test_tampered_identity_signature() -> None:
    key = p256()
    signed = SignedKey.create(identity(), spki(key))
    bad = SignedKey(signed.public_key, signed.signature[:-1] + bytes([signed.signature[-1] ^ 1]))
    with pytest.raises(CertificateError, match="identity key's signature"):
        verify_certificate(build(key=key, signed_key=bad.encode()), NOW)


# --- garbage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "der",
    [b"", b"\x00", b"garbage", b"\x30\x00", b"\x30\x82\xff\xff", b"\xff" * 64],
    ids=["empty", "zero", "text", "empty-seq", "short", "ff"],
)
def test_garbage_der(der: bytes) -> None:
    with pytest.raises(CertificateError, match="not valid DER"):
        verify_certificate(der, NOW)


def test_trailing_bytes_after_certificate() -> None:
    cert, _ = generate_certificate(identity(), NOW)
    with pytest.raises(CertificateError, match="not valid DER"):
        verify_certificate(cert + b"\x00", NOW)
    with pytest.raises(CertificateError, match="not valid DER"):
        verify_certificate(cert + cert, NOW)


# --- the SignedKey codec ---------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 256, 1100, 70000])
def test_signed_key_round_trip(size: int) -> None:
    signed = SignedKey(bytes(range(256)) * (size // 256) + bytes(size % 256), b"\x01" * 300)
    encoded = signed.encode()
    assert SignedKey.decode(encoded) == signed
    # Independent encoder, same bytes: the encoding is DER.
    assert encoded == tlv(0x30, tlv(0x04, signed.public_key) + tlv(0x04, signed.signature))


def test_signed_key_matches_go_encoding_in_vector() -> None:
    der = bytes.fromhex(ED25519_VECTOR)
    (extension,) = x509.load_der_x509_certificate(der).extensions
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    value = extension.value.value
    assert SignedKey.decode(value).encode() == value


def test_signed_key_refuses_non_minimal_long_lengths() -> None:
    body = tlv(0x04, b"k") + tlv(0x04, b"s")
    for bad in (
        b"\x30\x82\x00" + bytes([len(body)]) + body,  # leading zero length octet
        b"\x30\x85" + len(body).to_bytes(5, "big") + body,  # too many length octets
    ):
        with pytest.raises(CertificateError):
            SignedKey.decode(bad)
    long_key = b"k" * 200
    good = tlv(0x30, tlv(0x04, long_key) + tlv(0x04, b"s"))
    assert SignedKey.decode(good).public_key == long_key
    # 0x82 00 c8 instead of 0x81 c8 for the inner length.
    inner = b"\x04\x82\x00\xc8" + long_key + tlv(0x04, b"s")
    with pytest.raises(CertificateError, match="shortest"):
        SignedKey.decode(tlv(0x30, inner))


def test_signed_key_refuses_high_tag_numbers() -> None:
    with pytest.raises(CertificateError, match="high-number"):
        SignedKey.decode(b"\x3f\x01\x00")


def test_signature_prefix() -> None:
    assert SIGNATURE_PREFIX == b"libp2p-tls-handshake:"
    assert EXTENSION_OID.dotted_string == "1.3.6.1.4.1.53594.1.1"
