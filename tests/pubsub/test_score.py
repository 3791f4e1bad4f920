"""PeerScore, the gossipsub v1.1 scoring core, after go-libp2p-pubsub's score_test.go.

Peers are plain strings and time is whatever ``now`` we pass, so every expected score is
worked out by hand in the test. Decay factors are powers of two, so the arithmetic is exact.
"""

from __future__ import annotations

import math
from ipaddress import ip_network
from typing import Any

import pytest

from p2pstack.errors import ConfigError, LocalProtocolError
from p2pstack.pubsub.gossipsub.score import (
    PeerScore,
    PeerScoreParams,
    PeerScoreThresholds,
    RejectReason,
    TopicScoreParams,
    score_parameter_decay,
)

T = "mytopic"


def scorer(topic: TopicScoreParams | None = None, **kwargs: Any) -> PeerScore[str]:
    """A PeerScore scoring ``T`` with ``topic`` (if given) and the global ``kwargs``."""
    topics = {T: topic} if topic is not None else {}
    return PeerScore(PeerScoreParams[str](topics=topics, **kwargs))


def connect(ps: PeerScore[str], *peers: str, graft_at: float | None = None) -> None:
    for peer in peers:
        ps.add_peer(peer, 0.0)
        if graft_at is not None:
            ps.graft(peer, T, graft_at)


def first_delivery(ps: PeerScore[str], peer: str, msg_id: bytes, now: float) -> None:
    ps.validate_message(msg_id, now)
    ps.deliver_message(peer, msg_id, T, now)


def msg(i: int) -> bytes:
    return b"msg-%d" % i


def time_in_mesh(cap: float = 3600.0, quantum: float = 1.0) -> TopicScoreParams:
    return TopicScoreParams(
        topic_weight=0.5,
        time_in_mesh_weight=1.0,
        time_in_mesh_quantum=quantum,
        time_in_mesh_cap=cap,
    )


def first_deliveries(cap: float = 2000.0) -> TopicScoreParams:
    return TopicScoreParams(
        first_message_deliveries_weight=1.0,
        first_message_deliveries_decay=0.5,
        first_message_deliveries_cap=cap,
    )


def mesh_deliveries(
    activation: float = 1.0, window: float = 0.01, weight: float = -1.0, cap: float = 100.0
) -> TopicScoreParams:
    return TopicScoreParams(
        mesh_message_deliveries_weight=weight,
        mesh_message_deliveries_decay=0.5,
        mesh_message_deliveries_cap=cap,
        mesh_message_deliveries_threshold=20.0,
        mesh_message_deliveries_window=window,
        mesh_message_deliveries_activation=activation,
    )


def mesh_failure(p3_weight: float = 0.0) -> TopicScoreParams:
    params = mesh_deliveries(weight=p3_weight)
    params.mesh_failure_penalty_weight = -1.0
    params.mesh_failure_penalty_decay = 0.5
    return params


def invalid_deliveries() -> TopicScoreParams:
    return TopicScoreParams(
        invalid_message_deliveries_weight=-1.0, invalid_message_deliveries_decay=0.5
    )


# ----------------------------------------------------------------------------- basics


def test_unknown_peer_scores_zero_and_its_events_change_nothing() -> None:
    ps = scorer(invalid_deliveries(), behaviour_penalty_weight=-1.0, behaviour_penalty_decay=0.5)
    ps.graft("X", T, 0.0)
    ps.add_penalty("X", 3)
    ps.reject_message("X", msg(0), T, "invalid", 0.0)
    ps.set_ips("X", ["1.2.3.4"])
    assert ps.score("X", 10.0) == 0.0
    assert "X" not in ps
    connect(ps, "X")
    assert ps.score("X", 10.0) == 0.0


def test_default_parameters_validate_and_score_nothing() -> None:
    PeerScoreParams[str]().validate()
    TopicScoreParams().validate()
    PeerScoreThresholds().validate()
    ps = scorer(TopicScoreParams())
    connect(ps, "A", graft_at=0.0)
    first_delivery(ps, "A", msg(0), 1.0)
    ps.add_penalty("A", 5)
    assert ps.score("A", 100.0) == 0.0


def test_join_and_leave_keep_no_state() -> None:
    ps = scorer(first_deliveries())
    connect(ps, "A")
    ps.join(T)
    first_delivery(ps, "A", msg(0), 1.0)
    ps.leave(T)
    assert ps.score("A", 1.0) == 1.0


def test_params_are_copied() -> None:
    topics = {T: first_deliveries()}
    ps = PeerScore(PeerScoreParams[str](topics=topics))
    topics.clear()
    connect(ps, "A")
    first_delivery(ps, "A", msg(0), 1.0)
    assert ps.score("A", 1.0) == 1.0


# ----------------------------------------------------------------------------- P1


