"""`make bench`: every benchmark, each beside its baseline measured in the same run.

python -m bench [NAME]... [--backend trio|asyncio] [--json]
NAME: bulk latency memory small tls quic pubsub_publish pubsub_sim

With no names it runs all but pubsub_sim (minutes of CPU: run it by name).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from bench import bulk, latency, memory, pubsub_publish, pubsub_sim, quic, small, tls

TARGETS: dict[str, tuple[Callable[..., dict[str, float]], str]] = {
    "bulk": (bulk.measure, "256 MiB one stream, two processes; >= 800 MiB/s and >= 0.5x raw"),
    "latency": (latency.measure, "handshake+1RTT <= 4 ms; ping RTT <= 0.2 ms"),
    "memory": (memory.measure, "idle listener RSS <= 40 MiB"),
    "small": (small.measure, ">= 15,000 round trips/s; >= 3,000 streams/s"),
    "tls": (tls.measure, "TLS 1.3 bulk within 20% of Noise (0.8x or more)"),
    "quic": (
        quic.measure,
        "QUIC bulk >= 2x js-libp2p's QUIC; h+1RTT <= 5 ms; upload RSS within 32 MiB of idle",
    ),
    "pubsub_publish": (
        pubsub_publish.measure,
        "messages/s one node publishes to 50 peers; memory per peer (beside plain streams)",
    ),
    "pubsub_sim": (
        pubsub_sim.measure,
        "1,000 nodes: 100% delivery at 0% loss, >= 99.9% at 5% loss",
    ),
}
DEFAULT = ["bulk", "latency", "memory", "small"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=", ".join(TARGETS))
    parser.add_argument("--backend", default="trio", choices=["trio", "asyncio"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for name in args.names or DEFAULT:
        func, goal = TARGETS[name]
        results[name] = func(backend=args.backend)
        if not args.json:
            print(f"{name} ({args.backend}) — goal: {goal}")
            for key, value in results[name].items():
                print(f"  {key:36} {value:12.3f}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
