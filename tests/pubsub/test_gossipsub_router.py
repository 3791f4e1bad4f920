"""The gossipsub core driven directly: no sockets, no sleeps, time passed in."""

from __future__ import annotations

import random

import pytest

from p2pstack.identity import KeyPair, PeerID
from p2pstack.identity.keys import Ed25519PrivateKey
from p2pstack.pubsub.gossipsub.params import GossipSubParams
from p2pstack.pubsub.gossipsub.router import GossipSub
from p2pstack.pubsub.gossipsub.score import PeerScoreParams, PeerScoreThresholds
from p2pstack.pubsub.message import SignaturePolicy, author_message
from p2pstack.pubsub.router import (
    FLOODSUB,
    MESHSUB_V10,
    MESHSUB_V11,
    MESHSUB_V12,
    ConnectTo,
    Deliver,
    Grafted,
    Rejected,
    Validate,
    ValidationResult,
)
from p2pstack.pubsub.rpc import RPC, Control, Message, PeerInfo, Prune, decode_rpc, encode_rpc

# fixed keys: peer IDs (and so the routers' seeded choices) are the same every run
KEYS = [KeyPair.from_private(Ed25519PrivateKey.from_raw(bytes([i + 1]) * 32)) for i in range(24)]
T = "topic"


def router(i: int = 0, **kw: object) -> GossipSub:
    return GossipSub(key_pair=KEYS[i], rng=random.Random(i), **kw)  # type: ignore[arg-type]


def peer(i: int) -> PeerID:
    return KEYS[i].peer_id


def sub(topic: str = T) -> RPC:
    return RPC(subscriptions=[(topic, True)])


def accept_all(r: GossipSub, now: float) -> list[Deliver]:
    events = r.events()
    for ev in events:
        if isinstance(ev, Validate):
            r.report_validation(ev.msg_id, ValidationResult.ACCEPT, now)
    return [ev for ev in events + r.events() if isinstance(ev, Deliver)]


def msg_from(i: int, data: bytes = b"x", seqno: int = 1, topic: str = T) -> Message:
    return author_message(KEYS[i], SignaturePolicy.STRICT_SIGN, topic, data, seqno)


def test_rpc_codec_round_trip() -> None:
    rpc = RPC(
        subscriptions=[("a", True), ("b", False)],
        messages=[msg_from(1)],
        control=Control(
            ihave=[("a", [b"1", b"2"])],
            iwant=[b"3"],
            graft=["a"],
            prune=[Prune("b", (), 60)],
            idontwant=[b"4"],
        ),
    )
    assert decode_rpc(encode_rpc(rpc)) == rpc


def test_join_grafts_up_to_d_and_heartbeat_fills_mesh() -> None:
    r = router(params=GossipSubParams(d=4, d_lo=3, d_hi=6, d_score=2, d_out=1))
    for i in range(1, 9):  # all outbound: the d_out quota never adds a fifth peer
        r.add_peer(peer(i), MESHSUB_V11, outbound=True, now=0)
        r.handle_rpc(peer(i), sub(), 0)
    r.join(T, 0)
    assert len(r.mesh[T]) == 4
    grafts = {p for p, rpc in r.rpcs_to_send() if T in rpc.control.graft}
    assert grafts == r.mesh[T]
    # peers leave the mesh by pruning us; the heartbeat brings it back to d
    for p in list(r.mesh[T])[:2]:
        r.handle_rpc(p, RPC(control=Control(prune=[Prune(T, (), 60)])), 1)
    assert len(r.mesh[T]) == 2
    r.rpcs_to_send()
    r.heartbeat(2)
    assert len(r.mesh[T]) == 4
    # the two that pruned us are in backoff and were not grafted again
    assert all(r._in_backoff(T, p, 2) for p in r._backoff[T])
    assert not set(r._backoff[T]) & r.mesh[T]


