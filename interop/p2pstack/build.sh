#!/usr/bin/env bash
# p2pstack's own interop peer needs no build beyond `make install`; this checks it is there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
  echo "build.sh: $ROOT/.venv is missing; run 'make install' first" >&2
  exit 1
fi
"$ROOT/.venv/bin/python" -c 'import p2pstack.interop' >&2
