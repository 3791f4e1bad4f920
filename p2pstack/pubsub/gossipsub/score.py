"""Gossipsub v1.1 peer scoring as a sans-IO core.

The router reports what happens (a peer connects, is grafted, delivers a message first,
forwards an invalid one, breaks a rule) and asks :meth:`PeerScore.score` when it decides.
The score function and its parameters are described in :mod:`.score_params`.

Rules of this file:

- Time comes in as ``now`` (seconds, any monotonic origin); nothing here reads a clock or
  does I/O. The router calls :meth:`PeerScore.refresh` once per ``decay_interval``: each
  call decays every counter once, forgets disconnected peers whose retention ran out and
  expires message delivery records.
- Time in mesh (P1) and the activation of P3 are computed from ``now`` when asked, not
  sampled at refresh as go does: a peer counts as active for P3 once it has been in the mesh
  strictly longer than ``mesh_message_deliveries_activation``.
- Events about a peer that was never added (or was forgotten) change nothing, and counters
  exist only for topics in ``params.topics``.
- A disconnected peer is forgotten at once if its score is positive; otherwise its counters
  are kept, without decay, for ``retain_score`` seconds (its first-delivery counters are
  zeroed and, if it had an active P3 deficit in a mesh, that deficit becomes P3b), so it
  cannot shed a bad score by reconnecting. Its IPs still count for P6 meanwhile.

Message delivery records: each message id seen gets a record, kept ``seen_msg_ttl`` seconds,
that says what validation decided and which peers forwarded the message meanwhile:

=============  ==========================  ============================================
status         a duplicate from a peer     when validation ends
=============  ==========================  ============================================
unknown        remembered                  accepted: remembered peers get P3 credit;
                                           rejected as invalid: they get P4
valid          P3 credit (once per peer)   —
               if within the window
invalid        P4 (every time)             —
ignored        nothing                     —
throttled      nothing                     —
=============  ==========================  ============================================

How a rejection counts (:class:`RejectReason`, go's categories):

- ``invalid`` — the validator rejected it: P4 for the sender and every peer remembered in
  the record, and for later duplicates;
- ``ignored`` / ``validation-throttled`` — the validator ignored it, or we could not
  validate it: nobody is penalised, now or later;
- ``missing-signature``, ``invalid-signature``, ``unexpected-signature``,
  ``unexpected-auth-info``, ``self-origin`` — malformed before validation (its id may not
  even be trustworthy): P4 for the sender only, no record;
- ``blacklisted-peer``, ``blacklisted-source``, ``validation-queue-full`` — not scored.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Generic, TypeAlias, TypeVar

from p2pstack.errors import ConfigError, LocalProtocolError
from p2pstack.pubsub.gossipsub.score_params import (
    PeerScoreParams,
    PeerScoreThresholds,
    TopicScoreParams,
    score_parameter_decay,
)

__all__ = [
    "PeerScore",
    "PeerScoreParams",
    "PeerScoreThresholds",
    "RejectReason",
    "TopicScoreParams",
    "score_parameter_decay",
]

PeerT = TypeVar("PeerT", bound=Hashable)

IPKey: TypeAlias = IPv4Address | IPv6Address | IPv6Network
"""What P6 counts peers by: an IPv4 address, an IPv6 address, or an IPv6 /64."""

_NANOSECONDS = 1_000_000_000


class RejectReason(StrEnum):
    """Why the router dropped a message; decides how it counts (see the module doc)."""

    INVALID = "invalid"
    IGNORED = "ignored"
    VALIDATION_THROTTLED = "validation-throttled"
    VALIDATION_QUEUE_FULL = "validation-queue-full"
    MISSING_SIGNATURE = "missing-signature"
    INVALID_SIGNATURE = "invalid-signature"
    UNEXPECTED_SIGNATURE = "unexpected-signature"
    UNEXPECTED_AUTH_INFO = "unexpected-auth-info"
    SELF_ORIGIN = "self-origin"
    BLACKLISTED_PEER = "blacklisted-peer"
    BLACKLISTED_SOURCE = "blacklisted-source"


class _Delivery(Enum):
    """What validation decided about a message (the status of its delivery record)."""

    UNKNOWN = "unknown"
    VALID = "valid"
    INVALID = "invalid"
    IGNORED = "ignored"
    THROTTLED = "throttled"


# Rejections that never touch a delivery record: the message is broken before validation,
# so only its sender pays, or it is not the sender's fault at all.
_PENALISE_SENDER_ONLY = frozenset(
    {
        RejectReason.MISSING_SIGNATURE,
        RejectReason.INVALID_SIGNATURE,
        RejectReason.UNEXPECTED_SIGNATURE,
        RejectReason.UNEXPECTED_AUTH_INFO,
        RejectReason.SELF_ORIGIN,
    }
)
_NOT_SCORED = frozenset(
    {
        RejectReason.BLACKLISTED_PEER,
        RejectReason.BLACKLISTED_SOURCE,
        RejectReason.VALIDATION_QUEUE_FULL,
    }
)
# Rejections that settle a delivery record.
_REJECTED_STATUS = {
    RejectReason.INVALID: _Delivery.INVALID,
    RejectReason.IGNORED: _Delivery.IGNORED,
    RejectReason.VALIDATION_THROTTLED: _Delivery.THROTTLED,
}


@dataclass(slots=True)
class _TopicStats:
    """One peer's counters in one scored topic."""

    in_mesh: bool = False
    graft_time: float = 0.0
    first_message_deliveries: float = 0.0
    mesh_message_deliveries: float = 0.0
    mesh_failure_penalty: float = 0.0
    invalid_message_deliveries: float = 0.0