def test_mesh_over_d_hi_is_trimmed_keeping_outbound_peers() -> None:
    params = GossipSubParams(d=4, d_lo=3, d_hi=6, d_score=2, d_out=2)
    r = router(params=params)
    r.join(T, 0)
    for i in range(1, 11):
        r.add_peer(peer(i), MESHSUB_V11, outbound=i in (9, 10), now=0)
        r.handle_rpc(peer(i), sub(), 0)
        r.handle_rpc(peer(i), RPC(control=Control(graft=[T])), 0)
    # inbound GRAFTs are refused once the mesh holds d_hi; outbound ones are accepted
    assert len(r.mesh[T]) == params.d_hi + 2
    assert {peer(7), peer(8)}.isdisjoint(r.mesh[T])
    r.heartbeat(1)
    assert len(r.mesh[T]) == params.d
    assert {peer(9), peer(10)} <= r.mesh[T]  # d_out outbound peers kept


def test_publish_forward_and_local_delivery() -> None:
    a = router(0, params=GossipSubParams(flood_publish=False))
    a.join(T, 0)
    for i in (1, 2, 3):
        a.add_peer(peer(i), MESHSUB_V11, True, 0)
        a.handle_rpc(peer(i), sub(), 0)
    a.heartbeat(1)
    assert a.mesh[T] == {peer(1), peer(2), peer(3)}
    a.rpcs_to_send()
    m = msg_from(4)
    a.handle_rpc(peer(1), RPC(messages=[m]), 2)
    delivered = accept_all(a, 2)
    assert [d.message for d in delivered] == [m]
    sent = {p: rpc.messages for p, rpc in a.rpcs_to_send()}
    assert set(sent) == {peer(2), peer(3)}  # not back to the sender
    # a copy from another peer is a duplicate: no second delivery, no forwarding
    a.handle_rpc(peer(2), RPC(messages=[m]), 2)
    assert accept_all(a, 2) == []
    assert a.rpcs_to_send() == []


def test_invalid_signature_and_self_origin_are_rejected() -> None:
    a = router(0)
    a.join(T, 0)
    a.add_peer(peer(1), MESHSUB_V11, True, 0)
    m = msg_from(2)
    forged = Message(m.topic, b"other data", m.source, m.seqno, m.signature)
    unsigned = Message(T, b"x", m.source, m.seqno)
    mine = msg_from(0)
    a.handle_rpc(peer(1), RPC(messages=[forged, unsigned, mine]), 1)
    reasons = [ev.reason for ev in a.events() if isinstance(ev, Rejected)]
    assert reasons == ["invalid-signature", "missing-signature", "self-origin"]


def test_ihave_iwant_and_retransmission_cap() -> None:
    a = router(0)
    a.join(T, 0)
    a.add_peer(peer(1), MESHSUB_V11, True, 0)
    a.handle_rpc(peer(1), sub(), 0)
    m = msg_from(5)
    a.handle_rpc(peer(1), RPC(messages=[m]), 1)
    accept_all(a, 1)
    msg_id = a.message_id(m)
    # another peer advertises something we have and something we lack
    b = router(2)
    b.join(T, 0)
    b.add_peer(peer(0), MESHSUB_V11, True, 0)
    b.handle_rpc(peer(0), sub(), 0)
    b.handle_rpc(peer(0), RPC(control=Control(ihave=[(T, [msg_id])])), 1)
    ((to, rpc),) = [x for x in b.rpcs_to_send() if x[1].control.iwant]
    assert to == peer(0) and rpc.control.iwant == [msg_id]
    # a answers IWANT up to gossip_retransmission times
    a.add_peer(peer(2), MESHSUB_V11, True, 0)
    answers = 0
    for _ in range(5):
        a.handle_rpc(peer(2), RPC(control=Control(iwant=[msg_id])), 2)
        answers += sum(len(r.messages) for p, r in a.rpcs_to_send() if p == peer(2))
    assert answers == a.params.gossip_retransmission


def test_broken_iwant_promise_is_penalised() -> None:
    score = PeerScoreParams[PeerID](behaviour_penalty_weight=-1.0, behaviour_penalty_decay=0.5)
    b = router(2, score_params=score, thresholds=PeerScoreThresholds())
    b.join(T, 0)
    b.add_peer(peer(0), MESHSUB_V11, True, 0)
    b.handle_rpc(peer(0), sub(), 0)
    b.handle_rpc(peer(0), RPC(control=Control(ihave=[(T, [b"never-sent"])])), 1)
    b.heartbeat(2)
    assert b.score is not None and b.score.score(peer(0), 2) == 0.0
    b.heartbeat(1 + b.params.iwant_followup_time + 0.5)
    assert b.score.score(peer(0), 5) == -1.0


