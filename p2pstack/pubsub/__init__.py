"""Publish/subscribe (libp2p/specs pubsub/): the gossipsub router, its parts and the service.

Everything that decides what to send is a sans-IO core driven with ``now`` passed in; the
service is the shell that owns streams and timers.
"""

from p2pstack.pubsub.gossipsub.params import GossipSubParams
from p2pstack.pubsub.gossipsub.router import GossipSub
from p2pstack.pubsub.gossipsub.score import PeerScoreParams, PeerScoreThresholds, TopicScoreParams
from p2pstack.pubsub.message import (
    SignaturePolicy,
    content_message_id,
    default_message_id,
    js_message_id,
)
from p2pstack.pubsub.router import FloodSub, ValidationResult
from p2pstack.pubsub.service import PubSub, ReceivedMessage, Subscription

__all__ = [
    "FloodSub",
    "GossipSub",
    "GossipSubParams",
    "PeerScoreParams",
    "PeerScoreThresholds",
    "PubSub",
    "ReceivedMessage",
    "SignaturePolicy",
    "Subscription",
    "TopicScoreParams",
    "ValidationResult",
    "content_message_id",
    "default_message_id",
    "js_message_id",
]