def test_p1_counts_whole_quanta_since_graft() -> None:
    ps = scorer(time_in_mesh())
    connect(ps, "A")
    assert ps.score("A", 50.0) == 0.0  # not in the mesh
    ps.graft("A", T, 100.0)
    assert ps.score("A", 100.0) == 0.0
    assert ps.score("A", 100.9) == 0.0  # less than one quantum
    assert ps.score("A", 101.0) == 0.5  # 1 quantum * weight 1 * topic weight 0.5
    assert ps.score("A", 300.5) == 100.0  # 200 whole quanta


def test_p1_quanta_are_not_lost_to_float_rounding() -> None:
    ps = scorer(time_in_mesh(quantum=0.1))
    connect(ps, "A", graft_at=10.0)
    # 10.3 - 10.0 is 0.30000000000000071 and 0.3 / 0.1 is 2.9999999999999996: still 3 quanta.
    assert ps.score("A", 10.3) == 1.5


def test_p1_is_capped() -> None:
    ps = scorer(time_in_mesh(cap=10.0))
    connect(ps, "A", graft_at=0.0)
    assert ps.score("A", 40.0) == 5.0  # cap 10 * topic weight 0.5


def test_p1_stops_on_prune_and_restarts_on_graft() -> None:
    ps = scorer(time_in_mesh())
    connect(ps, "A", graft_at=0.0)
    ps.prune("A", T, 20.0)
    assert ps.score("A", 30.0) == 0.0
    ps.graft("A", T, 30.0)
    assert ps.score("A", 34.0) == 2.0  # 4 quanta since the new graft * 0.5


# ----------------------------------------------------------------------------- P2


def test_p2_counts_first_deliveries_in_or_out_of_the_mesh() -> None:
    ps = scorer(first_deliveries())
    connect(ps, "A", graft_at=0.0)
    connect(ps, "B")
    for i in range(100):
        first_delivery(ps, "A", msg(i), 1.0)
    for i in range(100, 130):
        first_delivery(ps, "B", msg(i), 1.0)
    assert ps.score("A", 1.0) == 100.0
    assert ps.score("B", 1.0) == 30.0


def test_p2_is_capped() -> None:
    ps = scorer(first_deliveries(cap=50.0))
    connect(ps, "A", graft_at=0.0)
    for i in range(100):
        first_delivery(ps, "A", msg(i), 1.0)
    assert ps.score("A", 1.0) == 50.0


def test_p2_decays_once_per_refresh() -> None:
    ps = scorer(first_deliveries())
    connect(ps, "A", graft_at=0.0)
    for i in range(100):
        first_delivery(ps, "A", msg(i), 0.5)
    ps.refresh(1.0)
    assert ps.score("A", 1.0) == 50.0
    for t in range(2, 5):
        ps.refresh(float(t))
    assert ps.score("A", 4.0) == 6.25  # 100 / 2**4


def test_decayed_counter_below_decay_to_zero_becomes_zero() -> None:
    topic = first_deliveries()
    topic.first_message_deliveries_weight = 64.0
    ps = scorer(topic)  # decay_to_zero 0.01
    connect(ps, "A")
    first_delivery(ps, "A", msg(0), 0.0)
    for t in range(1, 7):
        ps.refresh(float(t))
    assert ps.score("A", 6.0) == 1.0  # 64 * 1/2**6; the counter is 0.015625 >= 0.01
    ps.refresh(7.0)
    assert ps.score("A", 7.0) == 0.0  # 0.0078125 < 0.01


def test_topic_weights_mix_topics_and_unscored_topics_count_nothing() -> None:
    def weighted(weight: float) -> TopicScoreParams:
        params = first_deliveries()
        params.topic_weight = weight
        return params

    ps = PeerScore(PeerScoreParams[str](topics={"a": weighted(2.0), "b": weighted(0.5)}))
    connect(ps, "A")
    for i, topic in enumerate(["a"] * 3 + ["b"] * 4 + ["c"] * 5):
        ps.validate_message(msg(i), 1.0)
        ps.deliver_message("A", msg(i), topic, 1.0)
    assert ps.score("A", 1.0) == 8.0  # 2 * 3 + 0.5 * 4 + nothing for "c"


def test_topic_score_cap_limits_only_the_positive_topic_part() -> None:
    topic = first_deliveries()
    topic.invalid_message_deliveries_weight = -1.0
    topic.invalid_message_deliveries_decay = 0.5
    ps = scorer(topic, topic_score_cap=5.0, app_specific_score=lambda p: 10.0)
    connect(ps, "A", "B")
    for i in range(8):
        first_delivery(ps, "A", msg(i), 1.0)
    assert ps.score("A", 1.0) == 15.0  # min(8, 5) + app-specific 10 * weight 1
    for i in range(8, 18):
        ps.reject_message("B", msg(i), T, "invalid-signature", 1.0)
    assert ps.score("B", 1.0) == -90.0  # -100 is not capped, then + 10