def test_graft_during_backoff_is_penalised_and_pruned() -> None:
    score = PeerScoreParams[PeerID](behaviour_penalty_weight=-1.0, behaviour_penalty_decay=0.5)
    a = router(0, score_params=score, thresholds=PeerScoreThresholds())
    a.join(T, 0)
    a.add_peer(peer(1), MESHSUB_V11, False, 0)
    a.handle_rpc(peer(1), sub(), 0)
    a.handle_rpc(peer(1), RPC(control=Control(graft=[T])), 0)
    a.handle_rpc(peer(1), RPC(control=Control(prune=[Prune(T, (), 60)])), 1)
    a.rpcs_to_send()
    a.handle_rpc(peer(1), RPC(control=Control(graft=[T])), 2)  # within the flood threshold
    assert peer(1) not in a.mesh[T]
    assert a.score is not None and a.score.score(peer(1), 2) == -4.0  # 2 penalties, squared
    ((_, rpc),) = a.rpcs_to_send()
    assert [p.topic for p in rpc.control.prune] == [T]
    assert rpc.control.prune[0].peers == ()  # no PX for a misbehaving peer


def test_graft_for_unknown_topic_is_ignored() -> None:
    a = router(0)
    a.add_peer(peer(1), MESHSUB_V11, False, 0)
    a.handle_rpc(peer(1), RPC(control=Control(graft=["nope"])), 0)
    assert a.rpcs_to_send() == []
    assert a.stats["graft_unknown_topic"] == 1


def test_idontwant_sent_for_large_messages_and_honoured() -> None:
    a = router(0, params=GossipSubParams(flood_publish=False))
    a.join(T, 0)
    for i in (1, 2, 3):
        a.add_peer(peer(i), MESHSUB_V12, True, 0)
        a.handle_rpc(peer(i), sub(), 0)
    a.heartbeat(1)
    a.rpcs_to_send()
    big = msg_from(5, b"x" * 2000)
    msg_id = a.message_id(big)
    a.handle_rpc(peer(3), RPC(control=Control(idontwant=[msg_id])), 2)
    a.handle_rpc(peer(1), RPC(messages=[big]), 2)
    out = dict(a.rpcs_to_send())  # IDONTWANT goes out before validation ends
    assert out[peer(2)].control.idontwant == [msg_id]
    assert peer(1) not in out
    accept_all(a, 2)
    forwarded = {p for p, rpc in a.rpcs_to_send() if rpc.messages}
    assert forwarded == {peer(2)}  # peer 3 said it did not want it


def test_floodsub_and_v10_peers() -> None:
    a = router(0, params=GossipSubParams(flood_publish=False))
    a.join(T, 0)
    a.add_peer(peer(1), FLOODSUB, True, 0)
    a.add_peer(peer(2), MESHSUB_V10, True, 0)
    for i in (1, 2):
        a.handle_rpc(peer(i), sub(), 0)
    a.heartbeat(1)
    assert a.mesh[T] == {peer(2)}  # floodsub peers are never in the mesh
    out = dict(a.rpcs_to_send())
    assert not out.get(peer(1), RPC()).control  # no control for floodsub
    a.publish(T, b"hi", 2)
    out = dict(a.rpcs_to_send())
    assert len(out[peer(1)].messages) == 1 and len(out[peer(2)].messages) == 1
    a.leave(T, 3)
    (prune,) = dict(a.rpcs_to_send())[peer(2)].control.prune
    assert prune.backoff is None and prune.peers == ()  # v1.0: no backoff, no PX


