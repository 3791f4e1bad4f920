"""Gossipsub router parameters (gossipsub-v1.0.md, -v1.1.md, -v1.2.md). Durations are seconds.

Defaults are go-libp2p-pubsub's (v0.19), except ``flood_publish``, which is on as the v1.1
spec, rust-libp2p and js-libp2p have it (go has it off unless ``WithFloodPublish``). Peer
exchange in our PRUNEs is off as in go and rust (``do_px``); PX that others send us is
followed when their score reaches the accept-PX threshold, as go does."""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pstack.errors import ConfigError


@dataclass
class GossipSubParams:
    # overlay (v1.0)
    d: int = 6
    d_lo: int = 5
    d_hi: int = 12
    d_lazy: int = 6
    heartbeat_interval: float = 1.0
    heartbeat_initial_delay: float = 0.1
    fanout_ttl: float = 60.0
    mcache_len: int = 5
    mcache_gossip: int = 3
    seen_ttl: float = 120.0
    # v1.1
    d_score: int = 4
    d_out: int = 2
    gossip_factor: float = 0.25
    gossip_retransmission: int = 3
    prune_peers: int = 16
    prune_backoff: float = 60.0
    unsubscribe_backoff: float = 10.0
    backoff_slack_heartbeats: int = 1
    graft_flood_threshold: float = 10.0
    opportunistic_graft_ticks: int = 60
    opportunistic_graft_peers: int = 2
    max_ihave_length: int = 5000
    max_ihave_messages: int = 10
    iwant_followup_time: float = 3.0
    flood_publish: bool = True
    do_px: bool = False  # offer peer exchange in the PRUNEs we send
    direct_connect_ticks: int = 300
    # v1.2
    idontwant_message_threshold: int = 1024
    max_idontwant_messages: int = 1000
    idontwant_message_ttl_heartbeats: int = 3
    # limits
    max_message_size: int = 1 << 20
    max_messages_per_rpc: int = 1000
    max_topics_per_peer: int = 10_000
    # direct peers: always forwarded to, never in the mesh (peer IDs as bytes)
    direct_peers: set[bytes] = field(default_factory=set)

    def validate(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(f"GossipSubParams: {message}")

        check(self.d >= 0, "d must be >= 0")
        check(self.d_lo <= self.d <= self.d_hi, "need d_lo <= d <= d_hi")
        check(self.d_out < self.d_lo and self.d_out <= self.d // 2, "need d_out < d_lo, <= d/2")
        check(0 <= self.d_score <= self.d_hi, "need 0 <= d_score <= d_hi")
        check(self.d_lazy >= 0, "d_lazy must be >= 0")
        check(self.heartbeat_interval > 0, "heartbeat_interval must be > 0")
        check(0 < self.mcache_gossip <= self.mcache_len, "need 0 < mcache_gossip <= mcache_len")
        check(self.seen_ttl > 0 and self.fanout_ttl > 0, "TTLs must be > 0")
        check(0 <= self.gossip_factor <= 1, "gossip_factor must be in [0, 1]")
        check(self.max_message_size > 0, "max_message_size must be > 0")
        check(self.prune_backoff >= 0 and self.unsubscribe_backoff >= 0, "backoffs >= 0")