# ----------------------------------------------------------------------------- P3


def test_p3_counts_first_and_near_first_deliveries_of_mesh_peers() -> None:
    # A always delivers first, B within the window after validation, C after the window.
    ps = scorer(mesh_deliveries())
    connect(ps, "A", "B", "C", graft_at=0.0)
    for now in (0.5, 1.0):  # activation is strictly after 1 s in the mesh
        assert [ps.score(p, now) for p in "ABC"] == [0.0, 0.0, 0.0]
    for i in range(100):
        first_delivery(ps, "A", msg(i), 2.0)
        ps.duplicate_message("B", msg(i), T, 2.005)
        ps.duplicate_message("C", msg(i), T, 2.05)
    assert ps.score("A", 3.0) == 0.0
    assert ps.score("B", 3.0) == 0.0
    assert ps.score("C", 3.0) == -400.0  # (threshold 20 - 0)^2 * weight -1


def test_p3_window_is_inclusive() -> None:
    ps = scorer(mesh_deliveries(window=0.5))
    connect(ps, "A", "B", "C", graft_at=0.0)
    first_delivery(ps, "A", msg(0), 10.0)
    ps.duplicate_message("B", msg(0), T, 10.5)
    ps.duplicate_message("C", msg(0), T, 10.75)
    assert ps.score("B", 11.0) == -361.0  # (20 - 1)^2
    assert ps.score("C", 11.0) == -400.0


def test_p3_duplicates_during_validation_count_when_it_succeeds() -> None:
    ps = scorer(mesh_deliveries())
    connect(ps, "A", "B", graft_at=0.0)
    ps.validate_message(msg(0), 5.0)
    ps.duplicate_message("B", msg(0), T, 5.0)
    ps.duplicate_message("B", msg(0), T, 5.1)  # the same peer again counts once
    ps.duplicate_message("A", msg(0), T, 5.2)  # the sender's own echo earns nothing extra
    assert ps.score("B", 6.0) == -400.0  # nothing counted while validating
    ps.deliver_message("A", msg(0), T, 9.0)  # long after the window: still counts
    assert ps.score("A", 10.0) == -361.0
    assert ps.score("B", 10.0) == -361.0
    ps.duplicate_message("B", msg(0), T, 9.001)  # already counted for B
    assert ps.score("B", 10.0) == -361.0


def test_p3_ignores_deliveries_made_outside_the_mesh() -> None:
    ps = scorer(mesh_deliveries())
    connect(ps, "A")
    for i in range(30):
        first_delivery(ps, "A", msg(i), 1.0)
    ps.graft("A", T, 10.0)
    assert ps.score("A", 12.0) == -400.0


def test_p3_near_first_deliveries_count_only_for_mesh_peers() -> None:
    ps = scorer(mesh_deliveries())
    connect(ps, "A", graft_at=0.0)
    connect(ps, "B")
    for i in range(5):
        first_delivery(ps, "A", msg(i), 1.0)
        ps.duplicate_message("B", msg(i), T, 1.0)
    ps.validate_message(msg(5), 1.0)
    ps.duplicate_message("B", msg(5), T, 1.0)
    ps.deliver_message("A", msg(5), T, 1.0)
    ps.graft("B", T, 2.0)
    assert ps.score("B", 4.0) == -400.0  # none of the 6 counted


def test_p3_a_repeated_near_first_duplicate_counts_once() -> None:
    ps = scorer(mesh_deliveries())
    connect(ps, "A", "B", graft_at=0.0)
    first_delivery(ps, "A", msg(0), 5.0)
    ps.duplicate_message("B", msg(0), T, 5.0)
    ps.duplicate_message("B", msg(0), T, 5.001)
    assert ps.score("B", 6.0) == -361.0  # (20 - 1)^2


def test_p3_is_capped_at_increment() -> None:
    ps = scorer(mesh_deliveries(cap=25.0))
    connect(ps, "A", graft_at=0.0)
    for i in range(40):
        first_delivery(ps, "A", msg(i), 1.0)
    ps.refresh(2.0)  # 25 -> 12.5, not 40 -> 20
    assert ps.score("A", 2.0) == -56.25  # (20 - 12.5)^2


def test_p3_decay_brings_a_peer_below_the_threshold() -> None:
    ps = scorer(mesh_deliveries())
    connect(ps, "A", graft_at=0.0)
    for i in range(40):
        first_delivery(ps, "A", msg(i), 0.5)
    ps.refresh(1.0)
    assert ps.score("A", 5.0) == 0.0  # 20 deliveries: no deficit
    ps.refresh(2.0)
    assert ps.score("A", 5.0) == -100.0  # 10 deliveries: (20 - 10)^2
    ps.refresh(3.0)
    assert ps.score("A", 5.0) == -225.0  # 5 deliveries


