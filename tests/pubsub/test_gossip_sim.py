"""A small version of the gossipsub simulation benchmark (bench/pubsub_sim.py)."""

from __future__ import annotations

from p2pstack.testing.gossip_sim import run_sim


def test_100_nodes_deliver_everything_without_loss() -> None:
    result = run_sim(100, 10, settle=5.0)
    assert result.delivery_ratio == 1.0
    assert 0 < result.latency_p50_ms <= result.latency_p99_ms < 500
    assert result.duplicates_per_node_per_message < 12


def test_100_nodes_with_5_percent_loss_are_repaired_by_gossip() -> None:
    result = run_sim(100, 10, loss=0.05, settle=8.0, seed=3)
    assert result.delivery_ratio >= 0.999


def test_same_seed_same_run() -> None:
    a = run_sim(40, 5, loss=0.05, settle=3.0, seed=9)
    b = run_sim(40, 5, loss=0.05, settle=3.0, seed=9)
    assert (a.delivery_ratio, a.latency_p50_ms, a.latency_p99_ms) == (
        b.delivery_ratio,
        b.latency_p50_ms,
        b.latency_p99_ms,
    )
