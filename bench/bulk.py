"""Bulk throughput: one stream, TCP + Noise + yamux, two processes on loopback, upload and
download, beside a raw anyio TCP socket pair moving the same bytes in the same run."""

from __future__ import annotations

import statistics

from bench.processes import PYTHON, p2pstack_listener, raw_listener, run_json


def measure(size: int = 256 << 20, rounds: int = 3, backend: str = "trio") -> dict[str, float]:
    p2p_up: list[float] = []
    p2p_down: list[float] = []
    raw_up: list[float] = []
    raw_down: list[float] = []
    with p2pstack_listener(backend) as (_, addr), raw_listener(backend) as (_, port):
        perf = [PYTHON, "-m", "p2pstack.cli", "--backend", backend, "perf", addr, "--json"]
        raw = [PYTHON, "-m", "bench.raw_tcp", "client", port]
        for _ in range(rounds):  # interleaved, so that machine noise hits both alike
            p2p_up.append(
                float(
                    run_json([*perf, "--upload-bytes", str(size), "--download-bytes", "0"])[
                        "mib_per_s"
                    ]
                )
            )
            raw_up.append(float(run_json([*raw, str(size), "0", backend])["mib_per_s"]))
            p2p_down.append(
                float(
                    run_json([*perf, "--upload-bytes", "0", "--download-bytes", str(size)])[
                        "mib_per_s"
                    ]
                )
            )
            raw_down.append(float(run_json([*raw, "0", str(size), backend])["mib_per_s"]))
    result = {
        "p2pstack_upload_mib_s": statistics.median(p2p_up),
        "p2pstack_download_mib_s": statistics.median(p2p_down),
        "raw_upload_mib_s": statistics.median(raw_up),
        "raw_download_mib_s": statistics.median(raw_down),
    }
    result["upload_ratio"] = result["p2pstack_upload_mib_s"] / result["raw_upload_mib_s"]
    result["download_ratio"] = result["p2pstack_download_mib_s"] / result["raw_download_mib_s"]
    return result
