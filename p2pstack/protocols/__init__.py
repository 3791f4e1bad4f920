"""Protocols served over host streams: ping, identify, perf, echo."""
