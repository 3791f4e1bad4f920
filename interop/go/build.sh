#!/usr/bin/env bash
# Build the go-libp2p interop peer into ${P2PSTACK_INTEROP_CACHE:-~/.cache/p2pstack/interop}/go/peer.
#
# Idempotent: the build is skipped when the binary exists and a sha256 stamp over the
# committed sources (go.mod, go.sum, *.go) and the Go version still matches. Modules come
# through Go's ordinary module proxy into Go's default module cache; -mod=readonly means
# go.mod/go.sum are never rewritten (a missing go.sum entry is an error, not a fetch).
# Prints the binary's path on stdout; progress and errors go to stderr.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/go"
BIN="$DEST/peer"
STAMP="$DEST/.build-stamp"

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: the go command is not installed (need Go >= 1.26.6)" >&2
  exit 1
fi

want="$( { go version; cd "$SRC" && cat go.mod go.sum ./*.go; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" == "$have" && -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$DEST"
rm -f "$STAMP"
echo "build.sh: building go-libp2p peer into $BIN (a cold build takes a few minutes)" >&2
start=$SECONDS
(
  cd "$SRC"
  export GOFLAGS="-mod=readonly -buildvcs=false"
  nice -n 10 go build -trimpath -o "$BIN.tmp" .
) || { echo "build.sh: go build failed" >&2; rm -f "$BIN.tmp"; exit 1; }
mv -f "$BIN.tmp" "$BIN"
echo "$want" > "$STAMP"
echo "build.sh: built in $((SECONDS - start)) s" >&2
echo "$BIN"
