"""Our driver for the test-plans gossipsub-interop contract: several `p2pstack
gossipsub-interop` processes on loopback run one params.json script."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from p2pstack.interop.gossipsub_interop import gossipsub_params, message_id, node_key
from p2pstack.pubsub.rpc import Message

NODES = 4


def _free_base_port() -> int:
    """A base port B with B..B+NODES-1 free right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + NODES >= 65535:
            continue
        try:
            socks = []
            for i in range(NODES):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free port range")


def test_keys_ids_and_params_follow_the_contract() -> None:
    # seed = node id, little-endian, zero-padded to 32 bytes (go, rust and jvm do this)
    assert node_key(0).peer_id != node_key(1).peer_id
    assert node_key(7).peer_id == node_key(7).peer_id
    assert message_id(Message("t", (31).to_bytes(8, "big") + b"\0" * 100)) == b"31"
    p = gossipsub_params({"D": 8, "Dlo": 6, "HeartbeatInterval": 700_000_000, "Unknown": 1})
    assert (p.d, p.d_lo, p.heartbeat_interval) == (8, 6, 0.7)


def test_four_nodes_in_a_line_run_a_script(tmp_path: Path) -> None:
    script = [
        {"type": "initGossipSub", "gossipSubParams": {"HeartbeatInterval": 200_000_000}},
        *[
            {
                "type": "ifNodeIDEquals",
                "nodeID": i,
                "instruction": {"type": "connect", "connectTo": [i - 1]},
            }
            for i in range(1, NODES)
        ],
        {"type": "subscribeToTopic", "topicID": "foobar"},
        {"type": "waitUntil", "elapsedSeconds": 3},
        {
            "type": "ifNodeIDEquals",
            "nodeID": 0,
            "instruction": {
                "type": "publish",
                "messageID": 31,
                "messageSizeBytes": 1024,
                "topicID": "foobar",
            },
        },
        {
            "type": "ifNodeIDEquals",
            "nodeID": 3,
            "instruction": {
                "type": "publish",
                "messageID": 32,
                "messageSizeBytes": 100,
                "topicID": "foobar",
            },
        },
        {"type": "waitUntil", "elapsedSeconds": 5},
    ]
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"script": script}))
    base = _free_base_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                *("-m", "p2pstack.cli", "gossipsub-interop", "--params", str(params)),
                *("--node-id", str(i), "--loopback-base-port", str(base)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(NODES)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append([json.loads(line) for line in out.splitlines()])
    for i, lines in enumerate(outputs):
        assert lines[0]["msg"] == "PeerID" and lines[0]["node_id"] == i
        assert lines[0]["id"] == str(node_key(i).peer_id)
        assert all("time" in line for line in lines)
        received = {line["id"] for line in lines if line["msg"] == "Received Message"}
        expected = {"31", "32"} - ({"31"} if i == 0 else set()) - ({"32"} if i == 3 else set())
        assert received == expected, (i, lines)
