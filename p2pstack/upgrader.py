"""Upgrades a raw transport stream into a muxed, authenticated connection.

The steps, in this order only (go-libp2p's upgrader reads the same way):

1. multistream-select a security protocol (``/noise``);
2. the security handshake, which proves the remote peer and may agree a muxer inside it
   (Noise extensions / TLS ALPN);
3. otherwise multistream-select a muxer (``/yamux/1.0.0``) over the secure channel;
4. hand the secure stream to the muxer.

On any failure the raw stream is closed (we own it from the call on) and the error raised.

Step 1 costs a round trip when there is a choice of security protocols. The upgrader
remembers which one each peer used last (outbound or inbound); dialing that peer again, it
proposes that one alone, pipelined with the first handshake message (multistream's lazy
mode, as with a single protocol). Should the peer refuse it (``ProtocolNotSupported``), the
memory is dropped and the caller may dial again to negotiate among all (the swarm does).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import anyio
import anyio.abc

from p2pstack.errors import ConfigError, ProtocolNotSupported
from p2pstack.identity import PeerID
from p2pstack.multistream import select_inbound, select_outbound
from p2pstack.muxer.abc import MuxedConnection, StreamMuxer
from p2pstack.security.abc import SecureStream, SecureTransport

#: How many peers' security protocols the upgrader remembers (the least recent go first).
REMEMBERED_PEERS = 1024


class Upgrader:
    def __init__(self, security: Sequence[SecureTransport], muxers: Sequence[StreamMuxer]):
        if not security or not muxers:
            raise ConfigError("an upgrader needs at least one security protocol and one muxer")
        self.security = {s.protocol_id: s for s in security}
        self.muxers = {m.protocol_id: m for m in muxers}
        self._security_of: OrderedDict[PeerID, str] = OrderedDict()

    def remembered_security(self, peer: PeerID | None) -> str | None:
        """The security protocol a dial to ``peer`` will propose alone, if any: the one
        its last connection used, when there is a choice to skip."""
        if peer is None or len(self.security) < 2:
            return None
        return self._security_of.get(peer)

    def _remember(self, peer: PeerID, proto: str) -> None:
        if len(self.security) < 2:
            return
        known = self._security_of
        known[peer] = proto
        known.move_to_end(peer)
        if len(known) > REMEMBERED_PEERS:
            known.popitem(last=False)

    async def upgrade_outbound(
        self, raw: anyio.abc.ByteStream, expected_peer: PeerID | None
    ) -> MuxedConnection:
        remembered = self.remembered_security(expected_peer)
        offered = [remembered] if remembered is not None else list(self.security)
        try:
            # With one choice the proposal is pipelined with the first handshake message.
            proto, stream = await select_outbound(raw, offered, lazy=len(offered) == 1)
            secure = await self.security[proto].secure_outbound(
                stream, expected_peer, list(self.muxers)
            )
            muxed = await self._mux(secure, True)
        except BaseException:
            if remembered is not None and expected_peer is not None:
                self._security_of.pop(expected_peer, None)
            await anyio.aclose_forcefully(raw)
            raise
        self._remember(secure.remote_peer, proto)
        return muxed

    async def upgrade_inbound(self, raw: anyio.abc.ByteStream) -> MuxedConnection:
        try:
            proto, stream = await select_inbound(raw, list(self.security), answer_at_once=True)
            secure = await self.security[proto].secure_inbound(stream, list(self.muxers))
            muxed = await self._mux(secure, False)
        except BaseException:
            await anyio.aclose_forcefully(raw)
            raise
        self._remember(secure.remote_peer, proto)
        return muxed

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
