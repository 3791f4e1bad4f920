#!/usr/bin/env bash
# Build the py-libp2p interop peer: a venv at
# ${P2PSTACK_INTEROP_CACHE:-~/.cache/p2pstack/interop}/py-libp2p/venv with the exact pins
# of requirements.txt (py-libp2p 0.8.1 + redis). peer.py itself runs from this directory
# (run.sh), so editing it needs no rebuild.
#
# Idempotent: the install is skipped when the venv's python exists and a sha256 stamp over
# requirements.txt and the Python version still matches (a warm build only compares the
# stamp). A cold build takes about a minute (fastecdsa compiles from source). The
# interpreter is $P2PSTACK_PY_LIBP2P_PYTHON, else python3.11, else python3 (>= 3.10).
# Prints the venv's python on stdout; progress and errors go to stderr.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/py-libp2p"
VENV="$DEST/venv"
STAMP="$DEST/.build-stamp"

PY="${P2PSTACK_PY_LIBP2P_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
if ! pyver="$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"; then
  echo "build.sh: no Python interpreter '$PY' (set P2PSTACK_PY_LIBP2P_PYTHON)" >&2
  exit 1
fi
if [[ "$(printf '%s\n3.10.0\n' "$pyver" | sort -V | head -1)" != "3.10.0" ]]; then
  echo "build.sh: $PY is Python $pyver; py-libp2p 0.8.1 needs >= 3.10" >&2
  exit 1
fi

want="$( { echo "python $pyver"; cat "$SRC/requirements.txt"; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" == "$have" && -x "$VENV/bin/python" ]]; then
  echo "$VENV/bin/python"
  exit 0
fi

# fastecdsa (a py-libp2p dependency) has no wheel here and compiles against GMP.
if ! printf '#include <gmp.h>\n' | cc -E -x c - >/dev/null 2>&1; then
  echo "build.sh: a C compiler (cc) and the GMP headers are needed to build fastecdsa" \
    "(Debian: apt-get install gcc libgmp-dev)" >&2
  exit 1
fi

echo "build.sh: creating $VENV with Python $pyver and installing requirements.txt" >&2
start=$SECONDS
mkdir -p "$DEST"
rm -f "$STAMP"
rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2
if ! nice -n 10 "$VENV/bin/python" -m pip install --no-input --disable-pip-version-check \
    -r "$SRC/requirements.txt" >&2; then
  echo "build.sh: pip install -r requirements.txt failed" >&2
  exit 1
fi
"$VENV/bin/python" -m pip check >&2 || { echo "build.sh: pip check failed" >&2; exit 1; }
"$VENV/bin/python" - "$SRC/peer.py" >&2 <<'PYEOF' || { echo "build.sh: the venv cannot run peer.py" >&2; exit 1; }
import importlib.metadata as md, sys
import libp2p, redis, trio  # noqa: F401
from libp2p.security.noise.transport import Transport  # noqa: F401
from libp2p.security.tls.transport import TLSTransport  # noqa: F401
from libp2p.transport.quic.transport import QUICTransport  # noqa: F401
compile(open(sys.argv[1]).read(), sys.argv[1], "exec")
print("build.sh: libp2p", md.version("libp2p"), "redis", md.version("redis"),
      "trio", md.version("trio"))
PYEOF
echo "$want" > "$STAMP"
echo "build.sh: built in $((SECONDS - start)) s" >&2
echo "$VENV/bin/python"