def test_p3_activation_restarts_with_each_graft() -> None:
    ps = scorer(mesh_deliveries(activation=5.0))
    connect(ps, "A", graft_at=0.0)
    assert ps.score("A", 5.0) == 0.0
    assert ps.score("A", 5.5) == -400.0
    ps.prune("A", T, 6.0)
    ps.graft("A", T, 7.0)
    assert ps.score("A", 11.0) == 0.0  # 4 s since the new graft; P3b weighs 0 here
    assert ps.score("A", 12.5) == -400.0


# ----------------------------------------------------------------------------- P3b


def test_p3b_turns_an_active_deficit_into_a_sticky_penalty_on_prune() -> None:
    ps = scorer(mesh_failure())  # P3 itself weighs 0 here
    connect(ps, "A", "B", graft_at=0.0)
    for i in range(100):
        first_delivery(ps, "A", msg(i), 0.5)
    assert ps.score("A", 2.0) == 0.0
    assert ps.score("B", 2.0) == 0.0
    ps.prune("A", T, 2.0)
    ps.prune("B", T, 2.0)
    assert ps.score("A", 2.0) == 0.0  # no deficit
    assert ps.score("B", 2.0) == -400.0  # deficit 20, squared
    ps.refresh(3.0)
    assert ps.score("B", 3.0) == -200.0  # P3b decays by 0.5
    ps.prune("B", T, 4.0)  # not in the mesh any more: nothing added
    assert ps.score("B", 4.0) == -200.0


def test_p3b_is_not_applied_before_activation() -> None:
    ps = scorer(mesh_failure())
    connect(ps, "C", graft_at=0.0)
    ps.prune("C", T, 1.0)  # exactly the activation time: not yet active
    assert ps.score("C", 1.0) == 0.0


def test_p3_stops_once_pruned_and_only_p3b_remains() -> None:
    # rust-libp2p's semantics; go keeps charging P3 until the next graft, so -800 there.
    ps = scorer(mesh_failure(p3_weight=-1.0))
    connect(ps, "B", graft_at=0.0)
    assert ps.score("B", 2.0) == -400.0  # P3
    ps.prune("B", T, 2.0)
    assert ps.score("B", 2.0) == -400.0  # P3b


# ----------------------------------------------------------------------------- P4


@pytest.mark.parametrize(
    "reason",
    [
        "missing-signature",
        "invalid-signature",
        "unexpected-signature",
        "unexpected-auth-info",
        "self-origin",
    ],
)
def test_p4_malformed_messages_penalise_the_sender_without_a_record(reason: str) -> None:
    ps = scorer(invalid_deliveries())
    connect(ps, "A")
    for i in range(10):
        ps.reject_message("A", msg(i), T, reason, 1.0)
    assert ps.score("A", 1.0) == -100.0  # 10 squared
    assert ps.tracked_message_count == 0
    ps.refresh(2.0)
    assert ps.score("A", 2.0) == -25.0  # counter 5, squared


@pytest.mark.parametrize(
    "reason", ["blacklisted-peer", "blacklisted-source", "validation-queue-full"]
)
def test_rejections_that_are_not_scored(reason: str) -> None:
    ps = scorer(invalid_deliveries())
    connect(ps, "A")
    ps.reject_message("A", msg(0), T, reason, 1.0)
    assert ps.score("A", 1.0) == 0.0
    assert ps.tracked_message_count == 0


@pytest.mark.parametrize("reason", [RejectReason.IGNORED, RejectReason.VALIDATION_THROTTLED])
def test_ignored_and_throttled_messages_penalise_nobody(reason: RejectReason) -> None:
    ps = scorer(invalid_deliveries())
    connect(ps, "A", "B", "C")
    ps.validate_message(msg(0), 1.0)
    ps.duplicate_message("B", msg(0), T, 1.0)  # during validation
    ps.reject_message("A", msg(0), T, reason, 1.0)
    ps.duplicate_message("C", msg(0), T, 1.1)  # after
    assert [ps.score(p, 2.0) for p in "ABC"] == [0.0, 0.0, 0.0]


def test_invalid_message_penalises_sender_forwarders_and_later_duplicates() -> None:
    ps = scorer(invalid_deliveries())
    connect(ps, "A", "B", "C")
    ps.validate_message(msg(0), 1.0)
    ps.duplicate_message("B", msg(0), T, 1.0)
    ps.reject_message("A", msg(0), T, "invalid", 1.0)
    assert ps.score("A", 1.0) == -1.0
    assert ps.score("B", 1.0) == -1.0
    ps.duplicate_message("B", msg(0), T, 1.2)  # forwarders are not remembered any more
    assert ps.score("B", 1.2) == -4.0
    ps.duplicate_message("C", msg(0), T, 1.5)
    assert ps.score("C", 1.5) == -1.0
    ps.duplicate_message("C", msg(0), T, 1.6)  # every invalid copy counts
    assert ps.score("C", 1.6) == -4.0


