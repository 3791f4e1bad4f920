"""The libp2p Noise handshake (libp2p/specs noise/README.md) as a sans-IO machine.

``Noise_XX_25519_ChaChaPoly_SHA256``, three messages, each framed as u16 big-endian length
plus body:

1. initiator -> responder: ``e`` (empty payload; no extensions here, per the spec)
2. responder -> initiator: ``e, ee, s, es`` + the responder's handshake payload
3. initiator -> responder: ``s, se`` + the initiator's handshake payload

A payload is a ``NoiseHandshakePayload`` protobuf: the libp2p identity public key, a
signature by that key over ``"noise-libp2p-static-key:" ‖ X25519 static public key``, and
``extensions.stream_muxers`` for early muxer negotiation
(connections/inlined-muxer-negotiation.md): the first muxer in the initiator's list that the
responder also lists wins; when both list muxers and none is shared the handshake fails;
when either lists none, the muxer is negotiated with multistream-select afterwards.

Any failure raises :class:`~p2pstack.errors.HandshakeError` (``PeerIDMismatch`` when the
initiator finds someone other than the peer it dialed).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from google.protobuf.message import DecodeError
from noise.backends.default.keypairs import KeyPair25519
from noise.connection import NoiseConnection

from p2pstack.errors import HandshakeError, InvalidKeyError, LocalProtocolError, PeerIDMismatch
from p2pstack.identity import KeyPair, PeerID, PublicKey, decode_public_key

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
SIGNATURE_PREFIX = b"noise-libp2p-static-key:"
MAX_FRAME = 65535
_LEN = struct.Struct(">H")


def encode_payload(identity: KeyPair, static_public: bytes, muxers: Sequence[str]) -> bytes:
    """Our handshake payload: identity key, its signature over the static key, muxers."""
    from p2pstack.pb import noise_pb2

    msg = noise_pb2.NoiseHandshakePayload(
        identity_key=identity.public.encode(),
        identity_sig=identity.private.sign(SIGNATURE_PREFIX + static_public),
    )
    if muxers:
        msg.extensions.stream_muxers.extend(muxers)
    return msg.SerializeToString()


class StaticKey:
    """An X25519 static key made ready once for many handshakes: its public bytes and
    noiseprotocol's key pair (whose making derives the public key again, an X25519
    multiplication per handshake otherwise). Immutable, so handshakes share it."""

    __slots__ = ("keypair", "public")

    def __init__(self, private: x25519.X25519PrivateKey | None = None) -> None:
        if private is None:
            private = x25519.X25519PrivateKey.generate()
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        self.keypair = KeyPair25519.from_private_bytes(raw)
        self.public: bytes = self.keypair.public_bytes


class NoiseHandshake:
    """One side of one handshake.

    Feed the peer's bytes to :meth:`receive_data`, send :meth:`data_to_send`, until
    :attr:`complete`. Then :attr:`send_key`/:attr:`receive_key` key the transport,
    :attr:`remote_peer` is proven, and :meth:`unconsumed` holds transport bytes that
    arrived with the last handshake message.
    """

    def __init__(
        self,
        identity: KeyPair,
        initiator: bool,
        *,
        muxers: Sequence[str] = (),
        expected_peer: PeerID | None = None,
        static_key: StaticKey | x25519.X25519PrivateKey | None = None,
        payload: bytes | None = None,
    ) -> None:
        if expected_peer is not None and not initiator:
            raise LocalProtocolError("only the initiator can expect a peer id")
        self.identity = identity
        self.initiator = initiator
        self.muxers = tuple(muxers)
        self.expected_peer = expected_peer
        static = static_key if isinstance(static_key, StaticKey) else StaticKey(static_key)
        self._static_public = static.public
        self._noise = NoiseConnection.from_name(PROTOCOL_NAME)
        # What set_keypair_from_private_bytes(Keypair.STATIC, ...) stores, made once.
        self._noise.noise_protocol.keypairs["s"] = static.keypair
        if initiator:
            self._noise.set_as_initiator()
        else:
            self._noise.set_as_responder()
        self._noise.start_handshake()
        # Keep the handshake state: noiseprotocol drops it once the handshake is done, and
        # we still need the responder's view of the initiator's static key after message 3.
        self._state = self._noise.noise_protocol.handshake_state
        self._in = bytearray()
        self._out = bytearray()
        self._step = 0  # messages processed so far (sent or received)
        self._own_payload = payload
        self.complete = False
        self.remote_peer: PeerID | None = None
        self.remote_public_key: PublicKey | None = None
        self.muxer: str | None = None
        self.send_key: bytes = b""
        self.receive_key: bytes = b""
        if initiator:
            self._write(b"")  # message 1

    # ------------------------------------------------------------------ I/O surface

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def unconsumed(self) -> bytes:
        """Bytes after the last handshake message: the first transport frames."""
        return bytes(self._in)

    def receive_data(self, data: bytes) -> None:
        if self.complete:
            self._in += data
            return
        self._in += data
        while not self.complete and len(self._in) >= 2:
            (length,) = _LEN.unpack_from(self._in)
            if len(self._in) < 2 + length:
                return
            message = bytes(self._in[2 : 2 + length])
            del self._in[: 2 + length]
            self._on_message(message)

    # ------------------------------------------------------------------ the three messages

    def _on_message(self, message: bytes) -> None:
        if self.initiator:
            if self._step != 1:
                raise HandshakeError("unexpected handshake message")
            payload = self._read(message)  # message 2
            self._verify_payload(payload)
            self._write(self._payload())  # message 3
        else:
            if self._step == 0:
                self._read(message)  # message 1; its payload is empty by spec, ignored
                self._write(self._payload())  # message 2
            elif self._step == 2:
                payload = self._read(message)  # message 3
                self._verify_payload(payload)
            else:
                raise HandshakeError("unexpected handshake message")
        if self._noise.handshake_finished:
            self._finish()

    def _read(self, message: bytes) -> bytes:
        try:
            payload = bytes(self._noise.read_message(message))
        except Exception as exc:  # noiseprotocol raises several unrelated types
            raise HandshakeError(f"noise handshake message rejected: {exc}") from exc
        self._step += 1
        return payload

    def _write(self, payload: bytes) -> None:
        try:
            message = self._noise.write_message(payload)
        except Exception as exc:  # e.g. a low-order ephemeral key from the peer
            raise HandshakeError(f"noise handshake failed: {exc}") from exc
        if len(message) > MAX_FRAME:
            raise LocalProtocolError("handshake message too large")
        self._out += _LEN.pack(len(message))
        self._out += message
        self._step += 1

    def _payload(self) -> bytes:
        if self._own_payload is None:
            self._own_payload = encode_payload(self.identity, self._static_public, self.muxers)
        return self._own_payload

    def _verify_payload(self, payload: bytes) -> None:
        from p2pstack.pb import noise_pb2

        try:
            msg = noise_pb2.NoiseHandshakePayload.FromString(payload)
        except DecodeError as exc:
            raise HandshakeError(f"undecodable noise handshake payload: {exc}") from exc
        try:
            key = decode_public_key(msg.identity_key)
        except InvalidKeyError as exc:
            raise HandshakeError(f"bad identity key in handshake: {exc}") from exc
        remote_static = self._state.rs.public_bytes
        if not key.verify(SIGNATURE_PREFIX + remote_static, msg.identity_sig):
            raise HandshakeError("identity signature over the noise static key is invalid")
        peer = PeerID.from_public_key(key)
        if self.expected_peer is not None and peer != self.expected_peer:
            raise PeerIDMismatch(self.expected_peer, peer)
        self.remote_peer = peer
        self.remote_public_key = key
        theirs = list(msg.extensions.stream_muxers) if msg.HasField("extensions") else []
        if self.muxers and theirs:
            order, other = (self.muxers, theirs) if self.initiator else (theirs, self.muxers)
            self.muxer = next((m for m in order if m in other), None)
            if self.muxer is None:
                raise HandshakeError(f"no common stream muxer: ours {self.muxers}, theirs {theirs}")

    def _finish(self) -> None:
        protocol = self._noise.noise_protocol
        self.send_key = protocol.cipher_state_encrypt.k
        self.receive_key = protocol.cipher_state_decrypt.k
        self.complete = True
