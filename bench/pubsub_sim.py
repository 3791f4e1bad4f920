"""Gossipsub at scale, in virtual time: 1,000 router cores, D=6, 1 KiB messages, random
link latency 5-50 ms, with 0% and 5% link loss (p2pstack.testing.gossip_sim).

Delivery, latency and duplicates come from virtual time and are repeatable for a seed;
the router CPU per message per node is real process time, shown beside the cost of one
Ed25519 signature check measured in the same run (every node checks each message once).
"""

from __future__ import annotations

import os
import time

from p2pstack.identity import KeyPair
from p2pstack.testing.gossip_sim import run_sim

NODES = int(os.environ.get("P2PSTACK_SIM_NODES", "1000"))
MESSAGES = int(os.environ.get("P2PSTACK_SIM_MESSAGES", "100"))


def _verify_us() -> float:
    key = KeyPair.generate()
    data = os.urandom(1100)
    sig = key.private.sign(data)
    n = 2000
    start = time.process_time()
    for _ in range(n):
        key.public.verify(data, sig)
    return (time.process_time() - start) / n * 1e6


def measure(backend: str = "trio") -> dict[str, float]:
    out: dict[str, float] = {"nodes": NODES, "messages": MESSAGES}
    for loss in (0.0, 0.05):
        r = run_sim(NODES, MESSAGES, loss=loss, seed=1)
        tag = f"loss{int(loss * 100)}"
        out[f"{tag}_delivery_percent"] = r.delivery_ratio * 100
        out[f"{tag}_undelivered"] = r.undelivered
        out[f"{tag}_latency_p50_ms"] = r.latency_p50_ms
        out[f"{tag}_latency_p99_ms"] = r.latency_p99_ms
        out[f"{tag}_duplicates_per_node_per_msg"] = r.duplicates_per_node_per_message
        out[f"{tag}_router_cpu_us_per_msg_per_node"] = r.router_cpu_us_per_message_per_node
        out[f"{tag}_heartbeat_cpu_us"] = r.extra["heartbeat_cpu_us"]
        out[f"{tag}_wall_s"] = r.wall_seconds
    out["baseline_ed25519_verify_us"] = _verify_us()
    out["ratio_cpu_per_msg_to_verify"] = (
        out["loss0_router_cpu_us_per_msg_per_node"] / out["baseline_ed25519_verify_us"]
    )
    return out
