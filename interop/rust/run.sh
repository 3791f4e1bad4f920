#!/usr/bin/env bash
# Runs the rust-libp2p interop peer built by build.sh; all configuration comes from the
# environment (interop/CONTRACT.md).
OUT="${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/rust"
BIN="$OUT/release/rust-interop-peer"
if [[ ! -x "$BIN" ]]; then
  echo "interop/rust/run.sh: $BIN is missing; run interop/rust/build.sh first" >&2
  exit 1
fi
exec "$BIN" "$@"