def test_prune_with_px_from_well_scored_peer_asks_to_connect() -> None:
    a = router(0, score_params=PeerScoreParams[PeerID](app_specific_score=lambda p: 100.0))
    a.join(T, 0)
    a.add_peer(peer(1), MESHSUB_V11, True, 0)
    a.handle_rpc(peer(1), sub(), 0)
    a.handle_rpc(peer(1), RPC(control=Control(graft=[T])), 0)
    a.events()
    infos = tuple(PeerInfo(peer(i).to_bytes()) for i in (7, 8))
    a.handle_rpc(peer(1), RPC(control=Control(prune=[Prune(T, infos, 30)])), 1)
    asked = {ev.info.peer_id for ev in a.events() if isinstance(ev, ConnectTo)}
    assert asked == {peer(7).to_bytes(), peer(8).to_bytes()}
    assert a._backoff[T][peer(1)] == 31


def test_events_report_grafts() -> None:
    a = router(0)
    a.add_peer(peer(1), MESHSUB_V11, True, 0)
    a.handle_rpc(peer(1), sub(), 0)
    a.join(T, 0)
    assert Grafted(peer(1), T) in a.events()


@pytest.mark.parametrize("n", [30])
def test_small_network_delivers_everything(n: int) -> None:
    """A few dozen routers wired at random, messages handed over in rounds."""
    rng = random.Random(7)
    keys = [
        KeyPair.from_private(Ed25519PrivateKey.from_raw(bytes([100 + i]) * 32)) for i in range(n)
    ]
    routers = {k.peer_id: GossipSub(key_pair=k, rng=random.Random(i)) for i, k in enumerate(keys)}
    ids = list(routers)
    links = set()
    for i, p in enumerate(ids):
        for q in rng.sample(ids[:i] + ids[i + 1 :], 4):
            links.add((min(p, q), max(p, q)))
    for p, q in links:
        routers[p].add_peer(q, MESHSUB_V12, True, 0)
        routers[q].add_peer(p, MESHSUB_V12, False, 0)
    for r in routers.values():
        r.join(T, 0)
    now = 0.0

    def run_rounds() -> dict[PeerID, int]:
        got = {p: 0 for p in ids}
        for _ in range(30):
            moved = False
            for p, r in routers.items():
                got[p] += len(accept_all(r, now))
                for q, rpc in r.rpcs_to_send():
                    routers[q].handle_rpc(p, decode_rpc(encode_rpc(rpc)), now)
                    moved = True
            if not moved:
                break
        return got

    run_rounds()
    for _ in range(3):
        now += 1
        for r in routers.values():
            r.heartbeat(now)
        run_rounds()
    assert all(len(r.mesh[T]) >= 3 for r in routers.values())
    for i in range(5):
        routers[ids[i]].publish(T, f"m{i}".encode(), now)
    got = run_rounds()
    assert all(count == 5 for count in got.values()), got


def test_js_default_message_id_is_key_protobuf_plus_seqno() -> None:
    from p2pstack.identity import KeyType
    from p2pstack.pubsub import js_message_id

    m = msg_from(1, seqno=7)
    # Ed25519: js hashes nothing, it takes the public key protobuf (08 01 12 20 ...)
    assert js_message_id(m) == KEYS[1].public.encode() + (7).to_bytes(8, "big")
    assert js_message_id(m) != a_default_id(m)
    rsa = KeyPair.generate(KeyType.RSA)
    m = author_message(rsa, SignaturePolicy.STRICT_SIGN, T, b"x", 9)
    assert m.key is not None
    assert js_message_id(m) == rsa.public.encode() + (9).to_bytes(8, "big")


def a_default_id(m: Message) -> bytes:
    from p2pstack.pubsub import default_message_id

    return default_message_id(m)


def test_px_is_offered_only_when_enabled() -> None:
    for do_px, expect_peers in ((False, False), (True, True)):
        params = GossipSubParams(d=2, d_lo=2, d_hi=3, d_score=1, d_out=0, do_px=do_px)
        r = router(params=params)
        r.join(T, 0)
        for i in range(1, 6):
            r.add_peer(peer(i), MESHSUB_V11, outbound=False, now=0)
            r.handle_rpc(peer(i), sub(), 0)
            r.handle_rpc(peer(i), RPC(control=Control(graft=[T])), 0)
        prunes = [p for _, rpc in r.rpcs_to_send() for p in rpc.control.prune]
        assert prunes, "GRAFTs beyond d_hi are refused with a PRUNE"
        assert all(p.backoff == 60 for p in prunes)
        assert any(p.peers for p in prunes) is expect_peers


