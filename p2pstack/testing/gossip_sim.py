"""A deterministic in-process gossipsub network: many router cores, virtual time, simulated
link latency and loss, no sockets. Used by ``bench/pubsub_sim.py`` and by tests.

Every node is a :class:`~p2pstack.pubsub.gossipsub.router.GossipSub` core. RPCs travel as
values (not encoded) through one event queue ordered by virtual delivery time; a link drops
each RPC with probability ``loss`` (all its messages and control with it). Heartbeats run
every ``heartbeat_interval`` with a random phase per node. Validation accepts at once.
The same seed gives the same run.
"""

from __future__ import annotations

import heapq
import random
import statistics
import time
from dataclasses import dataclass, field

from p2pstack.identity import KeyPair, PeerID
from p2pstack.identity.keys import Ed25519PrivateKey
from p2pstack.pubsub.gossipsub.params import GossipSubParams
from p2pstack.pubsub.gossipsub.router import GossipSub
from p2pstack.pubsub.router import MESHSUB_V12, Deliver, Validate, ValidationResult
from p2pstack.pubsub.rpc import RPC

TOPIC = "sim"


@dataclass
class SimResult:
    nodes: int
    messages: int
    loss: float
    delivery_ratio: float  # deliveries / (messages x (nodes - 1))
    latency_p50_ms: float
    latency_p99_ms: float
    duplicates_per_node_per_message: float
    router_cpu_us_per_message_per_node: float  # handling RPCs, heartbeats excluded
    wall_seconds: float
    undelivered: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class GossipSim:
    def __init__(
        self,
        nodes: int,
        *,
        degree: int = 16,
        loss: float = 0.0,
        latency_ms: tuple[float, float] = (5.0, 50.0),
        params: GossipSubParams | None = None,
        seed: int = 1,
    ) -> None:
        self.rng = random.Random(seed)
        self.loss = loss
        self.params = params or GossipSubParams()
        keys = [
            KeyPair.from_private(Ed25519PrivateKey.from_raw(self.rng.randbytes(32)))
            for _ in range(nodes)
        ]
        self.ids: list[PeerID] = [k.peer_id for k in keys]
        self.routers: dict[PeerID, GossipSub] = {
            k.peer_id: GossipSub(
                self.params, key_pair=k, rng=random.Random(self.rng.random()), first_seqno=1
            )
            for k in keys
        }
        self.latency: dict[tuple[PeerID, PeerID], float] = {}
        self._queue: list[tuple[float, int, PeerID, PeerID, RPC]] = []
        self._seq = 0
        self.now = 0.0
        self.cpu = 0.0  # all router time
        self.cpu_heartbeat = 0.0  # of which heartbeats (and what they sent)
        self.heartbeats = 0
        self.published: dict[bytes, float] = {}  # msg id -> publish time
        self.received: dict[bytes, dict[PeerID, float]] = {}
        self.duplicates = 0
        lo, hi = latency_ms
        for i, p in enumerate(self.ids):
            others = self.ids[:i] + self.ids[i + 1 :]
            for q in self.rng.sample(others, min(degree, len(others))):
                if (p, q) in self.latency:
                    continue
                delay = self.rng.uniform(lo, hi) / 1000
                self.latency[(p, q)] = self.latency[(q, p)] = delay
                self._timed(self.routers[p].add_peer, q, MESHSUB_V12, True, 0.0)
                self._timed(self.routers[q].add_peer, p, MESHSUB_V12, False, 0.0)
        self._heartbeats = [
            (self.rng.uniform(0, self.params.heartbeat_interval), i, p)
            for i, p in enumerate(self.ids)
        ]
        heapq.heapify(self._heartbeats)

    def _timed(self, fn: object, *args: object) -> None:
        start = time.process_time()
        fn(*args)  # type: ignore[operator]
        self.cpu += time.process_time() - start

    def _drain(self, p: PeerID) -> None:
        """Take what router ``p`` produced: validate, record deliveries, send RPCs."""
        router = self.routers[p]
        start = time.process_time()
        events = router.events()
        for ev in events:
            if isinstance(ev, Validate):
                router.report_validation(ev.msg_id, ValidationResult.ACCEPT, self.now)
        events += router.events()
        out = router.rpcs_to_send()
        self.cpu += time.process_time() - start
        for ev in events:
            if isinstance(ev, Deliver) and ev.received_from is not None:
                self.received.setdefault(ev.msg_id, {})[p] = self.now
        for q, rpc in out:
            if self.loss and self.rng.random() < self.loss:
                continue
            self._seq += 1
            heapq.heappush(self._queue, (self.now + self.latency[(p, q)], self._seq, q, p, rpc))

    def run_until(self, until: float) -> None:
        """Deliver RPCs and run heartbeats in time order up to ``until``."""
        while True:
            next_rpc = self._queue[0][0] if self._queue else float("inf")
            next_hb, index, p_hb = self._heartbeats[0]
            if min(next_rpc, next_hb) > until:
                break
            if next_rpc <= next_hb:
                when, _, dst, src, rpc = heapq.heappop(self._queue)
                self.now = when
                router = self.routers[dst]
                dups = router.stats.get("duplicates", 0)
                self._timed(router.handle_rpc, src, rpc, when)
                self.duplicates += router.stats.get("duplicates", 0) - dups
                self._drain(dst)
            else:
                self.now = next_hb
                cpu = self.cpu
                self._timed(self.routers[p_hb].heartbeat, next_hb)
                self.heartbeats += 1
                heapq.heapreplace(
                    self._heartbeats, (next_hb + self.params.heartbeat_interval, index, p_hb)
                )
                self._drain(p_hb)
                self.cpu_heartbeat += self.cpu - cpu
        self.now = until

    def join_all(self) -> None:
        for p in self.ids:
            self._timed(self.routers[p].join, TOPIC, self.now)
            self._drain(p)

    def publish(self, p: PeerID, data: bytes) -> bytes:
        start = time.process_time()
        msg_id, _ = self.routers[p].publish(TOPIC, data, self.now)
        self.cpu += time.process_time() - start
        self.published[msg_id] = self.now
        self._drain(p)
        return msg_id


