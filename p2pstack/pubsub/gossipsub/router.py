"""The gossipsub router core: v1.0 mesh and gossip, v1.1 hardening and scoring, v1.2
IDONTWANT (libp2p/specs pubsub/gossipsub/). Floodsub peers are served too, by flooding.

Behaviour per peer follows the protocol it negotiated: ``/meshsub/1.0.0`` peers get no PX
and no backoff in PRUNE; ``/meshsub/1.2.0`` peers get IDONTWANT; ``/floodsub/1.0.0`` peers
are never in a mesh, get every message of their topics and no control messages.

Sans-IO like every router (see :mod:`p2pstack.pubsub.router`); ``heartbeat(now)`` must be
called every ``params.heartbeat_interval`` seconds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable

from p2pstack.identity import KeyPair, PeerID
from p2pstack.pubsub.gossipsub.mcache import MessageCache
from p2pstack.pubsub.gossipsub.params import GossipSubParams
from p2pstack.pubsub.gossipsub.score import (
    PeerScore,
    PeerScoreParams,
    PeerScoreThresholds,
)
from p2pstack.pubsub.router import (
    FLOODSUB,
    MESHSUB_V10,
    MESHSUB_V11,
    MESHSUB_V12,
    ConnectTo,
    Grafted,
    PeerRecordFn,
    PeerState,
    Pruned,
    RouterBase,
)
from p2pstack.pubsub.rpc import RPC, Message, PeerInfo, Prune

_NO_THRESHOLDS = PeerScoreThresholds(0.0, 0.0, 0.0, 0.0, 0.0)


class GossipSub(RouterBase):
    protocols: tuple[str, ...] = (MESHSUB_V12, MESHSUB_V11, MESHSUB_V10, FLOODSUB)

    def __init__(
        self,
        params: GossipSubParams | None = None,
        *,
        key_pair: KeyPair | None = None,
        score_params: PeerScoreParams[PeerID] | None = None,
        thresholds: PeerScoreThresholds | None = None,
        peer_record: PeerRecordFn | None = None,
        **kwargs: object,
    ) -> None:
        self.params = params or GossipSubParams()
        self.params.validate()
        super().__init__(
            key_pair=key_pair,
            seen_ttl=self.params.seen_ttl,
            max_message_size=self.params.max_message_size,
            max_topics_per_peer=self.params.max_topics_per_peer,
            max_messages_per_rpc=self.params.max_messages_per_rpc,
            **kwargs,  # type: ignore[arg-type]
        )
        self.score: PeerScore[PeerID] | None = None
        if score_params is not None:
            self.score = PeerScore(score_params)
            self.thresholds = thresholds or PeerScoreThresholds()
            self.thresholds.validate()
        else:
            self.thresholds = _NO_THRESHOLDS
        self._peer_record = peer_record
        self.mesh: dict[str, set[PeerID]] = {}
        self.fanout: dict[str, set[PeerID]] = {}
        self._fanout_last_pub: dict[str, float] = {}
        self._backoff: dict[str, dict[PeerID, float]] = {}
        self.mcache = MessageCache(self.params.mcache_len, self.params.mcache_gossip)
        self._ihave_count: dict[PeerID, int] = {}  # IHAVEs received this heartbeat
        self._iasked: dict[PeerID, int] = {}  # ids asked for this heartbeat
        self._promises: dict[bytes, dict[PeerID, float]] = {}  # msg id -> peer -> deadline
        self._idontwant: dict[PeerID, dict[bytes, int]] = {}  # id -> heartbeat tick seen
        self._idontwant_count: dict[PeerID, int] = {}
        self._ticks = 0
        self._last_refresh: float | None = None
        self._direct: set[bytes] = set(self.params.direct_peers)

    # ------------------------------------------------------------------ helpers

    def _score(self, peer: PeerID, now: float) -> float:
        return self.score.score(peer, now) if self.score is not None else 0.0

    def _is_gossipsub(self, peer: PeerID) -> bool:
        state = self.peers.get(peer)
        return state is not None and state.protocol != FLOODSUB

    def _supports_px(self, peer: PeerID) -> bool:
        state = self.peers.get(peer)
        return state is not None and state.protocol in (MESHSUB_V11, MESHSUB_V12)

    def _is_direct(self, peer: PeerID) -> bool:
        return bool(self._direct) and peer.to_bytes() in self._direct

    def _in_backoff(self, topic: str, peer: PeerID, now: float) -> bool:
        expiry = self._backoff.get(topic, {}).get(peer)
        return expiry is not None and now < expiry

    def _add_backoff(self, topic: str, peer: PeerID, seconds: float, now: float) -> None:
        table = self._backoff.setdefault(topic, {})
        table[peer] = max(table.get(peer, 0.0), now + seconds)

    # ------------------------------------------------------------------ peers

    def add_peer(self, peer: PeerID, protocol: str, outbound: bool, now: float) -> None:
        super().add_peer(peer, protocol, outbound, now)
        if self.score is not None:
            self.score.add_peer(peer, now)

    def add_direct_peer(self, peer: PeerID) -> None:
        """``peer`` gets every message of our topics and is never in a mesh (v1.1 direct
        peering); the shell keeps a connection to it."""
        self._direct.add(peer.to_bytes())

    def set_peer_ips(self, peer: PeerID, ips: Iterable[str]) -> None:
        """The IPs ``peer`` is connected from (for the P6 colocation score)."""
        if self.score is not None:
            self.score.set_ips(peer, ips)

    def remove_peer(self, peer: PeerID, now: float) -> None:
        if peer not in self.peers:
            return
        for topic, members in self.mesh.items():
            if peer in members:
                members.discard(peer)
                self._events.append(Pruned(peer, topic))
        for members in self.fanout.values():
            members.discard(peer)
        if self.score is not None:
            self.score.remove_peer(peer, now)
        self._ihave_count.pop(peer, None)
        self._iasked.pop(peer, None)
        self._idontwant.pop(peer, None)
        self._idontwant_count.pop(peer, None)
        super().remove_peer(peer, now)

    def _peer_unsubscribed(self, peer: PeerID, topic: str, now: float) -> None:
        members = self.mesh.get(topic)
        if members is not None and peer in members:
            members.discard(peer)
            if self.score is not None:
                self.score.prune(peer, topic, now)
            self._events.append(Pruned(peer, topic))
        fan = self.fanout.get(topic)
        if fan is not None:
            fan.discard(peer)

    def _accept_from(self, peer: PeerID, now: float) -> bool:
        if self._is_direct(peer):
            return True
        return self._score(peer, now) >= self.thresholds.graylist_threshold

    # ------------------------------------------------------------------ our subscriptions

    def join(self, topic: str, now: float) -> None:
        if topic in self.mesh:
            return
        super().join(topic, now)
        if self.score is not None:
            self.score.join(topic)
        members: set[PeerID] = set()
        for peer in self.fanout.pop(topic, set()):
            if self._score(peer, now) >= 0 and peer in self.peers:
                members.add(peer)
        self._fanout_last_pub.pop(topic, None)
        if len(members) < self.params.d:
            members |= set(
                self._pick(
                    topic,
                    self.params.d - len(members),
                    lambda p: (
                        p not in members
                        and not self._is_direct(p)
                        and not self._in_backoff(topic, p, now)
                        and self._score(p, now) >= 0
                    ),
                )
            )
        self.mesh[topic] = set()
        for peer in members:
            self._graft(peer, topic, now)
            self._rpc(peer).control.graft.append(topic)

    def leave(self, topic: str, now: float) -> None:
        members = self.mesh.pop(topic, None)
        if members is None:
            return
        super().leave(topic, now)
        for peer in members:
            if self.score is not None:
                self.score.prune(peer, topic, now)
            self._events.append(Pruned(peer, topic))
            self._rpc(peer).control.prune.append(self._make_prune(peer, topic, True, True, now))
            self._add_backoff(topic, peer, self.params.unsubscribe_backoff, now)
        if self.score is not None:
            self.score.leave(topic)

    def _graft(self, peer: PeerID, topic: str, now: float) -> None:
        self.mesh[topic].add(peer)
        if self.score is not None:
            self.score.graft(peer, topic, now)
        self._events.append(Grafted(peer, topic))

    def _pick(self, topic: str, count: int, accept: Callable[[PeerID], bool]) -> list[PeerID]:
        """Up to ``count`` random gossipsub peers of ``topic`` for which ``accept`` holds."""
        # sorted: set order follows the process's hash seed, and runs must be repeatable
        candidates = sorted(
            p for p in self.topic_peers.get(topic, ()) if self._is_gossipsub(p) and accept(p)
        )
        if count >= len(candidates):
            self.rng.shuffle(candidates)
            return candidates
        return self.rng.sample(candidates, count)

    def _make_prune(
        self, peer: PeerID, topic: str, do_px: bool, unsubscribe: bool, now: float
    ) -> Prune:
        if not self._supports_px(peer):
            return Prune(topic)
        backoff = self.params.unsubscribe_backoff if unsubscribe else self.params.prune_backoff
        infos: tuple[PeerInfo, ...] = ()
        if do_px and self.params.do_px:
            chosen = self._pick(
                topic,
                self.params.prune_peers,
                lambda p: p != peer and self._score(p, now) >= 0,
            )
            infos = tuple(
                PeerInfo(p.to_bytes(), self._peer_record(p) if self._peer_record else None)
                for p in chosen
            )
        return Prune(topic, infos, math.ceil(backoff))

    # ------------------------------------------------------------------ messages

    def _duplicate(self, peer: PeerID, msg_id: bytes, msg: Message, now: float) -> None:
        super()._duplicate(peer, msg_id, msg, now)
        if self.score is not None:
            self.score.duplicate_message(peer, msg_id, msg.topic, now)

    def _reject(
        self, peer: PeerID, msg_id: bytes | None, topic: str, reason: str, now: float
    ) -> None:
        super()._reject(peer, msg_id, topic, reason, now)
        if self.score is not None and peer != self._self_peer:
            self.score.reject_message(peer, msg_id or b"", topic, reason, now)
        if msg_id is not None and reason == "invalid":
            # a peer that kept its IHAVE promise with an invalid message did keep it
            self._promises.pop(msg_id, None)

    def _first_seen(self, peer: PeerID, msg_id: bytes, msg: Message, now: float) -> None:
        if self.score is not None:
            self.score.validate_message(msg_id, now)
        self._promises.pop(msg_id, None)
        if msg.size >= self.params.idontwant_message_threshold:
            # v1.2: tell mesh peers at once that we have it
            for other in self.mesh.get(msg.topic, ()):
                state = self.peers.get(other)
                if other != peer and state is not None and state.protocol == MESHSUB_V12:
                    self._rpc(other).control.idontwant.append(msg_id)

    def _accepted(self, peer: PeerID, msg_id: bytes, msg: Message, now: float) -> None:
        self.mcache.put(msg_id, msg)
        if self.score is not None and peer != self._self_peer:
            self.score.deliver_message(peer, msg_id, msg.topic, now)

    def _forward(self, msg_id: bytes, msg: Message, sender: PeerID | None, now: float) -> None:
        topic = msg.topic
        targets: set[PeerID] = set(self.mesh.get(topic, ()))
        for peer in self.topic_peers.get(topic, ()):
            state = self.peers[peer]
            if state.protocol == FLOODSUB or self._is_direct(peer):
                targets.add(peer)
        for peer in targets:
            if peer == sender or peer.to_bytes() == msg.source:
                continue
            unwanted = self._idontwant.get(peer)
            if unwanted is not None and msg_id in unwanted:
                self._count("idontwant_skipped")
                continue
            self._send_message(peer, msg)

    def _publish_to(self, msg_id: bytes, msg: Message, now: float) -> int:
        topic = msg.topic
        in_topic = self.topic_peers.get(topic, set())
        targets: set[PeerID] = set()
        if self.params.flood_publish:
            targets = {
                p
                for p in in_topic
                if self._is_direct(p) or self._score(p, now) >= self.thresholds.publish_threshold
            }
        else:
            for peer in in_topic:
                if self.peers[peer].protocol == FLOODSUB or self._is_direct(peer):
                    targets.add(peer)
            if topic in self.mesh:
                targets |= self.mesh[topic]
            else:
                fan = self.fanout.get(topic)
                if not fan:
                    fan = set(
                        self._pick(
                            topic,
                            self.params.d,
                            lambda p: (
                                not self._is_direct(p)
                                and self._score(p, now) >= self.thresholds.publish_threshold
                            ),
                        )
                    )
                    self.fanout[topic] = fan
                targets |= fan
                self._fanout_last_pub[topic] = now
        for peer in targets:
            self._send_message(peer, msg)
        return len(targets)

    # ------------------------------------------------------------------ control

    def _handle_control(self, peer: PeerID, state: PeerState, rpc: RPC, now: float) -> None:
        if state.protocol == FLOODSUB:
            return
        c = rpc.control
        if c.ihave:
            self._handle_ihave(peer, c.ihave, now)
        if c.iwant:
            self._handle_iwant(peer, c.iwant, now)
        if c.graft:
            self._handle_graft(peer, c.graft, now)
        if c.prune:
            self._handle_prune(peer, c.prune, now)
        if c.idontwant and state.protocol == MESHSUB_V12:
            self._handle_idontwant(peer, c.idontwant)

    def _handle_ihave(self, peer: PeerID, ihave: list[tuple[str, list[bytes]]], now: float) -> None:
        if self._score(peer, now) < self.thresholds.gossip_threshold:
            self._count("ihave_low_score")
            return
        count = self._ihave_count[peer] = self._ihave_count.get(peer, 0) + 1
        if count > self.params.max_ihave_messages:
            self._count("ihave_over_limit")
            return
        asked = self._iasked.get(peer, 0)
        if asked >= self.params.max_ihave_length:
            self._count("ihave_over_length")
            return
        wanted: dict[bytes, None] = {}
        for topic, ids in ihave:
            if topic not in self.mesh:
                continue
            for msg_id in ids:
                if msg_id not in self.seen and msg_id not in self._promises:
                    wanted[msg_id] = None
        if not wanted:
            return
        ids_wanted = list(wanted)
        self.rng.shuffle(ids_wanted)
        ids_wanted = ids_wanted[: self.params.max_ihave_length - asked]
        self._iasked[peer] = asked + len(ids_wanted)
        self._rpc(peer).control.iwant += ids_wanted
        # track one promise per IWANT, as go does: that message must arrive in time
        promised = self.rng.choice(ids_wanted)
        self._promises.setdefault(promised, {})[peer] = now + self.params.iwant_followup_time

    def _handle_iwant(self, peer: PeerID, ids: list[bytes], now: float) -> None:
        if self._score(peer, now) < self.thresholds.gossip_threshold:
            self._count("iwant_low_score")
            return
        unwanted = self._idontwant.get(peer, {})
        for msg_id in ids:
            msg, count = self.mcache.get_for_peer(msg_id, peer)
            if msg is None:
                continue
            if count > self.params.gossip_retransmission:
                self._count("iwant_over_retransmission")
                continue
            if msg_id in unwanted:
                continue
            self._send_message(peer, msg)

    def _handle_graft(self, peer: PeerID, topics: list[str], now: float) -> None:
        prunes: list[str] = []
        do_px = True
        score = self._score(peer, now)
        for topic in topics:
            members = self.mesh.get(topic)
            if members is None:
                # spam hardening: ignore GRAFTs for topics we are not in, and give no PX
                do_px = False
                self._count("graft_unknown_topic")
                continue
            if peer in members:
                continue
            if self._is_direct(peer):
                prunes.append(topic)
                do_px = False
                continue
            expiry = self._backoff.get(topic, {}).get(peer)
            if expiry is not None and now < expiry:
                if self.score is not None:
                    self.score.add_penalty(peer, 1)
                    flood_cutoff = (
                        expiry + self.params.graft_flood_threshold - self.params.prune_backoff
                    )
                    if now < flood_cutoff:
                        self.score.add_penalty(peer, 1)
                self._count("graft_in_backoff")
                do_px = False
                self._add_backoff(topic, peer, self.params.prune_backoff, now)
                prunes.append(topic)
                continue
            if score < 0:
                do_px = False
                self._add_backoff(topic, peer, self.params.prune_backoff, now)
                prunes.append(topic)
                continue
            state = self.peers[peer]
            if len(members) >= self.params.d_hi and not state.outbound:
                self._add_backoff(topic, peer, self.params.prune_backoff, now)
                prunes.append(topic)
                continue
            if topic not in state.topics:
                # a GRAFT implies a subscription; be lenient as go is
                state.topics.add(topic)
                self.topic_peers.setdefault(topic, set()).add(peer)
            self._graft(peer, topic, now)
        for topic in prunes:
            self._rpc(peer).control.prune.append(self._make_prune(peer, topic, do_px, False, now))

    def _handle_prune(self, peer: PeerID, prunes: list[Prune], now: float) -> None:
        score = self._score(peer, now)
        for prune in prunes:
            members = self.mesh.get(prune.topic)
            if members is None:
                continue
            if peer in members:
                members.discard(peer)
                if self.score is not None:
                    self.score.prune(peer, prune.topic, now)
                self._events.append(Pruned(peer, prune.topic))
            backoff = prune.backoff if prune.backoff is not None else self.params.prune_backoff
            self._add_backoff(prune.topic, peer, float(backoff), now)
            if prune.peers and score >= self.thresholds.accept_px_threshold:
                infos = list(prune.peers)
                self.rng.shuffle(infos)
                for info in infos[: self.params.prune_peers]:
                    if info.peer_id != self._self_bytes:
                        self._events.append(ConnectTo(info))

    def _handle_idontwant(self, peer: PeerID, ids: list[bytes]) -> None:
        count = self._idontwant_count.get(peer, 0)
        room = self.params.max_idontwant_messages - count
        if room <= 0:
            self._count("idontwant_over_limit")
            return
        table = self._idontwant.setdefault(peer, {})
        for msg_id in ids[:room]:
            table[msg_id] = self._ticks
        self._idontwant_count[peer] = count + min(len(ids), room)
        if len(ids) > room:
            self._count("idontwant_over_limit")

    # ------------------------------------------------------------------ heartbeat

    def heartbeat(self, now: float) -> None:
        super().heartbeat(now)
        self._ticks += 1
        p = self.params
        self._ihave_count.clear()
        self._iasked.clear()
        self._idontwant_count.clear()
        if self.score is not None:
            interval = self.score.params.decay_interval
            if self._last_refresh is None:
                self._last_refresh = now
            elif now - self._last_refresh >= interval - 1e-9:
                self._last_refresh = now
                self.score.refresh(now)
        self._apply_broken_promises(now)  # after the decay, so a new penalty counts whole
        self._clear_backoff(now)

        tograft: dict[PeerID, list[str]] = {}
        toprune: dict[PeerID, list[str]] = {}
        for topic, members in self.mesh.items():
            self._maintain_mesh(topic, members, tograft, toprune, now)

        for topic in list(self.fanout):
            if now - self._fanout_last_pub.get(topic, now) > p.fanout_ttl:
                del self.fanout[topic]
                self._fanout_last_pub.pop(topic, None)
            else:
                self._maintain_fanout(topic, self.fanout[topic], now)

        for peer, topics in tograft.items():
            self._rpc(peer).control.graft += topics
        for peer, topics in toprune.items():
            for topic in topics:
                self._rpc(peer).control.prune.append(
                    self._make_prune(peer, topic, True, False, now)
                )
        self.mcache.shift()
        keep_after = self._ticks - p.idontwant_message_ttl_heartbeats
        for table in self._idontwant.values():
            for msg_id in [m for m, tick in table.items() if tick <= keep_after]:
                del table[msg_id]

    def _maintain_mesh(
        self,
        topic: str,
        members: set[PeerID],
        tograft: dict[PeerID, list[str]],
        toprune: dict[PeerID, list[str]],
        now: float,
    ) -> None:
        p = self.params
        scores = {peer: self._score(peer, now) for peer in members}
        for peer, s in scores.items():
            if s < 0:
                self._remove_from_mesh(peer, topic, now)
                toprune.setdefault(peer, []).append(topic)
        if len(members) < p.d_lo:
            need = p.d - len(members)
            for peer in self._pick(
                topic,
                need,
                lambda q: (
                    q not in members
                    and not self._is_direct(q)
                    and not self._in_backoff(topic, q, now)
                    and self._score(q, now) >= 0
                ),
            ):
                self._graft(peer, topic, now)
                tograft.setdefault(peer, []).append(topic)
        if len(members) > p.d_hi:
            self._shrink_mesh(topic, members, toprune, now)
        outbound = sum(1 for q in members if self.peers[q].outbound)
        if len(members) >= p.d_lo and outbound < p.d_out:
            for peer in self._pick(
                topic,
                p.d_out - outbound,
                lambda q: (
                    q not in members
                    and self.peers[q].outbound
                    and not self._is_direct(q)
                    and not self._in_backoff(topic, q, now)
                    and self._score(q, now) >= 0
                ),
            ):
                self._graft(peer, topic, now)
                tograft.setdefault(peer, []).append(topic)
        if (
            self.score is not None
            and self._ticks % p.opportunistic_graft_ticks == 0
            and len(members) > 1
        ):
            median = statistics.median(self._score(q, now) for q in members)
            if median < self.thresholds.opportunistic_graft_threshold:
                for peer in self._pick(
                    topic,
                    p.opportunistic_graft_peers,
                    lambda q: (
                        q not in members
                        and not self._is_direct(q)
                        and not self._in_backoff(topic, q, now)
                        and self._score(q, now) > median
                    ),
                ):
                    self._graft(peer, topic, now)
                    tograft.setdefault(peer, []).append(topic)
        self._emit_gossip(topic, members, now)

    def _maintain_fanout(self, topic: str, fan: set[PeerID], now: float) -> None:
        in_topic = self.topic_peers.get(topic, set())
        for peer in list(fan):
            if peer not in in_topic or self._score(peer, now) < self.thresholds.publish_threshold:
                fan.discard(peer)
        if len(fan) < self.params.d:
            fan |= set(
                self._pick(
                    topic,
                    self.params.d - len(fan),
                    lambda q: (
                        q not in fan
                        and not self._is_direct(q)
                        and self._score(q, now) >= self.thresholds.publish_threshold
                    ),
                )
            )
        self._emit_gossip(topic, fan, now)

    def _remove_from_mesh(self, peer: PeerID, topic: str, now: float) -> None:
        self.mesh[topic].discard(peer)
        if self.score is not None:
            self.score.prune(peer, topic, now)
        self._add_backoff(topic, peer, self.params.prune_backoff, now)
        self._events.append(Pruned(peer, topic))

    def _shrink_mesh(
        self, topic: str, members: set[PeerID], toprune: dict[PeerID, list[str]], now: float
    ) -> None:
        p = self.params
        ranked = sorted(members, key=lambda q: (-self._score(q, now), q))
        keep = ranked[: p.d_score]
        rest = ranked[p.d_score :]
        self.rng.shuffle(rest)
        keep += rest[: p.d - len(keep)]
        # keep at least d_out outbound peers, swapping them in for inbound ones
        outbound_kept = [q for q in keep if self.peers[q].outbound]
        if len(outbound_kept) < p.d_out:
            spare = [q for q in ranked if q not in keep and self.peers[q].outbound]
            for q in spare[: p.d_out - len(outbound_kept)]:
                inbound = [x for x in keep[p.d_score :] if not self.peers[x].outbound]
                if not inbound:
                    break
                keep.remove(inbound[-1])
                keep.append(q)
        for peer in set(members) - set(keep):
            self._remove_from_mesh(peer, topic, now)
            toprune.setdefault(peer, []).append(topic)

    def _emit_gossip(self, topic: str, exclude: set[PeerID], now: float) -> None:
        ids = self.mcache.gossip_ids(topic)
        if not ids:
            return
        candidates = sorted(
            q
            for q in self.topic_peers.get(topic, ())
            if q not in exclude
            and self._is_gossipsub(q)
            and not self._is_direct(q)
            and self._score(q, now) >= self.thresholds.gossip_threshold
        )
        target = max(self.params.d_lazy, int(self.params.gossip_factor * len(candidates)))
        chosen = candidates if target >= len(candidates) else self.rng.sample(candidates, target)
        limit = self.params.max_ihave_length
        for peer in chosen:
            send = ids
            if len(ids) > limit:
                send = self.rng.sample(ids, limit)
            self._rpc(peer).control.ihave.append((topic, list(send)))

    def _apply_broken_promises(self, now: float) -> None:
        broken: dict[PeerID, int] = {}
        for msg_id in list(self._promises):
            peers = self._promises[msg_id]
            for peer, deadline in list(peers.items()):
                if deadline < now:
                    del peers[peer]
                    broken[peer] = broken.get(peer, 0) + 1
            if not peers:
                del self._promises[msg_id]
        for peer, count in broken.items():
            self._count("broken_promises", count)
            if self.score is not None and peer in self.peers:
                self.score.add_penalty(peer, count)

    def _clear_backoff(self, now: float) -> None:
        slack = self.params.backoff_slack_heartbeats * self.params.heartbeat_interval
        for topic in list(self._backoff):
            table = self._backoff[topic]
            for peer in [q for q, expiry in table.items() if expiry + slack < now]:
                del table[peer]
            if not table:
                del self._backoff[topic]
