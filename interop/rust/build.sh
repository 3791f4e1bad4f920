#!/usr/bin/env bash
# Builds the rust-libp2p interop peer (interop/CONTRACT.md) into
# ${P2PSTACK_INTEROP_CACHE:-~/.cache/p2pstack/interop}/rust. Idempotent: a warm build
# only lets cargo check that nothing changed. Needs cargo (rustup's stable toolchain).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/rust"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "interop/rust/build.sh: cargo is not installed (install a Rust toolchain >= 1.88)" >&2
  exit 1
fi

mkdir -p "$OUT"
if [[ ! -x "$OUT/release/rust-interop-peer" ]]; then
  echo "interop/rust/build.sh: cold build into $OUT (takes several minutes on 2 cores)" >&2
fi
export CARGO_TARGET_DIR="$OUT"
cd "$HERE"
# The build is CPU-heavy (a cold one takes several minutes on 2 cores); stay polite.
if ! nice -n 10 cargo build --release --locked --quiet >&2; then
  echo "interop/rust/build.sh: cargo build failed" >&2
  exit 1
fi
BIN="$OUT/release/rust-interop-peer"
if [[ ! -x "$BIN" ]]; then
  echo "interop/rust/build.sh: $BIN is missing after the build" >&2
  exit 1
fi
