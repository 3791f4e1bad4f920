"""Upgrades a raw transport stream into a muxed, authenticated connection.

The steps, in this order only (go-libp2p's upgrader reads the same way):

1. multistream-select a security protocol (``/noise``);
2. the security handshake, which proves the remote peer and may agree a muxer inside it
   (Noise extensions / TLS ALPN);
3. otherwise multistream-select a muxer (``/yamux/1.0.0``) over the secure channel;
4. hand the secure stream to the muxer.

On any failure the raw stream is closed (we own it from the call on) and the error raised.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.abc

from p2pstack.errors import ConfigError, ProtocolNotSupported
from p2pstack.identity import PeerID
from p2pstack.multistream import select_inbound, select_outbound
from p2pstack.muxer.abc import MuxedConnection, StreamMuxer
from p2pstack.security.abc import SecureStream, SecureTransport


class Upgrader:
    def __init__(self, security: Sequence[SecureTransport], muxers: Sequence[StreamMuxer]):
        if not security or not muxers:
            raise ConfigError("an upgrader needs at least one security protocol and one muxer")
        self.security = {s.protocol_id: s for s in security}
        self.muxers = {m.protocol_id: m for m in muxers}

    async def upgrade_outbound(
        self, raw: anyio.abc.ByteStream, expected_peer: PeerID | None
    ) -> MuxedConnection:
        try:
            # With one choice the proposal is pipelined with the first handshake message.
            proto, stream = await select_outbound(
                raw, list(self.security), lazy=len(self.security) == 1
            )
            secure = await self.security[proto].secure_outbound(
                stream, expected_peer, list(self.muxers)
            )
            return await self._mux(secure, True)
        except BaseException:
            await anyio.aclose_forcefully(raw)
            raise

    async def upgrade_inbound(self, raw: anyio.abc.ByteStream) -> MuxedConnection:
        try:
            proto, stream = await select_inbound(raw, list(self.security), answer_at_once=True)
            secure = await self.security[proto].secure_inbound(stream, list(self.muxers))
            return await self._mux(secure, False)
        except BaseException:
            await anyio.aclose_forcefully(raw)
            raise

    async def _mux(self, secure: SecureStream, initiator: bool) -> MuxedConnection:
        stream: anyio.abc.ByteStream = secure
        muxer_id = secure.early_muxer
        if muxer_id is None:
            if initiator:
                muxer_id, stream = await select_outbound(secure, list(self.muxers))
            else:
                muxer_id, stream = await select_inbound(secure, list(self.muxers))
        muxer = self.muxers.get(muxer_id)
        if muxer is None:  # the handshake agreed on something we never offered
            raise ProtocolNotSupported([muxer_id])
        return muxer.create(stream, initiator)