def test_only_the_first_verdict_counts() -> None:
    topic = invalid_deliveries()
    topic.first_message_deliveries_weight = 1.0
    topic.first_message_deliveries_decay = 0.5
    topic.first_message_deliveries_cap = 10.0
    ps = scorer(topic)
    connect(ps, "A", "B", "C")
    first_delivery(ps, "A", msg(0), 1.0)
    ps.reject_message("B", msg(0), T, "invalid", 1.0)  # a late contrary verdict
    assert ps.score("B", 1.0) == 0.0
    ps.validate_message(msg(1), 1.0)
    ps.reject_message("A", msg(1), T, "invalid", 1.0)
    ps.deliver_message("B", msg(1), T, 1.0)  # go also credits P2 here, and so do we
    assert ps.score("A", 1.0) == 0.0  # +1 (msg 0) - 1 (msg 1 invalid)
    assert ps.score("B", 1.0) == 1.0
    ps.duplicate_message("C", msg(1), T, 1.0)  # msg 1 is still invalid
    assert ps.score("C", 1.0) == -1.0


def test_unknown_reject_reason_is_refused() -> None:
    ps = scorer(invalid_deliveries())
    connect(ps, "A")
    with pytest.raises(LocalProtocolError):
        ps.reject_message("A", msg(0), T, "bogus", 1.0)


# ----------------------------------------------------------------------------- records


def test_delivery_records_expire_after_seen_msg_ttl() -> None:
    ps = scorer(invalid_deliveries(), seen_msg_ttl=120.0)
    connect(ps, "A", "B")
    ps.validate_message(msg(0), 0.0)
    ps.reject_message("A", msg(0), T, "invalid", 0.0)
    ps.duplicate_message("B", msg(0), T, 120.0)
    assert ps.score("B", 120.0) == -1.0
    ps.refresh(120.0)
    assert ps.tracked_message_count == 1  # kept up to and including its expiry time
    ps.refresh(120.5)
    assert ps.tracked_message_count == 0
    ps.duplicate_message("B", msg(0), T, 121.0)  # unknown again: just remembered
    assert ps.score("B", 121.0) == -0.0625  # only the two refreshes: counter 1 -> 0.25


def test_delivery_records_stay_bounded_without_refresh() -> None:
    ps = scorer(invalid_deliveries(), seen_msg_ttl=10.0)
    for i in range(1000):
        ps.validate_message(msg(i), i * 0.1)
    # Records from the last 10 s (plus the one at exactly 10 s ago) are kept.
    assert ps.tracked_message_count == 101


# ----------------------------------------------------------------------------- P5


def test_p5_application_score() -> None:
    app = {"A": 0.0}
    ps = scorer(app_specific_score=lambda p: app[p], app_specific_weight=0.5)
    connect(ps, "A", graft_at=0.0)
    for value in range(-100, 101, 25):
        app["A"] = float(value)
        assert ps.score("A", 1.0) == value * 0.5


# ----------------------------------------------------------------------------- P6


def colocation(**kwargs: Any) -> PeerScore[str]:
    ps = scorer(ip_colocation_factor_threshold=1, ip_colocation_factor_weight=-1.0, **kwargs)
    connect(ps, "A", "B", "C", "D")
    ps.set_ips("A", ["1.2.3.4"])
    ps.set_ips("B", ["2.3.4.5"])
    ps.set_ips("C", ["2.3.4.5", "3.4.5.6"])
    ps.set_ips("D", ["2.3.4.5"])
    return ps


def test_p6_penalises_peers_sharing_an_ip() -> None:
    ps = colocation()
    assert ps.score("A", 1.0) == 0.0
    for peer in "BCD":
        assert ps.score(peer, 1.0) == -4.0  # 3 peers on 2.3.4.5, threshold 1: (3 - 1)^2


def test_p6_sums_over_several_ips_per_peer() -> None:
    ps = colocation()
    connect(ps, "E")
    ps.set_ips("E", ["3.4.5.6"])
    assert ps.score("C", 1.0) == -5.0  # (3 - 1)^2 on 2.3.4.5 + (2 - 1)^2 on 3.4.5.6
    assert ps.score("E", 1.0) == -1.0


def test_p6_set_ips_replaces_the_previous_ones() -> None:
    ps = colocation()
    ps.set_ips("B", ["9.9.9.9"])
    assert ps.score("B", 1.0) == 0.0
    assert ps.score("C", 1.0) == -1.0  # 2 peers left on 2.3.4.5
    ps.set_ips("C", [])
    assert ps.score("D", 1.0) == 0.0


