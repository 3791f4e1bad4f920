"""Parameters of gossipsub v1.1 peer scoring, and their validation.

The score function (libp2p/specs pubsub/gossipsub/gossipsub-v1.1.md, "The Score Function") is::

    Score(p) = TopicCap(sum over topics i of t_i * (w1*P1 + w2*P2 + w3*P3 + w3b*P3b + w4*P4))
               + w5*P5 + w6*P6 + w7*P7

:class:`TopicScoreParams` holds the per-topic weights, caps and decays (P1-P4),
:class:`PeerScoreParams` the global ones (P5-P7, decay, retention) and the topic map, and
:class:`PeerScoreThresholds` the score levels the router compares against.

Rules of this file:

- Every duration is in seconds (a float). Every decay is a factor in (0, 1) applied once per
  ``decay_interval``; :func:`score_parameter_decay` turns "fades out over N seconds" into one.
- ``validate()`` raises :class:`~p2pstack.errors.ConfigError` for the same mistakes as
  go-libp2p-pubsub's ``validate()`` (signs of weights, decays in (0, 1), positive caps,
  activation of at least 1 s, decay interval of at least 1 s, NaN and infinities), except
  that a parameter group whose weight is zero is not checked at all: go insists on a non-zero
  ``TimeInMeshQuantum`` and an ``InvalidMessageDeliveriesDecay`` in (0, 1) even then.
- The defaults switch every parameter off (weight 0) except the two multipliers,
  ``topic_weight`` and ``app_specific_weight``, which default to 1, so a default-built
  parameter set validates and scores every peer 0. Thresholds default to rust-libp2p's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Generic, TypeVar

from p2pstack.errors import ConfigError

__all__ = [
    "DEFAULT_DECAY_INTERVAL",
    "DEFAULT_DECAY_TO_ZERO",
    "DEFAULT_SEEN_MSG_TTL",
    "PeerScoreParams",
    "PeerScoreThresholds",
    "TopicScoreParams",
    "score_parameter_decay",
]

PeerT = TypeVar("PeerT", bound=Hashable)

DEFAULT_DECAY_INTERVAL = 1.0
"""Seconds between two decays of the score counters (go's ``DefaultDecayInterval``)."""

DEFAULT_DECAY_TO_ZERO = 0.01
"""A decayed counter below this is set to 0 (go's ``DefaultDecayToZero``)."""

DEFAULT_SEEN_MSG_TTL = 120.0
"""Seconds a message's delivery record is kept (go's ``TimeCacheDuration``)."""


def score_parameter_decay(
    decay_seconds: float,
    decay_interval: float = DEFAULT_DECAY_INTERVAL,
    decay_to_zero: float = DEFAULT_DECAY_TO_ZERO,
) -> float:
    """The decay factor that takes a counter from 1 to ``decay_to_zero`` in ``decay_seconds``.

    With ``n = decay_seconds / decay_interval`` decays, ``factor ** n == decay_to_zero``, so
    ``factor = decay_to_zero ** (1 / n)``. Like go's ``ScoreParameterDecayWithBase``, except
    that ``n`` is not rounded down to whole intervals (rust-libp2p does the same).
    """
    if not (math.isfinite(decay_seconds) and decay_seconds > 0):
        raise ConfigError("decay_seconds must be a positive number")
    if not (math.isfinite(decay_interval) and decay_interval > 0):
        raise ConfigError("decay_interval must be a positive number")
    if not 0 < decay_to_zero < 1:
        raise ConfigError("decay_to_zero must be between 0 and 1")
    ticks = decay_seconds / decay_interval
    return float(decay_to_zero ** (1 / ticks))


def _no_app_score(peer: object) -> float:
    """The default application-specific score: 0 for every peer."""
    return 0.0


def _is_number(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_decay(weight: float, decay: float, name: str) -> None:
    """A counter that matters (non-zero weight) must decay by a factor in (0, 1)."""
    if weight != 0:
        _check(_is_number(decay) and 0 < decay < 1, f"invalid {name}; must be between 0 and 1")


@dataclass
class TopicScoreParams:
    """The per-topic part of the score: P1-P4 and the topic's weight.

    Counters (P2, P3, P3b, P4) are capped when incremented and multiplied by their decay at
    every decay interval.
    """

    topic_weight: float = 1.0
    """How much this topic's score counts in the peer's total (>= 0)."""

    time_in_mesh_weight: float = 0.0
    """P1 weight (>= 0). P1 is whole ``time_in_mesh_quantum``s since GRAFT, capped."""
    time_in_mesh_quantum: float = 1.0
    time_in_mesh_cap: float = 0.0

    first_message_deliveries_weight: float = 0.0
    """P2 weight (>= 0). P2 counts messages this peer delivered to us first."""
    first_message_deliveries_decay: float = 0.0
    first_message_deliveries_cap: float = 0.0

    mesh_message_deliveries_weight: float = 0.0
    """P3 weight (<= 0). P3 is the squared deficit of (near-)first deliveries by a mesh peer
    below ``mesh_message_deliveries_threshold``, applied once the peer has been in the mesh
    longer than ``mesh_message_deliveries_activation``. A duplicate counts as near-first while
    the message is being validated or within ``mesh_message_deliveries_window`` after."""
    mesh_message_deliveries_decay: float = 0.0
    mesh_message_deliveries_cap: float = 0.0
    mesh_message_deliveries_threshold: float = 0.0
    mesh_message_deliveries_window: float = 0.0
    mesh_message_deliveries_activation: float = 0.0

    mesh_failure_penalty_weight: float = 0.0
    """P3b weight (<= 0). P3b accumulates the squared P3 deficit a peer had when pruned."""
    mesh_failure_penalty_decay: float = 0.0

    invalid_message_deliveries_weight: float = 0.0
    """P4 weight (<= 0). P4 is the square of the count of invalid messages from the peer."""
    invalid_message_deliveries_decay: float = 0.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the parameters make no sense (see the module doc)."""
        _check(
            _is_number(self.topic_weight) and self.topic_weight >= 0,
            "invalid topic_weight; must be >= 0 and a valid number",
        )
        # P1
        w = self.time_in_mesh_weight
        _check(
            _is_number(w) and w >= 0,
            "invalid time_in_mesh_weight; must be positive (or 0 to disable)",
        )
        if w != 0:
            _check(
                _is_number(self.time_in_mesh_quantum) and self.time_in_mesh_quantum > 0,
                "invalid time_in_mesh_quantum; must be positive",
            )
            _check(
                _is_number(self.time_in_mesh_cap) and self.time_in_mesh_cap > 0,
                "invalid time_in_mesh_cap; must be positive",
            )
        # P2
        w = self.first_message_deliveries_weight
        _check(
            _is_number(w) and w >= 0,
            "invalid first_message_deliveries_weight; must be positive (or 0 to disable)",
        )
        _check_decay(w, self.first_message_deliveries_decay, "first_message_deliveries_decay")
        if w != 0:
            _check(
                _is_number(self.first_message_deliveries_cap)
                and self.first_message_deliveries_cap > 0,
                "invalid first_message_deliveries_cap; must be positive",
            )
        # P3
        w = self.mesh_message_deliveries_weight
        _check(
            _is_number(w) and w <= 0,
            "invalid mesh_message_deliveries_weight; must be negative (or 0 to disable)",
        )
        _check_decay(w, self.mesh_message_deliveries_decay, "mesh_message_deliveries_decay")
        if w != 0:
            _check(
                _is_number(self.mesh_message_deliveries_cap)
                and self.mesh_message_deliveries_cap > 0,
                "invalid mesh_message_deliveries_cap; must be positive",
            )
            _check(
                _is_number(self.mesh_message_deliveries_threshold)
                and self.mesh_message_deliveries_threshold > 0,
                "invalid mesh_message_deliveries_threshold; must be positive",
            )
            _check(
                _is_number(self.mesh_message_deliveries_activation)
                and self.mesh_message_deliveries_activation >= 1.0,
                "invalid mesh_message_deliveries_activation; must be at least 1 s",
            )
        _check(
            _is_number(self.mesh_message_deliveries_window)
            and self.mesh_message_deliveries_window >= 0,
            "invalid mesh_message_deliveries_window; must be >= 0",
        )
        # P3b
        w = self.mesh_failure_penalty_weight
        _check(
            _is_number(w) and w <= 0,
            "invalid mesh_failure_penalty_weight; must be negative (or 0 to disable)",
        )
        _check_decay(w, self.mesh_failure_penalty_decay, "mesh_failure_penalty_decay")
        # P4
        w = self.invalid_message_deliveries_weight
        _check(
            _is_number(w) and w <= 0,
            "invalid invalid_message_deliveries_weight; must be negative (or 0 to disable)",
        )
        _check_decay(w, self.invalid_message_deliveries_decay, "invalid_message_deliveries_decay")


@dataclass
class PeerScoreParams(Generic[PeerT]):
    """The global part of the score (P5-P7), the topic map, decay and retention.

    ``PeerT`` is the type of peer identities (the router uses
    :class:`~p2pstack.identity.PeerID`); only ``app_specific_score`` sees it.
    """

    topics: dict[str, TopicScoreParams] = field(default_factory=dict)
    """Scored topics; a topic not in here adds nothing to any peer's score."""
    topic_score_cap: float = 0.0
    """Upper bound of the summed topic scores (>= 0; 0 means no cap). Caps positive only."""

    app_specific_score: Callable[[PeerT], float] = _no_app_score
    """P5: the application's own score of a peer, any real value."""
    app_specific_weight: float = 1.0

    ip_colocation_factor_weight: float = 0.0
    """P6 weight (<= 0). P6 sums, over the peer's IPs, the squared number of peers sharing
    that IP beyond ``ip_colocation_factor_threshold`` (>= 1). IPs inside a network of
    ``ip_colocation_factor_whitelist`` never count."""
    ip_colocation_factor_threshold: float = 1.0
    ip_colocation_factor_whitelist: list[IPv4Network | IPv6Network] = field(default_factory=list)

    behaviour_penalty_weight: float = 0.0
    """P7 weight (<= 0). P7 is the squared excess of the router's penalty counter over
    ``behaviour_penalty_threshold`` (>= 0); the counter decays by ``behaviour_penalty_decay``."""
    behaviour_penalty_threshold: float = 0.0
    behaviour_penalty_decay: float = 0.0

    decay_interval: float = DEFAULT_DECAY_INTERVAL
    """Seconds between decays (>= 1): how often the router must call ``PeerScore.refresh``."""
    decay_to_zero: float = DEFAULT_DECAY_TO_ZERO
    """A decayed counter below this becomes 0 (in (0, 1))."""
    retain_score: float = 0.0
    """Seconds to keep a disconnected peer's non-positive score (0: until the next refresh)."""
    seen_msg_ttl: float = DEFAULT_SEEN_MSG_TTL
    """Seconds to keep a message's delivery record (go's ``SeenMsgTTL``)."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the parameters make no sense (see the module doc)."""
        for topic, params in self.topics.items():
            try:
                params.validate()
            except ConfigError as exc:
                raise ConfigError(f"invalid score parameters for topic {topic!r}: {exc}") from exc
        _check(
            _is_number(self.topic_score_cap) and self.topic_score_cap >= 0,
            "invalid topic_score_cap; must be positive (or 0 for no cap)",
        )
        _check(callable(self.app_specific_score), "app_specific_score must be callable")
        _check(_is_number(self.app_specific_weight), "invalid app_specific_weight")
        # P6
        w = self.ip_colocation_factor_weight
        _check(
            _is_number(w) and w <= 0,
            "invalid ip_colocation_factor_weight; must be negative (or 0 to disable)",
        )
        if w != 0:
            _check(
                _is_number(self.ip_colocation_factor_threshold)
                and self.ip_colocation_factor_threshold >= 1,
                "invalid ip_colocation_factor_threshold; must be at least 1",
            )
        for network in self.ip_colocation_factor_whitelist:
            _check(
                isinstance(network, IPv4Network | IPv6Network),
                f"ip_colocation_factor_whitelist entries must be ip networks, not {network!r}",
            )
        # P7
        w = self.behaviour_penalty_weight
        _check(
            _is_number(w) and w <= 0,
            "invalid behaviour_penalty_weight; must be negative (or 0 to disable)",
        )
        _check_decay(w, self.behaviour_penalty_decay, "behaviour_penalty_decay")
        _check(
            _is_number(self.behaviour_penalty_threshold) and self.behaviour_penalty_threshold >= 0,
            "invalid behaviour_penalty_threshold; must be >= 0",
        )
        # decay and retention
        _check(
            _is_number(self.decay_interval) and self.decay_interval >= 1.0,
            "invalid decay_interval; must be at least 1 s",
        )
        _check(
            _is_number(self.decay_to_zero) and 0 < self.decay_to_zero < 1,
            "invalid decay_to_zero; must be between 0 and 1",
        )
        _check(
            _is_number(self.retain_score) and self.retain_score >= 0,
            "invalid retain_score; must be >= 0",
        )
        _check(
            _is_number(self.seen_msg_ttl) and self.seen_msg_ttl > 0,
            "invalid seen_msg_ttl; must be positive",
        )


@dataclass
class PeerScoreThresholds:
    """Score levels the router acts on (defaults: rust-libp2p's).

    Below 0 a peer is pruned and not grafted; below ``gossip_threshold`` no gossip goes to or
    is taken from it; below ``publish_threshold`` our own messages are not flood-published to
    it; below ``graylist_threshold`` its RPCs are ignored. PX is accepted only from a peer
    above ``accept_px_threshold``, and when the median mesh score is below
    ``opportunistic_graft_threshold`` the router grafts better peers.
    """

    gossip_threshold: float = -10.0
    publish_threshold: float = -50.0
    graylist_threshold: float = -80.0
    accept_px_threshold: float = 10.0
    opportunistic_graft_threshold: float = 20.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` unless 0 >= gossip >= publish >= graylist, others >= 0."""
        _check(
            _is_number(self.gossip_threshold) and self.gossip_threshold <= 0,
            "invalid gossip_threshold; must be <= 0",
        )
        _check(
            _is_number(self.publish_threshold)
            and self.publish_threshold <= 0
            and self.publish_threshold <= self.gossip_threshold,
            "invalid publish_threshold; must be <= 0 and <= gossip_threshold",
        )
        _check(
            _is_number(self.graylist_threshold)
            and self.graylist_threshold <= 0
            and self.graylist_threshold <= self.publish_threshold,
            "invalid graylist_threshold; must be <= 0 and <= publish_threshold",
        )
        _check(
            _is_number(self.accept_px_threshold) and self.accept_px_threshold >= 0,
            "invalid accept_px_threshold; must be >= 0",
        )
        _check(
            _is_number(self.opportunistic_graft_threshold)
            and self.opportunistic_graft_threshold >= 0,
            "invalid opportunistic_graft_threshold; must be >= 0",
        )