def test_messages_beyond_the_per_rpc_limit_are_dropped_and_counted() -> None:
    a = router(0, params=GossipSubParams(max_messages_per_rpc=3))
    a.join(T, 0)
    a.add_peer(peer(1), MESHSUB_V11, True, 0)
    a.handle_rpc(peer(1), RPC(messages=[msg_from(2, seqno=i) for i in range(1, 6)]), 1)
    assert len(accept_all(a, 1)) == 3
    assert a.stats["messages_over_rpc_limit"] == 2


def test_fanout_for_unjoined_topics_expires_after_its_ttl() -> None:
    params = GossipSubParams(flood_publish=False, fanout_ttl=60)
    a = router(0, params=params)
    for i in (1, 2, 3):
        a.add_peer(peer(i), MESHSUB_V11, True, 0)
        a.handle_rpc(peer(i), sub("other"), 0)
    _, sent = a.publish("other", b"x", 1)
    assert sent == 3 and a.fanout["other"] == {peer(1), peer(2), peer(3)}
    a.heartbeat(30)
    assert "other" in a.fanout  # still fresh
    a.publish("other", b"y", 40)  # publishing refreshes it
    a.heartbeat(90)
    assert "other" in a.fanout
    a.heartbeat(101)
    assert "other" not in a.fanout  # 61 s since the last publish


def test_opportunistic_graft_adds_better_peers_when_the_mesh_median_is_low() -> None:
    good = {peer(5), peer(6)}
    score = PeerScoreParams[PeerID](app_specific_score=lambda p: 100.0 if p in good else 1.0)
    params = GossipSubParams(d=3, d_lo=2, d_hi=4, d_score=1, d_out=0, opportunistic_graft_ticks=2)
    a = router(0, params=params, score_params=score, thresholds=PeerScoreThresholds())
    a.join(T, 0)
    for i in (1, 2, 3):
        a.add_peer(peer(i), MESHSUB_V11, False, 0)
        a.handle_rpc(peer(i), sub(), 0)
    a.heartbeat(1)  # tick 1: the mesh fills with the three ordinary peers
    assert a.mesh[T] == {peer(1), peer(2), peer(3)}
    for p in good:
        a.add_peer(p, MESHSUB_V11, False, 1)
        a.handle_rpc(p, sub(), 1)
    a.rpcs_to_send()
    a.heartbeat(2)  # tick 2: median 1.0 < 20: graft up to 2 peers scoring above it
    assert good <= a.mesh[T]
    grafted = {p for p, rpc in a.rpcs_to_send() if T in rpc.control.graft}
    assert grafted == good


def test_strict_no_sign_policy() -> None:
    from p2pstack.pubsub.message import check_message, content_message_id

    a = router(0, signature_policy=SignaturePolicy.STRICT_NO_SIGN, message_id=content_message_id)
    a.join(T, 0)
    a.add_peer(peer(1), MESHSUB_V11, True, 0)
    signed = msg_from(2)
    anonymous = Message(T, b"anon")
    a.handle_rpc(peer(1), RPC(messages=[signed, anonymous]), 1)
    events = a.events()
    assert [ev.reason for ev in events if isinstance(ev, Rejected)] == ["unexpected-signature"]
    assert [ev.message for ev in events if isinstance(ev, Validate)] == [anonymous]
    assert check_message(Message(T, b"x", source=b"\0\x01x"), SignaturePolicy.STRICT_NO_SIGN)
    msg_id, _ = a.publish(T, b"mine", 2)
    assert msg_id == content_message_id(Message(T, b"mine"))


def test_oversize_messages_are_rejected() -> None:
    a = router(0, params=GossipSubParams(max_message_size=100))
    a.join(T, 0)
    a.add_peer(peer(1), MESHSUB_V11, True, 0)
    a.handle_rpc(peer(1), RPC(messages=[msg_from(2, b"x" * 200)]), 1)
    assert [ev.reason for ev in a.events() if isinstance(ev, Rejected)] == ["invalid"]