def test_p6_whitelist() -> None:
    ps = colocation(ip_colocation_factor_whitelist=[ip_network("2.3.0.0/16")])
    assert [ps.score(p, 1.0) for p in "ABCD"] == [0.0, 0.0, 0.0, 0.0]


def test_p6_ipv6_counts_the_address_and_its_64() -> None:
    ps = scorer(ip_colocation_factor_threshold=1, ip_colocation_factor_weight=-1.0)
    connect(ps, "A", "B", "C")
    ps.set_ips("A", ["2001:db8:1:2::a"])
    ps.set_ips("B", ["2001:db8:1:2::b"])
    ps.set_ips("C", ["2001:db8:1:3::a"])
    assert ps.score("A", 1.0) == -1.0  # alone on its address, 2 peers in 2001:db8:1:2::/64
    assert ps.score("B", 1.0) == -1.0
    assert ps.score("C", 1.0) == 0.0


def test_p6_whitelisting_a_v6_network_covers_its_64s() -> None:
    whitelist = [ip_network("2001:db8:1::/48")]
    ps = scorer(
        ip_colocation_factor_threshold=1,
        ip_colocation_factor_weight=-1.0,
        ip_colocation_factor_whitelist=whitelist,
    )
    connect(ps, "A", "B")
    ps.set_ips("A", ["2001:db8:1:2::a"])
    ps.set_ips("B", ["2001:db8:1:2::b"])
    assert ps.score("A", 1.0) == 0.0


def test_p6_skips_loopback_and_reads_ipv4_mapped_as_ipv4() -> None:
    ps = colocation()
    connect(ps, "E", "F")
    ps.set_ips("E", ["::ffff:1.2.3.4", "127.0.0.1", "::1"])
    ps.set_ips("F", ["127.0.0.1", "::1"])
    assert ps.score("A", 1.0) == -1.0  # A and E on 1.2.3.4
    assert ps.score("E", 1.0) == -1.0
    assert ps.score("F", 1.0) == 0.0


def test_p6_refuses_what_is_not_an_ip() -> None:
    ps = colocation()
    with pytest.raises(ConfigError):
        ps.set_ips("A", ["not-an-ip"])


# ----------------------------------------------------------------------------- P7


def test_p7_behaviour_penalty_is_squared_and_decays() -> None:
    ps = scorer(behaviour_penalty_weight=-1.0, behaviour_penalty_decay=0.5)
    ps.add_penalty("A", 1)  # not tracked yet
    connect(ps, "A")
    assert ps.score("A", 0.0) == 0.0
    ps.add_penalty("A", 1)
    assert ps.score("A", 0.0) == -1.0
    ps.add_penalty("A", 1)
    assert ps.score("A", 0.0) == -4.0
    ps.refresh(1.0)
    assert ps.score("A", 1.0) == -1.0  # counter 2 -> 1


def test_p7_counts_only_the_excess_over_the_threshold() -> None:
    ps = scorer(
        behaviour_penalty_weight=-2.0, behaviour_penalty_decay=0.5, behaviour_penalty_threshold=2.0
    )
    connect(ps, "A")
    ps.add_penalty("A", 1)
    assert ps.score("A", 0.0) == 0.0  # below the threshold: no penalty (not (1 - 2)^2)
    ps.add_penalty("A", 1)
    assert ps.score("A", 0.0) == 0.0
    ps.add_penalty("A", 2)
    assert ps.score("A", 0.0) == -8.0  # (4 - 2)^2 * -2


# ----------------------------------------------------------------------------- retention


def test_negative_score_is_retained_until_retain_score_has_passed() -> None:
    ps = scorer(app_specific_score=lambda p: -1000.0, retain_score=10.0)
    connect(ps, "A", graft_at=0.0)
    ps.remove_peer("A", 0.0)
    ps.refresh(5.0)
    assert ps.score("A", 5.0) == -1000.0
    ps.refresh(10.0)
    assert "A" in ps  # not strictly after the expiry yet
    ps.refresh(10.5)
    assert "A" not in ps
    assert ps.score("A", 10.5) == 0.0


def test_positive_score_is_forgotten_at_once() -> None:
    ps = scorer(first_deliveries(), retain_score=10.0)
    connect(ps, "A")
    first_delivery(ps, "A", msg(0), 0.0)
    ps.remove_peer("A", 1.0)
    assert "A" not in ps
    connect(ps, "A")
    assert ps.score("A", 1.0) == 0.0


