"""Byte views of what callers hand to ``send``: a bytes-like object may be a view of wider
items (``memoryview(...).cast("I")``) or a strided one, whose ``len`` counts items, not
bytes. Sans-IO."""

from __future__ import annotations

from typing import Any


def byte_view(data: Any) -> memoryview:
    """A contiguous, one-byte-per-item view of ``data``'s bytes: a view of ``data`` itself
    when it already is one, else of a copy of its bytes (a ``bytes`` object)."""
    view = memoryview(data)
    if view.itemsize != 1 or not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view
