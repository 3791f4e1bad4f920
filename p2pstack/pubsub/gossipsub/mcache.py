"""The message cache (gossipsub-v1.0.md "Message Cache"): the messages of the last
``length`` heartbeats, of which the last ``gossip`` windows are advertised in IHAVE.
It also counts how often each peer asked for each message (IWANT retransmission cap)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from p2pstack.pubsub.rpc import Message


class MessageCache:
    def __init__(self, length: int, gossip: int) -> None:
        self._gossip = gossip
        self._windows: deque[list[tuple[bytes, str]]] = deque([[]], maxlen=length)
        self._messages: dict[bytes, Message] = {}
        self._asked: dict[bytes, dict[Hashable, int]] = {}

    def __contains__(self, msg_id: bytes) -> bool:
        return msg_id in self._messages

    def __len__(self) -> int:
        return len(self._messages)

    def put(self, msg_id: bytes, msg: Message) -> None:
        if msg_id in self._messages:
            return
        self._messages[msg_id] = msg
        self._windows[0].append((msg_id, msg.topic))

    def get(self, msg_id: bytes) -> Message | None:
        return self._messages.get(msg_id)

    def get_for_peer(self, msg_id: bytes, peer: Hashable) -> tuple[Message | None, int]:
        """The message and how many times ``peer`` has now asked for it (this time included)."""
        msg = self._messages.get(msg_id)
        if msg is None:
            return None, 0
        counts = self._asked.setdefault(msg_id, {})
        counts[peer] = counts.get(peer, 0) + 1
        return msg, counts[peer]

    def gossip_ids(self, topic: str) -> list[bytes]:
        """IDs in the gossip windows for ``topic``, newest window first."""
        out: list[bytes] = []
        for window in list(self._windows)[: self._gossip]:
            out += [msg_id for msg_id, t in window if t == topic]
        return out

    def shift(self) -> None:
        """At each heartbeat: forget the oldest window, start a new one."""
        if len(self._windows) == self._windows.maxlen:
            for msg_id, _ in self._windows[-1]:
                self._messages.pop(msg_id, None)
                self._asked.pop(msg_id, None)
        self._windows.appendleft([])