def test_retained_counters_do_not_decay_and_come_back_on_reconnect() -> None:
    topic = invalid_deliveries()
    topic.first_message_deliveries_weight = 1.0
    topic.first_message_deliveries_decay = 0.5
    topic.first_message_deliveries_cap = 100.0
    ps = scorer(topic, retain_score=60.0)
    connect(ps, "A", graft_at=0.0)
    for i in range(3):
        first_delivery(ps, "A", msg(i), 1.0)
    for i in range(3, 7):
        ps.reject_message("A", msg(i), T, "invalid-signature", 1.0)
    assert ps.score("A", 1.0) == -13.0  # 3 - 4^2
    ps.remove_peer("A", 2.0)
    assert ps.score("A", 2.0) == -16.0  # first deliveries zeroed on retention
    for t in range(3, 10):
        ps.refresh(float(t))
    assert ps.score("A", 9.0) == -16.0  # no decay while disconnected
    ps.add_peer("A", 9.0)
    ps.refresh(10.0)
    assert ps.score("A", 10.0) == -4.0  # decaying again: counter 2


def test_retention_turns_an_active_mesh_deficit_into_p3b() -> None:
    ps = scorer(mesh_failure(), retain_score=60.0)
    connect(ps, "A", "B", graft_at=0.0)
    ps.remove_peer("A", 0.5)  # not active yet: no penalty
    ps.remove_peer("B", 2.0)
    assert ps.score("A", 3.0) == 0.0
    assert ps.score("B", 3.0) == -400.0


def test_retained_peer_ips_count_until_it_is_forgotten() -> None:
    ps = scorer(
        ip_colocation_factor_threshold=1, ip_colocation_factor_weight=-1.0, retain_score=10.0
    )
    connect(ps, "A", "B")
    ps.set_ips("A", ["1.2.3.4"])
    ps.set_ips("B", ["1.2.3.4"])
    ps.remove_peer("A", 0.0)
    assert ps.score("B", 1.0) == -1.0
    ps.refresh(11.0)
    assert ps.score("B", 11.0) == 0.0


# ----------------------------------------------------------------------------- topic params


def test_set_topic_params_recaps_counters() -> None:
    topic = first_deliveries(cap=100.0)
    topic.mesh_message_deliveries_cap = 100.0
    ps = scorer(topic)
    connect(ps, "A", "B", graft_at=0.0)
    for i in range(100):
        first_delivery(ps, "A", msg(i), 1.0)
        ps.duplicate_message("B", msg(i), T, 1.0)
    assert ps.score("A", 1.0) == 100.0
    lower = first_deliveries(cap=50.0)
    lower.first_message_deliveries_weight = 2.0
    lower.mesh_message_deliveries_weight = -1.0
    lower.mesh_message_deliveries_decay = 0.5
    lower.mesh_message_deliveries_cap = 30.0
    lower.mesh_message_deliveries_threshold = 40.0
    lower.mesh_message_deliveries_activation = 1.0
    ps.set_topic_params(T, lower)
    # A: P2 recapped 100 -> 50, weighted 2; P3 recapped 100 -> 30, deficit (40 - 30)^2.
    assert ps.score("A", 5.0) == 0.0  # 100 - 100
    assert ps.score("B", 5.0) == -100.0  # P3 only


def test_set_topic_params_validates() -> None:
    ps = scorer(first_deliveries())
    with pytest.raises(ConfigError, match="mytopic"):
        ps.set_topic_params(T, TopicScoreParams(topic_weight=-1.0))


# ----------------------------------------------------------------------------- decay helper


@pytest.mark.parametrize(
    ("decay", "interval", "to_zero", "factor"),
    [
        (2.0, 1.0, 0.25, 0.5),  # 0.5 ** 2 == 0.25
        (20.0, 10.0, 0.01, 0.1),  # 2 intervals: 0.1 ** 2 == 0.01
        (1.5, 1.0, 0.001, 0.01),  # 1.5 intervals (not rounded down): 0.01 ** 1.5 == 0.001
        (10.0, 1.0, 0.01, 0.6309573444801932),  # 0.01 ** (1 / 10)
    ],
)
def test_score_parameter_decay(
    decay: float, interval: float, to_zero: float, factor: float
) -> None:
    assert score_parameter_decay(decay, interval, to_zero) == pytest.approx(factor, rel=1e-12)


def test_score_parameter_decay_defaults_to_one_second_and_one_percent() -> None:
    assert score_parameter_decay(2.0) == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize(
    "args",
    [
        (0.0, 1.0, 0.01),
        (-1.0, 1.0, 0.01),
        (1.0, 0.0, 0.01),
        (1.0, 1.0, 1.0),
        (1.0, 1.0, 0.0),
        (math.inf, 1.0, 0.01),
    ],
)
def test_score_parameter_decay_refuses_nonsense(args: tuple[float, float, float]) -> None:
    with pytest.raises(ConfigError):
        score_parameter_decay(*args)


# ----------------------------------------------------------------------------- validation


