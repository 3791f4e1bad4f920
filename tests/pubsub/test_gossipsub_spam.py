"""Attacks from go-libp2p-pubsub's spam tests, ported to the sans-IO router: the attacker's
score falls below the thresholds, it is ignored, and honest delivery goes on."""

from __future__ import annotations

import os
import random

from p2pstack.identity import KeyPair, PeerID
from p2pstack.identity.keys import Ed25519PrivateKey
from p2pstack.pubsub.gossipsub.params import GossipSubParams
from p2pstack.pubsub.gossipsub.router import GossipSub
from p2pstack.pubsub.gossipsub.score import (
    PeerScoreParams,
    PeerScoreThresholds,
    TopicScoreParams,
)
from p2pstack.pubsub.message import SignaturePolicy, author_message
from p2pstack.pubsub.router import (
    MESHSUB_V11,
    MESHSUB_V12,
    Deliver,
    Validate,
    ValidationResult,
)
from p2pstack.pubsub.rpc import RPC, Control, Message

T = "topic"
# fixed keys: peer IDs (and so the routers' seeded choices) are the same every run
KEYS = [KeyPair.from_private(Ed25519PrivateKey.from_raw(bytes([i + 1]) * 32)) for i in range(8)]
ATTACKER, HONEST = KEYS[1].peer_id, KEYS[2].peer_id
THRESHOLDS = PeerScoreThresholds(
    gossip_threshold=-10,
    publish_threshold=-50,
    graylist_threshold=-80,
    accept_px_threshold=10,
    opportunistic_graft_threshold=20,
)


def scored_router(**params: object) -> GossipSub:
    score = PeerScoreParams[PeerID](
        topics={
            T: TopicScoreParams(
                invalid_message_deliveries_weight=-10.0,
                invalid_message_deliveries_decay=0.9,
            )
        },
        behaviour_penalty_weight=-1.0,
        behaviour_penalty_decay=0.9,
    )
    r = GossipSub(
        GossipSubParams(**params),  # type: ignore[arg-type]
        key_pair=KEYS[0],
        score_params=score,
        thresholds=THRESHOLDS,
        rng=random.Random(0),
    )
    r.join(T, 0)
    for p, protocol in ((ATTACKER, MESHSUB_V12), (HONEST, MESHSUB_V11)):
        r.add_peer(p, protocol, outbound=False, now=0)
        r.handle_rpc(p, RPC(subscriptions=[(T, True)]), 0)
    r.heartbeat(0.5)
    r.rpcs_to_send()
    r.events()
    return r


def message(author: int, data: bytes, seqno: int) -> Message:
    return author_message(KEYS[author], SignaturePolicy.STRICT_SIGN, T, data, seqno)


def settle(r: GossipSub, now: float, verdict: ValidationResult) -> list[Deliver]:
    events = r.events()
    for ev in events:
        if isinstance(ev, Validate):
            r.report_validation(ev.msg_id, verdict, now)
    return [ev for ev in events + r.events() if isinstance(ev, Deliver)]


def score(r: GossipSub, p: PeerID, now: float) -> float:
    assert r.score is not None
    return r.score.score(p, now)


def test_iwant_spam_gets_at_most_the_retransmission_cap() -> None:
    r = scored_router()
    m = message(3, b"x", 1)
    r.handle_rpc(HONEST, RPC(messages=[m]), 1)
    settle(r, 1, ValidationResult.ACCEPT)
    r.rpcs_to_send()
    msg_id = r.message_id(m)
    answered = 0
    for i in range(100):
        r.handle_rpc(ATTACKER, RPC(control=Control(iwant=[msg_id] * 5)), 1 + i * 0.01)
        answered += sum(len(rpc.messages) for p, rpc in r.rpcs_to_send() if p == ATTACKER)
    assert answered == r.params.gossip_retransmission


