"""Protocol id -> stream handler, with optional per-peer inbound stream limits."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, KeysView
from dataclasses import dataclass
from typing import Any

import anyio.abc

from p2pstack.errors import ConfigError

StreamHandler = Callable[[anyio.abc.ByteStream], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Route:
    handler: StreamHandler
    #: inbound streams of this protocol one peer may have open at once (None: no limit)
    max_inbound_per_peer: int | None = None


class ProtocolRouter:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def add(
        self, protocol: str, handler: StreamHandler, *, max_inbound_per_peer: int | None = None
    ) -> None:
        if not protocol.startswith("/"):
            raise ConfigError(f"protocol ids start with '/': {protocol!r}")
        self._routes[protocol] = Route(handler, max_inbound_per_peer)

    def remove(self, protocol: str) -> None:
        self._routes.pop(protocol, None)

    def get(self, protocol: str) -> Route | None:
        return self._routes.get(protocol)

    @property
    def protocols(self) -> KeysView[str]:
        """A live view, suitable for multistream's ``ls`` and for identify."""
        return self._routes.keys()
