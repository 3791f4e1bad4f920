"""The Host and its protocol router."""

from p2pstack.host.host import AGENT_VERSION, Host, split_peer_addr
from p2pstack.host.router import ProtocolRouter, StreamHandler

__all__ = ["AGENT_VERSION", "Host", "ProtocolRouter", "StreamHandler", "split_peer_addr"]
