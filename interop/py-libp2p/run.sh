#!/usr/bin/env bash
# Run the py-libp2p interop peer (interop/CONTRACT.md) with the venv made by build.sh.
# All configuration comes from the environment; there are no arguments.
# PY_LIBP2P_PEER_DEBUG=1 adds py-libp2p's and aioquic's debug logs on stderr.
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/py-libp2p/venv/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "run.sh: $PY is missing; run interop/py-libp2p/build.sh first" >&2
  exit 1
fi
exec "$PY" "$SRC/peer.py"
