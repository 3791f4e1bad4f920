"""Gossipsub v1.1 (libp2p/specs pubsub/gossipsub/): the sans-IO router and its parts.

The parts are small cores of their own: peer scoring (:mod:`.score`, :mod:`.score_params`),
with the router, message cache, backoff and codec beside them.
"""
