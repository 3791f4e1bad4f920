"""A set whose members expire ``ttl`` seconds after they were first added (the seen cache)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class TimeCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, key: Hashable, now: float) -> bool:
        """Add ``key``; ``False`` if it was already there (its expiry does not move)."""
        if key in self._expiry:
            return False
        self._expiry[key] = now + self.ttl
        return True

    def expire(self, now: float) -> None:
        """Drop members whose time is up (insertion order is expiry order)."""
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[key]
