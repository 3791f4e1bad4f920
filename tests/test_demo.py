"""``make run``'s demo network (four nodes, one in its own process) passes its own checks."""

from __future__ import annotations

import subprocess
import sys


def test_demo_network_runs_and_checks_pass() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "p2pstack.demo"], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "each node received the other 3: True" in proc.stdout
    assert "demo: all checks passed" in proc.stdout