@dataclass(slots=True)
class _PeerStats:
    """Everything scored about one peer."""

    connected: bool = True
    expire: float = 0.0
    topics: dict[str, _TopicStats] = field(default_factory=dict)
    ips: frozenset[IPKey] = frozenset()
    behaviour_penalty: float = 0.0


@dataclass(slots=True)
class _DeliveryRecord(Generic[PeerT]):
    """What we know about one message id: validation outcome and who forwarded it."""

    status: _Delivery = _Delivery.UNKNOWN
    validated: float = 0.0
    peers: set[PeerT] = field(default_factory=set)


class PeerScore(Generic[PeerT]):
    """The scores of the peers of one gossipsub router.

    ``params`` is validated (raising :class:`ConfigError`) and copied: later changes to the
    caller's object have no effect; use :meth:`set_topic_params` to change a topic's
    parameters.
    """

    def __init__(self, params: PeerScoreParams[PeerT]) -> None:
        params.validate()
        self.params: PeerScoreParams[PeerT] = dataclasses.replace(
            params,
            topics=dict(params.topics),
            ip_colocation_factor_whitelist=list(params.ip_colocation_factor_whitelist),
        )
        self._peers: dict[PeerT, _PeerStats] = {}
        self._peers_by_ip: dict[IPKey, set[PeerT]] = {}
        self._records: dict[bytes, _DeliveryRecord[PeerT]] = {}
        # (expiry, message id) in creation order, hence in expiry order.
        self._record_expiry: deque[tuple[float, bytes]] = deque()

    # ------------------------------------------------------------------------- inspection

    def __contains__(self, peer: object) -> bool:
        """Whether counters are held for ``peer`` (connected, or disconnected and retained)."""
        return peer in self._peers

    @property
    def tracked_message_count(self) -> int:
        """How many message delivery records are held (bounded by ``seen_msg_ttl``)."""
        return len(self._records)

    # ------------------------------------------------------------------------- the score

    def score(self, peer: PeerT, now: float) -> float:
        """The score of ``peer`` at time ``now``; 0 for a peer not tracked."""
        stats = self._peers.get(peer)
        if stats is None:
            return 0.0
        params = self.params
        total = 0.0
        for topic, tstats in stats.topics.items():
            tparams = params.topics.get(topic)
            if tparams is not None:
                total += self._topic_score(tstats, tparams, now) * tparams.topic_weight
        if params.topic_score_cap > 0 and total > params.topic_score_cap:
            total = params.topic_score_cap

        total += params.app_specific_score(peer) * params.app_specific_weight  # P5
        if params.ip_colocation_factor_weight != 0:  # P6
            total += self._ip_colocation_factor(stats) * params.ip_colocation_factor_weight
        excess = stats.behaviour_penalty - params.behaviour_penalty_threshold  # P7
        if excess > 0:
            total += excess * excess * params.behaviour_penalty_weight
        return total

    @staticmethod
    def _topic_score(tstats: _TopicStats, tparams: TopicScoreParams, now: float) -> float:
        """P1-P4 of one topic, weighted, before the topic weight."""
        score = 0.0
        if tstats.in_mesh and tparams.time_in_mesh_weight != 0:  # P1
            # Whole quanta, as the spec and go count them; in integer nanoseconds so that
            # 0.3 s in mesh is 3 quanta of 0.1 s, not 2.
            mesh_ns = round((now - tstats.graft_time) * _NANOSECONDS)
            quantum_ns = max(1, round(tparams.time_in_mesh_quantum * _NANOSECONDS))
            p1 = min(float(max(0, mesh_ns) // quantum_ns), tparams.time_in_mesh_cap)
            score += p1 * tparams.time_in_mesh_weight
        score += tstats.first_message_deliveries * tparams.first_message_deliveries_weight  # P2
        if _p3_active(tstats, tparams, now):  # P3
            deficit = tparams.mesh_message_deliveries_threshold - tstats.mesh_message_deliveries
            if deficit > 0:
                score += deficit * deficit * tparams.mesh_message_deliveries_weight
        score += tstats.mesh_failure_penalty * tparams.mesh_failure_penalty_weight  # P3b
        invalid = tstats.invalid_message_deliveries  # P4
        score += invalid * invalid * tparams.invalid_message_deliveries_weight
        return score

    def _ip_colocation_factor(self, stats: _PeerStats) -> float:
        """P6 before its weight: sum over the peer's IPs of (peers on that IP - threshold)^2."""
        threshold = self.params.ip_colocation_factor_threshold
        factor = 0.0
        for ip in stats.ips:
            surplus = len(self._peers_by_ip.get(ip, ())) - threshold
            if surplus > 0:
                factor += surplus * surplus
        return factor

    # ------------------------------------------------------------------------- peers

    def add_peer(self, peer: PeerT, now: float) -> None:
        """``peer`` connected (and speaks gossipsub); a retained score is taken up again."""
        stats = self._peers.get(peer)
        if stats is None:
            self._peers[peer] = _PeerStats()
        else:
            stats.connected = True

    def remove_peer(self, peer: PeerT, now: float) -> None:
        """``peer`` disconnected: forget a positive score, retain any other.

        A retained peer leaves every mesh, with its active P3 deficit turned into P3b as by
        :meth:`prune`, and its first-delivery counters are zeroed.
        """
        stats = self._peers.get(peer)
        if stats is None:
            return
        if self.score(peer, now) > 0:
            self._forget(peer, stats)
            return
        for topic, tstats in stats.topics.items():
            tstats.first_message_deliveries = 0.0
            tparams = self.params.topics.get(topic)
            if tparams is not None:
                _leave_mesh(tstats, tparams, now)
            else:
                tstats.in_mesh = False
        stats.connected = False
        stats.expire = now + self.params.retain_score

    def set_ips(self, peer: PeerT, ips: Iterable[str | IPv4Address | IPv6Address]) -> None:
        """Replace the IP addresses ``peer`` is connected from (for P6).

        Loopback addresses are skipped (as go does: they are what tests use); an IPv4-mapped
        IPv6 address counts as IPv4; an IPv6 address also counts its /64, since one host
        commonly owns a whole /64. Addresses in a whitelisted network are not counted.
        Raises :class:`ConfigError` for a string that is not an IP address. A peer not
        tracked is ignored.
        """
        keys: set[IPKey] = set()
        for text in ips:
            try:
                address = ip_address(text)
            except ValueError as exc:
                raise ConfigError(f"not an IP address: {text!r}") from exc
            keys.update(self._colocation_keys(address))
        stats = self._peers.get(peer)
        if stats is None:
            return
        new = frozenset(keys)
        for ip in new - stats.ips:
            self._peers_by_ip.setdefault(ip, set()).add(peer)
        self._untrack_ips(peer, stats.ips - new)
        stats.ips = new

    def _colocation_keys(self, address: IPv4Address | IPv6Address) -> list[IPKey]:
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback:
            return []
        keys: list[IPKey] = [address]
        if isinstance(address, IPv6Address):
            keys.append(IPv6Network((address, 64), strict=False))
        whitelist = self.params.ip_colocation_factor_whitelist
        return [key for key in keys if not any(_within(key, net) for net in whitelist)]

    def _untrack_ips(self, peer: PeerT, ips: Iterable[IPKey]) -> None:
        for ip in ips:
            peers = self._peers_by_ip.get(ip)
            if peers is not None:
                peers.discard(peer)
                if not peers:
                    del self._peers_by_ip[ip]

    def _forget(self, peer: PeerT, stats: _PeerStats) -> None:
        self._untrack_ips(peer, stats.ips)
        del self._peers[peer]

    # ------------------------------------------------------------------------- topics and mesh

    def join(self, topic: str) -> None:
        """We subscribed to ``topic``. Scoring keeps no state about our own subscriptions."""

    def leave(self, topic: str) -> None:
        """We unsubscribed from ``topic``. Scoring keeps no state about our own subscriptions."""

    def set_topic_params(self, topic: str, params: TopicScoreParams) -> None:
        """Score ``topic`` with ``params`` from now on (validated first).

        Counters above the new caps are lowered to them; nothing else is reset.
        """
        try:
            params.validate()
        except ConfigError as exc:
            raise ConfigError(f"invalid score parameters for topic {topic!r}: {exc}") from exc
        self.params.topics[topic] = params
        for stats in self._peers.values():
            tstats = stats.topics.get(topic)
            if tstats is not None:
                tstats.first_message_deliveries = min(
                    tstats.first_message_deliveries, params.first_message_deliveries_cap
                )
                tstats.mesh_message_deliveries = min(
                    tstats.mesh_message_deliveries, params.mesh_message_deliveries_cap
                )

    def graft(self, peer: PeerT, topic: str, now: float) -> None:
        """``peer`` joined our mesh for ``topic``: its time in mesh starts now."""
        tstats = self._topic_stats(peer, topic)
        if tstats is not None:
            tstats.in_mesh = True
            tstats.graft_time = now

    def prune(self, peer: PeerT, topic: str, now: float) -> None:
        """``peer`` left our mesh for ``topic``; an active P3 deficit sticks as P3b."""
        tstats = self._topic_stats(peer, topic)
        if tstats is not None:
            _leave_mesh(tstats, self.params.topics[topic], now)

    def _topic_stats(self, peer: PeerT, topic: str) -> _TopicStats | None:
        """The counters of a tracked peer in a scored topic, created on first use."""
        stats = self._peers.get(peer)
        if stats is None:
            return None
        tstats = stats.topics.get(topic)
        if tstats is None and topic in self.params.topics:
            tstats = stats.topics[topic] = _TopicStats()
        return tstats

    # ------------------------------------------------------------------------- messages

    def validate_message(self, msg_id: bytes, now: float) -> None:
        """A message was seen for the first time and validation starts."""
        self._record(msg_id, now)

    def deliver_message(self, peer: PeerT, msg_id: bytes, topic: str, now: float) -> None:
        """The message ``peer`` sent us first passed validation.

        ``peer`` earns a first delivery (P2, and P3 if in the mesh); every other peer that
        forwarded it while it was being validated earns a near-first mesh delivery (P3).
        """
        self._mark_first_delivery(peer, topic)
        record = self._record(msg_id, now)
        if record.status is not _Delivery.UNKNOWN:
            return  # validation already settled; a second verdict is ignored
        record.status = _Delivery.VALID
        record.validated = now
        for other in record.peers:
            if other != peer:
                self._mark_mesh_delivery(other, topic)

    def reject_message(
        self, peer: PeerT, msg_id: bytes, topic: str, reason: str, now: float
    ) -> None:
        """The message ``peer`` sent us was dropped for ``reason`` (a :class:`RejectReason`).

        Raises :class:`LocalProtocolError` for a reason not in :class:`RejectReason`.
        """
        try:
            why = RejectReason(reason)
        except ValueError:
            raise LocalProtocolError(f"unknown reject reason {reason!r}") from None
        if why in _NOT_SCORED:
            return
        if why in _PENALISE_SENDER_ONLY:
            self._mark_invalid(peer, topic)
            return
        record = self._record(msg_id, now)
        if record.status is not _Delivery.UNKNOWN:
            return
        record.status = _REJECTED_STATUS[why]
        forwarders, record.peers = record.peers, set()
        if record.status is _Delivery.INVALID:
            self._mark_invalid(peer, topic)
            for other in forwarders:
                self._mark_invalid(other, topic)

    def duplicate_message(self, peer: PeerT, msg_id: bytes, topic: str, now: float) -> None:
        """``peer`` sent us a message we had already seen (see the table in the module doc)."""
        record = self._record(msg_id, now)
        if peer in record.peers:
            return
        status = record.status
        if status is _Delivery.UNKNOWN:
            record.peers.add(peer)
        elif status is _Delivery.VALID:
            record.peers.add(peer)
            window = self._window(topic)
            if window is not None and now - record.validated <= window:
                self._mark_mesh_delivery(peer, topic)
        elif status is _Delivery.INVALID:
            self._mark_invalid(peer, topic)
        # IGNORED, THROTTLED: we do not know whether it was valid; nobody is scored.

    def _window(self, topic: str) -> float | None:
        tparams = self.params.topics.get(topic)
        return None if tparams is None else tparams.mesh_message_deliveries_window

    def _record(self, msg_id: bytes, now: float) -> _DeliveryRecord[PeerT]:
        record = self._records.get(msg_id)
        if record is None:
            self._expire_records(now)
            record = self._records[msg_id] = _DeliveryRecord()
            self._record_expiry.append((now + self.params.seen_msg_ttl, msg_id))
        return record

    def _expire_records(self, now: float) -> None:
        expiry = self._record_expiry
        while expiry and now > expiry[0][0]:
            _, msg_id = expiry.popleft()
            self._records.pop(msg_id, None)

    def _mark_first_delivery(self, peer: PeerT, topic: str) -> None:
        tstats = self._topic_stats(peer, topic)
        if tstats is None:
            return
        tparams = self.params.topics[topic]
        tstats.first_message_deliveries = min(
            tstats.first_message_deliveries + 1, tparams.first_message_deliveries_cap
        )
        if tstats.in_mesh:
            tstats.mesh_message_deliveries = min(
                tstats.mesh_message_deliveries + 1, tparams.mesh_message_deliveries_cap
            )

    def _mark_mesh_delivery(self, peer: PeerT, topic: str) -> None:
        tstats = self._topic_stats(peer, topic)
        if tstats is not None and tstats.in_mesh:
            tstats.mesh_message_deliveries = min(
                tstats.mesh_message_deliveries + 1,
                self.params.topics[topic].mesh_message_deliveries_cap,
            )

    def _mark_invalid(self, peer: PeerT, topic: str) -> None:
        tstats = self._topic_stats(peer, topic)
        if tstats is not None:
            tstats.invalid_message_deliveries += 1

    # ------------------------------------------------------------------------- P7

    def add_penalty(self, peer: PeerT, count: int) -> None:
        """Add ``count`` to the behaviour penalty counter of ``peer`` (P7)."""
        stats = self._peers.get(peer)
        if stats is not None:
            stats.behaviour_penalty += count

    # ------------------------------------------------------------------------- decay

    def refresh(self, now: float) -> None:
        """Decay every connected peer's counters once; forget expired peers and records.

        Call once per ``params.decay_interval``. Retained (disconnected) peers do not decay:
        a bad score waits out ``retain_score`` whole, and a good one is not lost.
        """
        self._expire_records(now)
        params = self.params
        to_zero = params.decay_to_zero
        for peer, stats in list(self._peers.items()):
            if not stats.connected:
                if now > stats.expire:
                    self._forget(peer, stats)
                continue
            for topic, tstats in stats.topics.items():
                tparams = params.topics.get(topic)
                if tparams is None:
                    continue
                tstats.first_message_deliveries = _decay(
                    tstats.first_message_deliveries,
                    tparams.first_message_deliveries_decay,
                    to_zero,
                )
                tstats.mesh_message_deliveries = _decay(
                    tstats.mesh_message_deliveries, tparams.mesh_message_deliveries_decay, to_zero
                )
                tstats.mesh_failure_penalty = _decay(
                    tstats.mesh_failure_penalty, tparams.mesh_failure_penalty_decay, to_zero
                )
                tstats.invalid_message_deliveries = _decay(
                    tstats.invalid_message_deliveries,
                    tparams.invalid_message_deliveries_decay,
                    to_zero,
                )
            stats.behaviour_penalty = _decay(
                stats.behaviour_penalty, params.behaviour_penalty_decay, to_zero
            )


def _decay(value: float, factor: float, to_zero: float) -> float:
    value *= factor
    return 0.0 if value < to_zero else value


def _p3_active(tstats: _TopicStats, tparams: TopicScoreParams, now: float) -> bool:
    """Whether the P3 deficit applies: in the mesh for longer than the activation time."""
    return tstats.in_mesh and now - tstats.graft_time > tparams.mesh_message_deliveries_activation


def _leave_mesh(tstats: _TopicStats, tparams: TopicScoreParams, now: float) -> None:
    """Take the peer out of the mesh; an active P3 deficit is added, squared, to P3b."""
    if _p3_active(tstats, tparams, now):
        deficit = tparams.mesh_message_deliveries_threshold - tstats.mesh_message_deliveries
        if deficit > 0:
            tstats.mesh_failure_penalty += deficit * deficit
    tstats.in_mesh = False


def _within(key: IPKey, network: IPv4Network | IPv6Network) -> bool:
    """Whether an address (or a /64) lies inside a whitelisted network."""
    if isinstance(key, IPv6Network):
        return isinstance(network, IPv6Network) and key.subnet_of(network)
    return key in network
