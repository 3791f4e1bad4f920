"""Noise XX secure channel (libp2p/specs noise/README.md)."""

from p2pstack.security.noise.handshake import NoiseHandshake
from p2pstack.security.noise.stream import PROTOCOL_ID, Noise, NoiseStream
from p2pstack.security.noise.transport import NoiseDecoder, NoiseDecryptError, NoiseEncoder

__all__ = [
    "PROTOCOL_ID",
    "Noise",
    "NoiseDecoder",
    "NoiseDecryptError",
    "NoiseEncoder",
    "NoiseHandshake",
    "NoiseStream",
]
