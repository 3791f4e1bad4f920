"""TLS 1.3 against Noise as the secure channel: the same 256 MiB up and down over one yamux
stream between two processes, one listener accepting both, the client choosing with
``p2pstack --security tls|noise perf``, interleaved in one run. Issue goal: TLS within 20%
of Noise."""

from __future__ import annotations

import statistics

from bench.processes import PYTHON, p2pstack_listener, run_json


def measure(size: int = 256 << 20, rounds: int = 3, backend: str = "trio") -> dict[str, float]:
    runs: dict[str, list[float]] = {"noise_up": [], "noise_down": [], "tls_up": [], "tls_down": []}
    with p2pstack_listener(backend) as (_, addr):
        for _ in range(rounds):
            for security in ("noise", "tls"):
                cmd = [PYTHON, "-m", "p2pstack.cli", "--backend", backend]
                cmd += ["--security", security, "perf", addr, "--json"]
                up = run_json([*cmd, "--upload-bytes", str(size), "--download-bytes", "0"])
                down = run_json([*cmd, "--upload-bytes", "0", "--download-bytes", str(size)])
                runs[f"{security}_up"].append(float(up["mib_per_s"]))
                runs[f"{security}_down"].append(float(down["mib_per_s"]))
    result = {f"{k}_mib_s": statistics.median(v) for k, v in runs.items()}
    result["tls_to_noise_upload"] = result["tls_up_mib_s"] / result["noise_up_mib_s"]
    result["tls_to_noise_download"] = result["tls_down_mib_s"] / result["noise_down_mib_s"]
    return result
