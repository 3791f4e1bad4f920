"""NoiseHandshake, the sans-IO libp2p Noise XX handshake (libp2p/specs noise/README.md).

An initiator and a responder are joined by :func:`pump`, which moves each one's
``data_to_send()`` into the other's ``receive_data()``, byte at a time or all at once.
Forged payloads come from a subclass whose ``_payload`` builds them.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from p2pstack.errors import HandshakeError, LocalProtocolError, PeerIDMismatch
from p2pstack.identity import KeyPair, KeyType
from p2pstack.pb import noise_pb2
from p2pstack.security.noise import NoiseDecoder, NoiseEncoder, NoiseHandshake
from p2pstack.security.noise.handshake import SIGNATURE_PREFIX

KEY_TYPES = [KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA, KeyType.RSA]
YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"


@cache
def identity(key_type: KeyType = KeyType.Ed25519, n: int = 0) -> KeyPair:
    """A key pair per (type, n), generated once per run (RSA is slow to generate)."""
    return KeyPair.generate(key_type)


def feed(hs: NoiseHandshake, data: bytes, step: int | None) -> None:
    if step is None:
        hs.receive_data(data)
        return
    for i in range(0, len(data), step):
        hs.receive_data(data[i : i + step])


def pump(initiator: NoiseHandshake, responder: NoiseHandshake, step: int | None = None) -> None:
    """Run the handshake until neither side has anything more to send."""
    while True:
        to_responder = initiator.data_to_send()
        to_initiator = responder.data_to_send()
        if not to_responder and not to_initiator:
            return
        feed(responder, to_responder, step)
        feed(initiator, to_initiator, step)


def pair(
    initiator_key: KeyPair | None = None,
    responder_key: KeyPair | None = None,
    **initiator_options: object,
) -> tuple[NoiseHandshake, NoiseHandshake]:
    initiator = NoiseHandshake(initiator_key or identity(), True, **initiator_options)  # type: ignore[arg-type]
    responder = NoiseHandshake(responder_key or identity(n=1), False)
    return initiator, responder


def frame(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


# ---------------------------------------------------------------------------- success


@pytest.mark.parametrize("step", [1, None], ids=["byte-at-a-time", "all-at-once"])
@pytest.mark.parametrize("initiator_type", KEY_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("responder_type", KEY_TYPES, ids=lambda t: t.name)
def test_handshake_completes(
    initiator_type: KeyType, responder_type: KeyType, step: int | None
) -> None:
    initiator_key, responder_key = identity(initiator_type), identity(responder_type, 1)
    initiator = NoiseHandshake(initiator_key, True)
    responder = NoiseHandshake(responder_key, False)
    pump(initiator, responder, step)

    assert initiator.complete and responder.complete
    assert initiator.remote_peer == responder_key.peer_id
    assert responder.remote_peer == initiator_key.peer_id
    assert initiator.remote_public_key == responder_key.public
    assert responder.remote_public_key == initiator_key.public
    assert len(initiator.send_key) == len(initiator.receive_key) == 32
    assert initiator.send_key == responder.receive_key
    assert initiator.receive_key == responder.send_key
    assert initiator.send_key != initiator.receive_key
    assert initiator.muxer is None and responder.muxer is None
    assert initiator.unconsumed() == responder.unconsumed() == b""


def test_three_messages_with_an_empty_first_payload() -> None:
    initiator, responder = pair(muxers=[YAMUX])
    message1 = initiator.data_to_send()
    # u16 length + the 32-byte ephemeral key: no payload, so no extensions, in message 1.
    assert message1[:2] == b"\x00\x20" and len(message1) == 34
    responder.receive_data(message1)
    message2 = responder.data_to_send()
    assert struct.unpack_from(">H", message2)[0] == len(message2) - 2
    assert not responder.complete
    initiator.receive_data(message2)
    assert initiator.complete
    message3 = initiator.data_to_send()
    assert struct.unpack_from(">H", message3)[0] == len(message3) - 2
    responder.receive_data(message3)
    assert responder.complete
    assert initiator.data_to_send() == responder.data_to_send() == b""


def test_keys_drive_the_transport_both_ways() -> None:
    initiator, responder = pair()
    pump(initiator, responder)
    to_responder = NoiseDecoder(responder.receive_key)
    to_responder.feed(NoiseEncoder(initiator.send_key).encode(b"from the initiator"))
    assert to_responder.next_plaintext() == b"from the initiator"
    to_initiator = NoiseDecoder(initiator.receive_key)
    to_initiator.feed(NoiseEncoder(responder.send_key).encode(b"from the responder"))
    assert to_initiator.next_plaintext() == b"from the responder"


@pytest.mark.parametrize("step", [1, None], ids=["byte-at-a-time", "all-at-once"])
def test_transport_bytes_glued_to_message_3_are_unconsumed(step: int | None) -> None:
    initiator, responder = pair()
    responder.receive_data(initiator.data_to_send())
    initiator.receive_data(responder.data_to_send())
    encoder = NoiseEncoder(initiator.send_key)
    early = bytes(encoder.encode(b"first")) + bytes(encoder.encode(b"second"))
    feed(responder, initiator.data_to_send() + early, step)

    assert responder.complete
    assert responder.unconsumed() == early
    decoder = NoiseDecoder(responder.receive_key)
    decoder.feed(responder.unconsumed())
    assert [decoder.next_plaintext(), decoder.next_plaintext()] == [b"first", b"second"]


# ---------------------------------------------------------------------------- early muxer


@pytest.mark.parametrize(
    ("initiator_muxers", "responder_muxers", "agreed"),
    [
        ([YAMUX], [YAMUX], YAMUX),
        ([YAMUX, MPLEX], [MPLEX, YAMUX], YAMUX),  # the initiator's order wins
        ([MPLEX, YAMUX], [YAMUX, MPLEX], MPLEX),
        (["/other/1.0.0", YAMUX], [YAMUX], YAMUX),
        ([YAMUX], [], None),  # either side silent: multistream-select afterwards
        ([], [YAMUX], None),
        ([], [], None),
    ],
)
def test_early_muxer_negotiation(
    initiator_muxers: list[str], responder_muxers: list[str], agreed: str | None
) -> None:
    initiator = NoiseHandshake(identity(), True, muxers=initiator_muxers)
    responder = NoiseHandshake(identity(n=1), False, muxers=responder_muxers)
    pump(initiator, responder)
    assert initiator.complete and responder.complete
    assert initiator.muxer == responder.muxer == agreed


def test_no_common_muxer_fails_at_the_initiator() -> None:
    initiator = NoiseHandshake(identity(), True, muxers=[MPLEX])
    responder = NoiseHandshake(identity(n=1), False, muxers=[YAMUX])
    with pytest.raises(HandshakeError):
        pump(initiator, responder)
    assert not initiator.complete
    assert initiator.data_to_send() == b""  # no message 3


class _AdvertisesOnly(NoiseHandshake):
    """Lists MPLEX in its payload but negotiates nothing itself."""

    def _payload(self) -> bytes:
        msg = noise_pb2.NoiseHandshakePayload.FromString(super()._payload())
        msg.extensions.stream_muxers.append(MPLEX)
        return msg.SerializeToString()


def test_no_common_muxer_fails_at_the_responder() -> None:
    initiator = _AdvertisesOnly(identity(), True)
    responder = NoiseHandshake(identity(n=1), False, muxers=[YAMUX])
    with pytest.raises(HandshakeError):
        pump(initiator, responder)
    assert not responder.complete


# ---------------------------------------------------------------------------- peer id


def test_expected_peer_matches() -> None:
    initiator, responder = pair(expected_peer=identity(n=1).peer_id)
    pump(initiator, responder)
    assert initiator.complete and responder.complete


def test_expected_peer_mismatch() -> None:
    other = identity(n=2).peer_id
    initiator, responder = pair(expected_peer=other)
    with pytest.raises(PeerIDMismatch) as info:
        pump(initiator, responder)
    assert isinstance(info.value, HandshakeError)
    assert info.value.expected == other
    assert info.value.actual == identity(n=1).peer_id
    assert not initiator.complete
    assert initiator.data_to_send() == b""  # we never prove ourselves to the wrong peer


def test_only_the_initiator_expects_a_peer() -> None:
    with pytest.raises(LocalProtocolError):
        NoiseHandshake(identity(), False, expected_peer=identity(n=1).peer_id)


# ---------------------------------------------------------------------------- tampering


def _message_2() -> tuple[NoiseHandshake, bytes]:
    initiator, responder = pair()
    responder.receive_data(initiator.data_to_send())
    return initiator, responder.data_to_send()


def test_every_tampered_byte_of_message_2_is_refused() -> None:
    _, sample = _message_2()
    for position in range(2, len(sample)):  # the body; a changed length only reframes
        initiator, message = _message_2()
        tampered = bytearray(message)
        tampered[position] ^= 0x01
        with pytest.raises(HandshakeError):
            initiator.receive_data(bytes(tampered))
        assert not initiator.complete
        assert initiator.data_to_send() == b""


def test_every_tampered_byte_of_message_3_is_refused() -> None:
    initiator, responder = pair()
    responder.receive_data(initiator.data_to_send())
    initiator.receive_data(responder.data_to_send())
    length = len(initiator.data_to_send())
    for position in range(2, length):
        initiator, responder = pair()
        responder.receive_data(initiator.data_to_send())
        initiator.receive_data(responder.data_to_send())
        tampered = bytearray(initiator.data_to_send())
        tampered[position] ^= 0x80
        with pytest.raises(HandshakeError):
            responder.receive_data(bytes(tampered))
        assert not responder.complete


def _forge(make: Callable[[KeyPair, bytes], noise_pb2.NoiseHandshakePayload]) -> type:
    """A NoiseHandshake whose payload is ``make(identity, our static public key)``."""

    class Forged(NoiseHandshake):
        def _payload(self) -> bytes:
            return make(self.identity, self._static_public).SerializeToString()

    return Forged


def _payload(key: bytes, sig: bytes) -> noise_pb2.NoiseHandshakePayload:
    return noise_pb2.NoiseHandshakePayload(identity_key=key, identity_sig=sig)


def _another_static() -> bytes:
    return x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()


FORGERIES: dict[str, Callable[[KeyPair, bytes], noise_pb2.NoiseHandshakePayload]] = {
    "signature over another static key": lambda ident, static: _payload(
        ident.public.encode(), ident.private.sign(SIGNATURE_PREFIX + _another_static())
    ),
    "signature by another identity": lambda ident, static: _payload(
        ident.public.encode(), identity(n=3).private.sign(SIGNATURE_PREFIX + static)
    ),
    "signature without the prefix": lambda ident, static: _payload(
        ident.public.encode(), ident.private.sign(static)
    ),
    "no signature": lambda ident, static: _payload(ident.public.encode(), b""),
    "garbage identity key": lambda ident, static: _payload(
        b"\x08\x01\x12\x03abc", ident.private.sign(SIGNATURE_PREFIX + static)
    ),
    "not a key protobuf": lambda ident, static: _payload(b"\xff\xff\xff", b"sig"),
    "empty payload": lambda ident, static: noise_pb2.NoiseHandshakePayload(),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
@pytest.mark.parametrize("forger", ["responder", "initiator"])
def test_forged_payload_is_refused(forger: str, forgery: str) -> None:
    forged = _forge(FORGERIES[forgery])
    if forger == "responder":  # its payload is in message 2
        initiator = NoiseHandshake(identity(), True)
        responder = forged(identity(n=1), False)
        victim = initiator
    else:  # message 3
        initiator = forged(identity(), True)
        responder = NoiseHandshake(identity(n=1), False)
        victim = responder
    with pytest.raises(HandshakeError):
        pump(initiator, responder)
    assert not victim.complete and victim.remote_peer is None


def test_payload_that_is_not_protobuf_is_refused() -> None:
    class Garbage(NoiseHandshake):
        def _payload(self) -> bytes:
            return b"\xff\xff\xff\xff"

    initiator = NoiseHandshake(identity(), True)
    with pytest.raises(HandshakeError):
        pump(initiator, Garbage(identity(n=1), False))


# ---------------------------------------------------------------------------- garbage


def _accepts_or_refuses(hs: NoiseHandshake, data: bytes) -> None:
    """``data`` is either taken or refused with HandshakeError; nothing else escapes."""
    try:
        hs.receive_data(data)
    except HandshakeError:
        pass


def test_garbage_never_raises_anything_but_handshake_error() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        size = rng.choice([0, 1, 16, 31, 32, 33, 48, 64, 80, 96, 200, rng.randrange(0, 600)])
        body = rng.randbytes(size)
        responder = NoiseHandshake(identity(), False)
        _accepts_or_refuses(responder, frame(body))  # as message 1
        initiator = NoiseHandshake(identity(), True)
        initiator.data_to_send()
        _accepts_or_refuses(initiator, frame(body))  # as message 2
        initiator, responder = pair()
        responder.receive_data(initiator.data_to_send())
        responder.data_to_send()
        _accepts_or_refuses(responder, frame(body))  # as message 3
        # Raw garbage, framing and all.
        _accepts_or_refuses(NoiseHandshake(identity(), False), rng.randbytes(size + 2))


@pytest.mark.parametrize("size", [0, 1, 31])
def test_short_message_1_is_refused(size: int) -> None:
    responder = NoiseHandshake(identity(), False)
    with pytest.raises(HandshakeError):
        responder.receive_data(frame(bytes(range(size))))


@pytest.mark.parametrize("size", [0, 1, 32, 47, 48, 95, 200])
def test_garbage_message_2_is_refused(size: int) -> None:
    initiator = NoiseHandshake(identity(), True)
    initiator.data_to_send()
    with pytest.raises(HandshakeError):
        initiator.receive_data(frame(random.Random(size).randbytes(size)))


@pytest.mark.parametrize("size", [0, 1, 47, 48, 64, 200])
def test_garbage_message_3_is_refused(size: int) -> None:
    initiator, responder = pair()
    responder.receive_data(initiator.data_to_send())
    with pytest.raises(HandshakeError):
        responder.receive_data(frame(random.Random(size).randbytes(size)))


def test_low_order_ephemeral_key_in_message_2_is_refused() -> None:
    initiator = NoiseHandshake(identity(), True)
    initiator.data_to_send()
    with pytest.raises(HandshakeError):
        initiator.receive_data(frame(bytes(32) + bytes(48) + bytes(16)))


@pytest.mark.parametrize("ephemeral", [bytes(32), b"\x01" + bytes(31)], ids=["zero", "one"])
def test_low_order_ephemeral_key_in_message_1_is_refused(ephemeral: bytes) -> None:
    responder = NoiseHandshake(identity(), False)
    with pytest.raises(HandshakeError):
        responder.receive_data(frame(ephemeral))


def test_truncated_messages_wait_for_the_rest() -> None:
    initiator, responder = pair()
    message1 = initiator.data_to_send()
    responder.receive_data(message1[:-1])
    assert responder.data_to_send() == b"" and not responder.complete
    responder.receive_data(message1[-1:])
    message2 = responder.data_to_send()
    initiator.receive_data(message2[:1])  # half of the length prefix
    initiator.receive_data(message2[1:-5])
    assert initiator.data_to_send() == b"" and not initiator.complete
    initiator.receive_data(message2[-5:])
    assert initiator.complete


def test_a_static_key_shared_by_handshakes_keys_each_session_apart() -> None:
    """One StaticKey serves many handshakes (the Noise transport's way): each completes,
    the peer sees that static key, and the sessions' keys differ (ephemeral keys)."""
    from p2pstack.security.noise.handshake import StaticKey

    static = StaticKey()
    send_keys = set()
    for _ in range(3):
        initiator = NoiseHandshake(identity(), True, static_key=static)
        responder = NoiseHandshake(identity(n=1), False)
        pump(initiator, responder, step=7)
        assert initiator.complete and responder.complete
        assert responder._state.rs.public_bytes == static.public
        assert initiator.send_key == responder.receive_key
        send_keys.add(initiator.send_key)
    assert len(send_keys) == 3
    # A plain X25519 private key is still accepted and gives the same public key.
    raw = x25519.X25519PrivateKey.generate()
    assert StaticKey(raw).public == NoiseHandshake(identity(), True, static_key=raw)._static_public
