#!/usr/bin/env bash
# The p2pstack interop peer (interop/CONTRACT.md); configuration comes from the environment.
# P2PSTACK_BACKEND=asyncio picks asyncio instead of trio.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "$ROOT/.venv/bin/python" -m p2pstack.interop