BAD_TOPIC_PARAMS: list[dict[str, float]] = [
    {"topic_weight": -1.0},
    {"topic_weight": math.nan},
    {"time_in_mesh_weight": -1.0},
    {"time_in_mesh_weight": 1.0, "time_in_mesh_cap": 10.0, "time_in_mesh_quantum": 0.0},
    {"time_in_mesh_weight": 1.0, "time_in_mesh_cap": 0.0},
    {"time_in_mesh_weight": 1.0, "time_in_mesh_cap": math.inf},
    {"first_message_deliveries_weight": -1.0},
    {
        "first_message_deliveries_weight": 1.0,
        "first_message_deliveries_decay": 1.0,
        "first_message_deliveries_cap": 10.0,
    },
    {
        "first_message_deliveries_weight": 1.0,
        "first_message_deliveries_decay": 0.5,
        "first_message_deliveries_cap": 0.0,
    },
    {"mesh_message_deliveries_weight": 1.0},
    {"mesh_message_deliveries_window": -0.1},
    {"mesh_failure_penalty_weight": 1.0},
    {"mesh_failure_penalty_weight": -1.0, "mesh_failure_penalty_decay": 0.0},
    {"invalid_message_deliveries_weight": 1.0},
    {"invalid_message_deliveries_weight": -1.0, "invalid_message_deliveries_decay": 1.0},
]


@pytest.mark.parametrize("bad", BAD_TOPIC_PARAMS)
def test_topic_params_validation(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        TopicScoreParams(**bad).validate()
    with pytest.raises(ConfigError, match="for topic 'mytopic'"):
        PeerScoreParams[str](topics={T: TopicScoreParams(**bad)}).validate()


@pytest.mark.parametrize(
    "bad",
    [
        {"mesh_message_deliveries_decay": 0.0},
        {"mesh_message_deliveries_cap": 0.0},
        {"mesh_message_deliveries_threshold": 0.0},
        {"mesh_message_deliveries_activation": 0.5},
    ],
)
def test_mesh_message_delivery_params_validation(bad: dict[str, float]) -> None:
    good = mesh_deliveries()
    good.validate()
    for name, value in bad.items():
        setattr(good, name, value)
    with pytest.raises(ConfigError):
        good.validate()


def test_zero_weight_groups_are_not_checked() -> None:
    # go would refuse both (TimeInMeshQuantum 0, InvalidMessageDeliveriesDecay 0).
    TopicScoreParams(time_in_mesh_quantum=0.0, invalid_message_deliveries_decay=0.0).validate()


BAD_PEER_PARAMS: list[dict[str, Any]] = [
    {"topic_score_cap": -1.0},
    {"app_specific_score": None},
    {"ip_colocation_factor_weight": 1.0},
    {"ip_colocation_factor_weight": -1.0, "ip_colocation_factor_threshold": 0.5},
    {"ip_colocation_factor_whitelist": ["10.0.0.0/8"]},
    {"behaviour_penalty_weight": 1.0},
    {"behaviour_penalty_weight": -1.0, "behaviour_penalty_decay": 1.0},
    {"behaviour_penalty_threshold": -1.0},
    {"decay_interval": 0.5},
    {"decay_to_zero": 0.0},
    {"decay_to_zero": 1.0},
    {"retain_score": -1.0},
    {"seen_msg_ttl": 0.0},
]


@pytest.mark.parametrize("bad", BAD_PEER_PARAMS)
def test_peer_params_validation(bad: dict[str, Any]) -> None:
    params = PeerScoreParams[str](**bad)
    with pytest.raises(ConfigError):
        params.validate()
    with pytest.raises(ConfigError):
        PeerScore(params)


def test_good_peer_params_validate() -> None:
    PeerScoreParams[str](
        topics={T: mesh_failure(p3_weight=-1.0)},
        topic_score_cap=100.0,
        app_specific_weight=10.0,
        ip_colocation_factor_weight=-5.0,
        ip_colocation_factor_threshold=10,
        ip_colocation_factor_whitelist=[ip_network("10.0.0.0/8"), ip_network("fd00::/8")],
        behaviour_penalty_weight=-10.0,
        behaviour_penalty_threshold=6.0,
        behaviour_penalty_decay=score_parameter_decay(600.0),
        decay_interval=1.0,
        decay_to_zero=0.01,
        retain_score=3600.0,
    ).validate()


@pytest.mark.parametrize(
    "bad",
    [
        {"gossip_threshold": 1.0},
        {"publish_threshold": -5.0},  # above gossip (-10)
        {"publish_threshold": 1.0, "gossip_threshold": 2.0},
        {"graylist_threshold": -20.0},
        {"accept_px_threshold": -1.0},
        {"opportunistic_graft_threshold": -1.0},
        {"gossip_threshold": math.nan},
    ],
)
def test_thresholds_validation(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        PeerScoreThresholds(**bad).validate()


def test_thresholds_may_all_be_equal() -> None:
    PeerScoreThresholds(-10.0, -10.0, -10.0, 0.0, 0.0).validate()