def test_ihave_spam_is_capped_then_broken_promises_silence_the_attacker() -> None:
    r = scored_router()
    now = 1.0
    iwants = 0
    for _ in range(8):
        for _ in range(50):  # many IHAVEs per heartbeat, each with fresh unknown ids
            ids = [os.urandom(8) for _ in range(100)]
            r.handle_rpc(ATTACKER, RPC(control=Control(ihave=[(T, ids)])), now)
        sent = [rpc for p, rpc in r.rpcs_to_send() if p == ATTACKER]
        asked = sum(len(rpc.control.iwant) for rpc in sent)
        # never more than max_ihave_messages IHAVEs answered and max_ihave_length ids asked
        assert asked <= min(r.params.max_ihave_messages * 100, r.params.max_ihave_length)
        iwants += asked
        now += r.params.iwant_followup_time + 0.5
        r.heartbeat(now)  # the promises are broken: behaviour penalties
    assert iwants > 0
    assert score(r, ATTACKER, now) < THRESHOLDS.gossip_threshold
    # below the gossip threshold its IHAVEs are not even looked at
    r.handle_rpc(ATTACKER, RPC(control=Control(ihave=[(T, [os.urandom(8)])])), now)
    assert not [rpc for p, rpc in r.rpcs_to_send() if p == ATTACKER and rpc.control.iwant]
    assert r.stats["ihave_low_score"] >= 1


def test_graft_flood_in_backoff_graylists_the_attacker() -> None:
    r = scored_router()
    now = 1.0
    r.handle_rpc(ATTACKER, RPC(control=Control(graft=[T])), now)
    r.handle_rpc(ATTACKER, RPC(control=Control(prune=[])), now)
    r.leave(T, now)  # leaving puts every mesh peer in backoff
    r.join(T, now)
    r.rpcs_to_send()
    for i in range(10):
        r.handle_rpc(ATTACKER, RPC(control=Control(graft=[T])), now + i * 0.1)
    assert ATTACKER not in r.mesh[T]
    assert score(r, ATTACKER, now + 1) < THRESHOLDS.graylist_threshold
    # graylisted: its RPCs are dropped whole, honest traffic flows
    m = message(3, b"hello", 1)
    r.handle_rpc(ATTACKER, RPC(messages=[m]), now + 2)
    assert settle(r, now + 2, ValidationResult.ACCEPT) == []
    r.handle_rpc(HONEST, RPC(messages=[m]), now + 2)
    assert [d.message for d in settle(r, now + 2, ValidationResult.ACCEPT)] == [m]


def test_invalid_message_spam_graylists_the_sender_and_honest_delivery_goes_on() -> None:
    r = scored_router()
    now = 1.0
    for i in range(10):
        r.handle_rpc(ATTACKER, RPC(messages=[message(1, b"bad", i + 1)]), now)
        settle(r, now, ValidationResult.REJECT)
    assert score(r, ATTACKER, now) < THRESHOLDS.graylist_threshold
    # three rejections sufficed: the other seven RPCs were dropped unread
    assert r.stats["rejected_invalid"] == 3 and r.stats["rpc_graylisted"] == 7
    r.heartbeat(now + 1)
    assert ATTACKER not in r.mesh[T]  # negative score: pruned
    good = message(2, b"good", 1)
    r.handle_rpc(HONEST, RPC(messages=[good]), now + 1)
    assert [d.message for d in settle(r, now + 1, ValidationResult.ACCEPT)] == [good]


def test_idontwant_spam_is_capped_and_forwarding_goes_on() -> None:
    r = scored_router(flood_publish=False)
    now = 1.0
    for _ in range(20):
        ids = [os.urandom(32) for _ in range(500)]
        r.handle_rpc(ATTACKER, RPC(control=Control(idontwant=ids)), now)
    stored = len(r._idontwant[ATTACKER])
    assert stored == r.params.max_idontwant_messages  # memory bounded per heartbeat
    assert r.stats["idontwant_over_limit"] > 0
    # after a few heartbeats the stored ids expire
    for i in range(r.params.idontwant_message_ttl_heartbeats + 1):
        r.heartbeat(now + 1 + i)
    assert len(r._idontwant[ATTACKER]) == 0
    m = message(3, b"y" * 10, 1)
    r.handle_rpc(HONEST, RPC(messages=[m]), now + 10)
    assert settle(r, now + 10, ValidationResult.ACCEPT)
    out = dict(r.rpcs_to_send())
    assert out[ATTACKER].messages == [m]  # honest forwarding to the mesh goes on
