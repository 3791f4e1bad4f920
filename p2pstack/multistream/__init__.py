"""multistream-select 1.0: a sans-IO machine (``machine``) and its anyio shell (``negotiate``)."""

from p2pstack.multistream.machine import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    DialerNegotiation,
    ListenerNegotiation,
    encode_message,
)
from p2pstack.multistream.negotiate import (
    LazyNegotiatedStream,
    select_inbound,
    select_outbound,
    unwrap,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_ID",
    "DialerNegotiation",
    "LazyNegotiatedStream",
    "ListenerNegotiation",
    "encode_message",
    "select_inbound",
    "select_outbound",
    "unwrap",
]
