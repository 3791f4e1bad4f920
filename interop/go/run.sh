#!/usr/bin/env bash
# Run the go-libp2p interop peer (built by build.sh). All configuration comes from the
# environment: see interop/CONTRACT.md.
set -euo pipefail
BIN="${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/go/peer"
if [[ ! -x "$BIN" ]]; then
  echo "run.sh: $BIN is missing; run interop/go/build.sh first" >&2
  exit 1
fi
exec "$BIN" "$@"