def run_sim(
    nodes: int,
    messages: int,
    *,
    loss: float = 0.0,
    size: int = 1024,
    interval: float = 0.1,
    warmup: float = 5.0,
    settle: float = 10.0,
    seed: int = 1,
    degree: int = 16,
) -> SimResult:
    wall = time.perf_counter()
    sim = GossipSim(nodes, loss=loss, seed=seed, degree=degree)
    sim.join_all()
    sim.run_until(warmup)
    cpu_before, hb_cpu_before, hb_before = sim.cpu, sim.cpu_heartbeat, sim.heartbeats
    dup_before = sim.duplicates
    rng = random.Random(seed + 1)
    for i in range(messages):
        publisher = rng.choice(sim.ids)
        sim.publish(publisher, i.to_bytes(4, "big") + rng.randbytes(size - 4))
        sim.run_until(sim.now + interval)
    sim.run_until(sim.now + settle)
    latencies = []
    delivered = 0
    for msg_id, at in sim.published.items():
        got = sim.received.get(msg_id, {})
        delivered += len(got)
        latencies += [(t - at) * 1000 for t in got.values()]
    expected = messages * (nodes - 1)
    latencies.sort()
    return SimResult(
        nodes=nodes,
        messages=messages,
        loss=loss,
        delivery_ratio=delivered / expected,
        latency_p50_ms=statistics.median(latencies) if latencies else float("nan"),
        latency_p99_ms=latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        duplicates_per_node_per_message=(sim.duplicates - dup_before) / (nodes * messages),
        router_cpu_us_per_message_per_node=(
            (sim.cpu - cpu_before) - (sim.cpu_heartbeat - hb_cpu_before)
        )
        / (nodes * messages)
        * 1e6,
        wall_seconds=time.perf_counter() - wall,
        undelivered=expected - delivered,
        extra={
            "heartbeat_cpu_us": (sim.cpu_heartbeat - hb_cpu_before)
            / max(sim.heartbeats - hb_before, 1)
            * 1e6
        },
    )
