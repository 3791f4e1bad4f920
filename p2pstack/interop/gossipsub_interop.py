"""p2pstack as a node of libp2p/test-plans gossipsub-interop (test-specs/implementation.md).

``p2pstack gossipsub-interop --params params.json`` (or ``python -m
p2pstack.interop.gossipsub_interop``):

- the node ID comes from the host name ``node<N>`` (Shadow's naming), or ``--node-id``;
- the Ed25519 key's 32-byte seed is the node ID, little-endian, zero-padded, so every node
  knows every other node's peer ID;
- it listens on ``/ip4/0.0.0.0/tcp/9000`` and reaches node M at ``node<M>`` port 9000; with
  ``--loopback-base-port B`` (our own driver, all nodes on one machine) it listens on
  127.0.0.1:B+N and reaches node M at 127.0.0.1:B+M instead;
- gossipsub runs with StrictNoSign, no author, and the message ID is the first 8 bytes of
  the data read as a big-endian u64, written in decimal;
- stdout carries JSON lines only: ``{"time", "msg": "PeerID", "id", "node_id"}`` at start and
  ``{"time", "msg": "Received Message", "id", "from", "topic"}`` for every copy of every
  message (duplicates included); diagnostics go to stderr.

The script's instructions run in order: ``initGossipSub`` (go-libp2p-pubsub's
GossipSubParams as JSON, durations in nanoseconds), ``connect``, ``subscribeToTopic``,
``publish``, ``waitUntil`` (seconds since start), ``setTopicValidationDelay`` and
``ifNodeIDEquals``. Any other instruction type is an error (exit 2). When the script ends,
the node exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import struct
import sys
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio

from p2pstack.host import Host
from p2pstack.identity import KeyPair
from p2pstack.identity.keys import Ed25519PrivateKey
from p2pstack.pubsub import GossipSub, GossipSubParams, PubSub, SignaturePolicy
from p2pstack.pubsub.router import Deliver, Duplicate
from p2pstack.pubsub.rpc import Message

PORT = 9000
CONNECT_PATIENCE = 20.0

# go-libp2p-pubsub GossipSubParams field -> (our field, conversion)
_PARAMS: dict[str, tuple[str, Any]] = {
    "D": ("d", int),
    "Dlo": ("d_lo", int),
    "Dhi": ("d_hi", int),
    "Dscore": ("d_score", int),
    "Dout": ("d_out", int),
    "HistoryLength": ("mcache_len", int),
    "HistoryGossip": ("mcache_gossip", int),
    "Dlazy": ("d_lazy", int),
    "GossipFactor": ("gossip_factor", float),
    "GossipRetransmission": ("gossip_retransmission", int),
    "HeartbeatInitialDelay": ("heartbeat_initial_delay", lambda v: v / 1e9),
    "HeartbeatInterval": ("heartbeat_interval", lambda v: v / 1e9),
    "FanoutTTL": ("fanout_ttl", lambda v: v / 1e9),
    "PrunePeers": ("prune_peers", int),
    "PruneBackoff": ("prune_backoff", lambda v: v / 1e9),
    "UnsubscribeBackoff": ("unsubscribe_backoff", lambda v: v / 1e9),
    "OpportunisticGraftTicks": ("opportunistic_graft_ticks", int),
    "OpportunisticGraftPeers": ("opportunistic_graft_peers", int),
    "GraftFloodThreshold": ("graft_flood_threshold", lambda v: v / 1e9),
    "MaxIHaveLength": ("max_ihave_length", int),
    "MaxIHaveMessages": ("max_ihave_messages", int),
    "MaxIDontWantMessages": ("max_idontwant_messages", int),
    "IWantFollowupTime": ("iwant_followup_time", lambda v: v / 1e9),
    "IDontWantMessageThreshold": ("idontwant_message_threshold", int),
    "IDontWantMessageTTL": ("idontwant_message_ttl_heartbeats", int),
}


class UnsupportedInstruction(Exception):
    pass


def node_key(node_id: int) -> KeyPair:
    seed = node_id.to_bytes(8, "little").ljust(32, b"\0")
    return KeyPair.from_private(Ed25519PrivateKey.from_raw(seed))


def message_id(msg: Message) -> bytes:
    head = msg.data[:8].ljust(8, b"\0")
    return str(struct.unpack(">Q", head)[0]).encode()


def gossipsub_params(raw: Mapping[str, Any]) -> GossipSubParams:
    params = GossipSubParams()
    for name, value in raw.items():
        if value is None or name not in _PARAMS:
            continue
        field, convert = _PARAMS[name]
        setattr(params, field, convert(value))
    return params


def _log(msg: str, **fields: Any) -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    print(json.dumps({"time": now, "msg": msg, **fields}), flush=True)


class Node:
    def __init__(self, node_id: int, loopback_base_port: int | None) -> None:
        self.node_id = node_id
        self.base_port = loopback_base_port
        self.key = node_key(node_id)
        self.start = time.monotonic()
        self.params = GossipSubParams()
        self.stack = AsyncExitStack()
        self.host: Host | None = None
        self.ps: PubSub | None = None
        self.validation_delay: dict[str, float] = {}

    def listen_addr(self) -> str:
        if self.base_port is not None:
            return f"/ip4/127.0.0.1/tcp/{self.base_port + self.node_id}"
        return f"/ip4/0.0.0.0/tcp/{PORT}"

    def addr_of(self, other: int) -> str:
        peer = node_key(other).peer_id
        if self.base_port is not None:
            return f"/ip4/127.0.0.1/tcp/{self.base_port + other}/p2p/{peer}"
        ip = socket.gethostbyname(f"node{other}")
        return f"/ip4/{ip}/tcp/{PORT}/p2p/{peer}"

    async def pubsub(self) -> PubSub:
        if self.ps is None:
            assert self.host is not None
            router = GossipSub(
                self.params,
                key_pair=self.key,
                signature_policy=SignaturePolicy.STRICT_NO_SIGN,
                message_id=message_id,
            )
            self.ps = await self.stack.enter_async_context(PubSub(self.host, router))
            await self.stack.enter_async_context(_Tracer(self.ps))
        return self.ps

    async def run(self, script: list[Mapping[str, Any]]) -> None:
        async with self.stack:
            self.host = await self.stack.enter_async_context(
                Host(self.key, listen_addrs=[self.listen_addr()])
            )
            _log("PeerID", id=str(self.key.peer_id), node_id=self.node_id)
            for instruction in script:
                await self.execute(instruction)

    async def _connect(self, other: int) -> None:
        """Dial node ``other``. Every node starts at the same moment, so the other one may
        not listen yet: refused dials are tried again, backing off, for CONNECT_PATIENCE s."""
        assert self.host is not None
        deadline = time.monotonic() + CONNECT_PATIENCE
        pause = 0.05
        while True:
            try:
                with anyio.fail_after(10):
                    await self.host.connect(self.addr_of(other))
                return
            except Exception as exc:
                if time.monotonic() + pause > deadline:
                    print(f"connect to node{other} failed: {exc!r}", file=sys.stderr)
                    return
            await anyio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def execute(self, ins: Mapping[str, Any]) -> None:
        kind = ins.get("type")
        if kind == "initGossipSub":
            if self.ps is not None:
                raise UnsupportedInstruction("initGossipSub after gossipsub started")
            self.params = gossipsub_params(ins.get("gossipSubParams") or {})
            self.params.validate()
            await self.pubsub()
        elif kind == "ifNodeIDEquals":
            if ins.get("nodeID") == self.node_id:
                await self.execute(ins["instruction"])
        elif kind == "connect":
            await self.pubsub()
            assert self.host is not None
            for other in ins.get("connectTo", []):
                await self._connect(int(other))
        elif kind == "subscribeToTopic":
            ps = await self.pubsub()
            topic = str(ins["topicID"])
            sub = await ps.subscribe(topic)
            self.stack.push_async_callback(sub.aclose)
            if ins.get("partial"):
                raise UnsupportedInstruction("partial messages (gossipsub v1.3 extension)")
        elif kind == "setTopicValidationDelay":
            ps = await self.pubsub()
            topic, delay = str(ins["topicID"]), float(ins.get("delaySeconds", 0))
            ps.remove_validators(topic)

            async def delayed(_: Message, delay: float = delay) -> bool:
                await anyio.sleep(delay)
                return True

            ps.add_validator(topic, delayed)
        elif kind == "publish":
            ps = await self.pubsub()
            size = int(ins.get("messageSizeBytes", 8))
            data = int(ins["messageID"]).to_bytes(8, "big").ljust(max(size, 8), b"\0")
            await ps.publish(str(ins["topicID"]), data)
        elif kind == "waitUntil":
            target = self.start + float(ins["elapsedSeconds"])
            await anyio.sleep(max(0.0, target - time.monotonic()))
        else:
            raise UnsupportedInstruction(f"instruction type {kind!r}")


class _Tracer:
    """Logs every received copy of every message from the router's events."""

    def __init__(self, ps: PubSub) -> None:
        self.ps = ps
        self.stack = AsyncExitStack()

    async def __aenter__(self) -> _Tracer:
        events = await self.stack.enter_async_context(self.ps.events())
        tg = await self.stack.enter_async_context(anyio.create_task_group())
        self.stack.callback(tg.cancel_scope.cancel)
        tg.start_soon(self._run, events)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    async def _run(self, events: Any) -> None:
        async for ev in events:
            if isinstance(ev, Deliver) and ev.received_from is not None:
                _log(
                    "Received Message",
                    id=ev.msg_id.decode(),
                    **{"from": str(ev.received_from)},
                    topic=ev.message.topic,
                )
            elif isinstance(ev, Duplicate):
                _log(
                    "Received Message",
                    id=ev.msg_id.decode(),
                    topic=ev.topic,
                    **{"from": str(ev.peer)},
                )


def _node_id_from_hostname() -> int:
    name = socket.gethostname()
    if not name.startswith("node") or not name[4:].isdigit():
        raise SystemExit(f"gossipsub-interop: host name {name!r} is not node<N>; use --node-id")
    return int(name[4:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="p2pstack gossipsub-interop")
    parser.add_argument("--params", required=True, help="params.json of the experiment")
    parser.add_argument("--node-id", type=int, help="default: from the host name node<N>")
    parser.add_argument("--loopback-base-port", type=int, help="all nodes on 127.0.0.1")
    parser.add_argument("--backend", default="trio", choices=["trio", "asyncio"])
    args = parser.parse_args(argv)
    with open(args.params) as f:
        script = json.load(f).get("script", [])
    node_id = args.node_id if args.node_id is not None else _node_id_from_hostname()
    node = Node(node_id, args.loopback_base_port)
    try:
        anyio.run(node.run, script, backend=args.backend)
    except UnsupportedInstruction as exc:
        print(f"gossipsub-interop: unsupported: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
