// The js-libp2p interop peer of interop/CONTRACT.md (the libp2p/test-plans transport-interop
// contract plus our runner's optional extras). All configuration comes from the environment
// (lower-case names; upper-case ones are accepted too):
//
//   transport             tcp | quic-v1                               (required)
//   security              noise | tls, for tcp                        (required for tcp)
//   muxer                 yamux, for tcp                              (required for tcp)
//   is_dialer             true | false                                (required)
//   ip                    the IP the listener binds                   (default 0.0.0.0)
//   redis_addr            host:port of Redis                          (default redis:6379)
//   test_timeout_seconds  whole-run timeout                           (default 180)
//   handshake_count, ping_count, echo_bytes, perf_upload_bytes, perf_download_bytes
//                         dialer extras, see interop/CONTRACT.md      (unset: not done)
//
// Listener: connects to Redis, starts a node (Ed25519 key, ping, identify, /echo/1.0.0,
// /perf/1.0.0; 1024 inbound streams per protocol and connection; no per-IP connection rate
// limit), listens on ip with port 0, RPUSHes `listenerAddr` with one address of the
// configured transport (for ip 0.0.0.0: a non-loopback IPv4 address if the host has one,
// else 127.0.0.1), then serves until SIGTERM/SIGINT (exit 0) or test_timeout_seconds (exit 1).
//
// Dialer: connects to Redis, starts a node, BLPOPs `listenerAddr`, measures
// handshake_count x (connect + one ping) on fresh connections (closing all but the last),
// pings the kept connection until ping_count RTTs are in, waits at most 10 s for the
// listener's identify, runs echo and perf when asked, and prints one JSON line on stdout.
// Exit 0 on success, 1 on any error or failed verification (the JSON line is still printed
// when echo or perf came back wrong), 2 for an unsupported combination (before Redis).
//
// Gossipsub mode (when gossipsub_topic is set; is_dialer and the dialer extras are ignored):
//   gossipsub_topic, gossipsub_index, gossipsub_connect, gossipsub_publish, gossipsub_expect
// starts a node with @libp2p/gossipsub at its defaults (StrictSign; message id from || seqno,
// see msgIdFromSeqno), RPUSHes `gossipsubPeers`, subscribes, dials gossipsub_connect, waits
// for a topic peer, RPUSHes `gossipsubReady`, BLPOPs `gossipsubGo`, publishes
// "<index>:<i>" gossipsub_publish times and prints one JSON line once gossipsub_expect
// messages from other nodes have arrived; then it keeps forwarding until SIGTERM/SIGINT
// (exit 0). At test_timeout_seconds it prints the line with what arrived (if not yet printed)
// and exits 1 (0 if the line was already complete).
//
// A ping is one /ipfs/ping/1.0.0 stream: its RTT is timed with performance.now() from
// sending 32 random bytes to having read them back (opening the stream is not included,
// as in js's ping service); then the stream is closed. Diagnostics go to stderr; set
// DEBUG=libp2p:* for js-libp2p's own logs.

import { randomFillSync } from 'node:crypto'
import { networkInterfaces } from 'node:os'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { name as LIBP2P_NAME, version as LIBP2P_VERSION } from 'libp2p/version'
import {
  ECHO_PROTOCOL, PERF_PROTOCOL, PING_PROTOCOL, HANDLER_STREAM_LIMIT, echoHandler, perfHandler,
  echoClient, perfClient, log, setLogPrefix, nodeConfig, toBytes
} from './common.mjs'

setLogPrefix('contract.mjs')

const LISTENER_ADDR_KEY = 'listenerAddr'
const IDENTIFY_WAIT_MS = 10_000
const PING_LENGTH = 32
// after a pong, how long to wait for the remote to close its side of the ping stream
const PING_CLOSE_WAIT_MS = 5_000
const EXIT_UNSUPPORTED = 2

class ConfigError extends Error {}
class Unsupported extends Error {}

function getEnv (name) {
  const v = process.env[name] ?? process.env[name.toUpperCase()]
  return v == null || v === '' ? null : v
}

function intEnv (name, dflt, minimum = 0) {
  const v = getEnv(name)
  if (v == null) return dflt
  if (!/^\d+$/.test(v)) throw new ConfigError(`${name}=${JSON.stringify(v)} is not a non-negative integer`)
  const n = Number(v)
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${name}=${v} is too large`)
  if (n < minimum) throw new ConfigError(`${name}=${n} is below ${minimum}`)
  return n
}

function readConfig () {
  const transport = getEnv('transport')
  if (transport == null) throw new ConfigError('transport is not set')
  const gossipsubTopic = getEnv('gossipsub_topic')
  // in gossipsub mode is_dialer does not apply
  const isDialer = (getEnv('is_dialer') ?? (gossipsubTopic != null ? 'false' : '')).toLowerCase()
  if (isDialer !== 'true' && isDialer !== 'false') {
    throw new ConfigError(`is_dialer must be true or false, not ${JSON.stringify(getEnv('is_dialer'))}`)
  }
  const timeoutText = getEnv('test_timeout_seconds') ?? '180'
  const timeoutSeconds = Number(timeoutText)
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new ConfigError(`test_timeout_seconds=${JSON.stringify(timeoutText)} is not a positive number`)
  }
  let perfUpload = intEnv('perf_upload_bytes', null)
  let perfDownload = intEnv('perf_download_bytes', null)
  if ((perfUpload == null) !== (perfDownload == null)) {
    perfUpload = perfUpload ?? 0
    perfDownload = perfDownload ?? 0
  }
  return {
    transport,
    security: getEnv('security'),
    muxer: getEnv('muxer'),
    isDialer: isDialer === 'true',
    ip: getEnv('ip') ?? '0.0.0.0',
    redisAddr: getEnv('redis_addr') ?? 'redis:6379',
    timeoutSeconds,
    handshakeCount: intEnv('handshake_count', 1, 1),
    pingCount: intEnv('ping_count', 1, 1),
    echoBytes: intEnv('echo_bytes', null),
    perfUpload,
    perfDownload,
    gossipsub: gossipsubTopic == null
      ? null
      : {
          topic: gossipsubTopic,
          index: intEnv('gossipsub_index', 0),
          connect: (getEnv('gossipsub_connect') ?? '').split(',').map(a => a.trim()).filter(a => a !== ''),
          publish: intEnv('gossipsub_publish', 1),
          expect: intEnv('gossipsub_expect', 0)
        }
  }
}

// The transport, encrypter and muxer factories for the configuration, or Unsupported.
async function stackFor (cfg) {
  if (cfg.transport === 'tcp') {
    if (cfg.security == null) throw new ConfigError('security is not set (required for tcp)')
    if (cfg.muxer == null) throw new ConfigError('muxer is not set (required for tcp)')
    let encrypter
    if (cfg.security === 'noise') {
      encrypter = (await import('@libp2p/noise')).noise()
    } else if (cfg.security === 'tls') {
      encrypter = (await import('@libp2p/tls')).tls()
    } else {
      throw new Unsupported(`security ${JSON.stringify(cfg.security)}: this js peer has noise and tls`)
    }
    if (cfg.muxer !== 'yamux') {
      throw new Unsupported(`muxer ${JSON.stringify(cfg.muxer)}: this js peer has only yamux`)
    }
    const { tcp } = await import('@libp2p/tcp')
    const { yamux } = await import('@libp2p/yamux')
    return { transports: [tcp()], connectionEncrypters: [encrypter], streamMuxers: [yamux()] }
  }
  if (cfg.transport === 'quic-v1') {
    if (cfg.security != null || cfg.muxer != null) {
      log(`quic-v1 has its own security and muxer; ignoring security=${cfg.security} muxer=${cfg.muxer}`)
    }
    let quic
    try {
      ({ quic } = await import('@chainsafe/libp2p-quic'))
    } catch (err) {
      throw new Unsupported(`quic-v1: @chainsafe/libp2p-quic does not load here (${err.message})`)
    }
    return { transports: [quic()], connectionEncrypters: [], streamMuxers: [] }
  }
  throw new Unsupported(`transport ${JSON.stringify(cfg.transport)}: this js peer has tcp and quic-v1`)
}

function listenAddr (cfg) {
  const family = cfg.ip.includes(':') ? 'ip6' : 'ip4'
  return cfg.transport === 'tcp'
    ? `/${family}/${cfg.ip}/tcp/0`
    : `/${family}/${cfg.ip}/udp/0/quic-v1`
}

// The one address to push: of the configured transport, with a concrete IP. For a wildcard
// bind the host's first non-loopback address (what a dialer in another container needs),
// else loopback.
function advertisedAddr (node, cfg) {
  const own = node.getMultiaddrs().map(ma => ma.toString()).filter(a => {
    const quic = a.includes('/quic-v1')
    return a.includes('/p2p/') && (cfg.transport === 'quic-v1' ? quic : a.includes('/tcp/') && !quic && !a.includes('/ws'))
  })
  const ipOf = a => a.split('/')[2]
  if (cfg.ip !== '0.0.0.0' && cfg.ip !== '::') {
    const exact = own.find(a => ipOf(a) === cfg.ip)
    if (exact != null) return exact
  } else {
    const v6 = cfg.ip === '::'
    const external = Object.values(networkInterfaces()).flat()
      .filter(i => i != null && !i.internal && i.family === (v6 ? 'IPv6' : 'IPv4') && !i.address.startsWith('fe80'))
      .map(i => i.address)
    const picked = own.find(a => external.includes(ipOf(a))) ??
      own.find(a => ipOf(a) === (v6 ? '::1' : '127.0.0.1'))
    if (picked != null) return picked
  }
  if (own.length > 0) return own[0]
  throw new Error(`no ${cfg.transport} address to advertise among ${node.getMultiaddrs().join(' ')}`)
}

async function connectRedis (addr) {
  const { createClient } = await import('redis')
  let host = addr
  let port = 6379
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(addr)
  if (m != null) {
    host = m[1]
    port = Number(m[2])
  }
  const client = createClient({
    socket: { host, port, connectTimeout: 5_000, reconnectStrategy: retries => Math.min(100 * (retries + 1), 1_000) }
  })
  let lastError = null
  client.on('error', (err) => {
    // while Redis is not up yet every retry reports the same error: log it once
    if (err.message !== lastError) log(`redis ${addr}: ${err.message}`)
    lastError = err.message
  })
  await client.connect()
  return client
}

function median (values) {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

const ms = (v) => Math.round(v * 10_000) / 10_000
const seconds = (msValue) => Math.round(msValue * 1_000) / 1_000_000

function exitAfterStop (node, code) {
  const t = setTimeout(() => process.exit(code), 3000)
  t.unref()
  node.stop().catch(() => {}).finally(() => process.exit(code))
}

async function runListener (cfg, stack) {
  const redis = await connectRedis(cfg.redisAddr)
  const node = await createLibp2p(nodeConfig({
    privateKey: await generateKeyPair('Ed25519'),
    listen: [listenAddr(cfg)],
    ...stack,
    maxPingStreams: HANDLER_STREAM_LIMIT
  }))
  const handlerOpts = { maxInboundStreams: HANDLER_STREAM_LIMIT, maxOutboundStreams: HANDLER_STREAM_LIMIT }
  await node.handle(ECHO_PROTOCOL, echoHandler, handlerOpts)
  await node.handle(PERF_PROTOCOL, perfHandler, handlerOpts)
  await node.start()

  let stopping = false
  const stop = (why, code) => {
    if (stopping) return
    stopping = true
    log(`${why}: stopping`)
    exitAfterStop(node, code)
  }
  process.on('SIGINT', () => stop('SIGINT', 0))
  process.on('SIGTERM', () => stop('SIGTERM', 0))
  setTimeout(() => stop(`test_timeout_seconds (${cfg.timeoutSeconds}) passed`, 1), cfg.timeoutSeconds * 1000)

  const addr = advertisedAddr(node, cfg)
  await redis.rPush(LISTENER_ADDR_KEY, addr)
  await redis.close()
  log(`listening on ${addr} (${LIBP2P_NAME} ${LIBP2P_VERSION}, ${cfg.transport}` +
    (cfg.transport === 'tcp' ? `/${cfg.security}/${cfg.muxer})` : ')'))
}

// One ping on a new /ipfs/ping/1.0.0 stream; returns the RTT in ms (send to echo received).
async function pingOnce (connection, signal) {
  const stream = await connection.newStream(PING_PROTOCOL, { signal })
  const data = randomFillSync(new Uint8Array(PING_LENGTH))
  let received = Buffer.alloc(0)
  let start = 0
  let rtt = null
  const pong = Promise.withResolvers()
  const reader = (async () => {
    for await (const chunk of stream) {
      received = Buffer.concat([received, toBytes(chunk)])
      if (received.byteLength >= PING_LENGTH && rtt == null) {
        rtt = performance.now() - start
        pong.resolve()
      }
    }
  })()
  reader.then(() => pong.reject(new Error(`ping: stream ended after ${received.byteLength} bytes`)),
    err => pong.reject(err))
  start = performance.now()
  stream.send(data)
  const onAbort = () => stream.abort(signal.reason ?? new Error('aborted'))
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    await pong.promise
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
  if (received.byteLength !== PING_LENGTH || !data.every((b, i) => b === received[i])) {
    stream.abort(new Error('ping: wrong pong'))
    throw new Error(`ping: sent ${PING_LENGTH} bytes, got ${received.byteLength} different ones back`)
  }
  // close our write side and let the remote close its side, so the next ping's stream is
  // not counted against the per-protocol stream limits while this one lingers
  try {
    await stream.close()
    let timer
    const late = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), PING_CLOSE_WAIT_MS) })
    const how = await Promise.race([reader.then(() => 'eof', () => 'error'), late])
    clearTimeout(timer)
    if (how === 'timeout') {
      log(`ping: remote did not close its ping stream within ${PING_CLOSE_WAIT_MS} ms, resetting it`)
      stream.abort(new Error('ping stream not closed by the remote'))
    } else if (received.byteLength !== PING_LENGTH) {
      throw new Error(`ping: remote sent ${received.byteLength - PING_LENGTH} bytes after the pong`)
    }
  } catch (err) {
    if (err.message.startsWith('ping:')) throw err
    log(`ping: closing the stream: ${err.message}`)
  }
  return rtt
}

async function runDialer (cfg, stack) {
  const redis = await connectRedis(cfg.redisAddr)
  const node = await createLibp2p(nodeConfig({
    privateKey: await generateKeyPair('Ed25519'),
    ...stack,
    maxPingStreams: HANDLER_STREAM_LIMIT
  }))
  // identify runs by itself on every new connection; keep every result so that none that
  // completes early is missed
  const identified = []
  let onIdentified = () => {}
  node.addEventListener('peer:identify', (evt) => {
    identified.push(evt.detail)
    onIdentified()
  })
  await node.start()

  const popped = await redis.blPop(LISTENER_ADDR_KEY, cfg.timeoutSeconds)
  await redis.close()
  if (popped == null) throw new Error(`no ${LISTENER_ADDR_KEY} in Redis within ${cfg.timeoutSeconds} s`)
  const target = multiaddr(popped.element)
  log(`dialing ${target}`)
  const signal = AbortSignal.timeout(cfg.timeoutSeconds * 1000)

  const handshakes = []
  const rtts = []
  let connection = null
  const seen = new Set()
  for (let i = 0; i < cfg.handshakeCount; i++) {
    const start = performance.now()
    const conn = await node.dial(target, { signal })
    const rtt = await pingOnce(conn, signal)
    handshakes.push(performance.now() - start)
    if (seen.has(conn.id)) throw new Error(`handshake sample ${i + 1} reused connection ${conn.id}`)
    seen.add(conn.id)
    if (i + 1 < cfg.handshakeCount) {
      await node.hangUp(conn.remotePeer, { signal })
    } else {
      connection = conn
      rtts.push(rtt)
    }
  }
  const remote = connection.remotePeer
  log(`connected to ${remote} via ${connection.remoteAddr} (muxer ${connection.multiplexer}, encryption ${connection.encryption})`)
  while (rtts.length < cfg.pingCount) {
    rtts.push(await pingOnce(connection, signal))
  }

  // the listener's identify: of the kept connection, else of an earlier sample's
  const ofKept = () => identified.find(r => r.connection?.id === connection.id)
  let result = ofKept()
  if (result == null) {
    result = await new Promise((resolve) => {
      const t = setTimeout(() => { onIdentified = () => {}; resolve(null) }, IDENTIFY_WAIT_MS)
      onIdentified = () => {
        const r = ofKept()
        if (r != null) { clearTimeout(t); onIdentified = () => {}; resolve(r) }
      }
    })
  }
  if (result == null) {
    result = identified.findLast(r => r.peerId.equals(remote)) ?? null
    log(result == null
      ? `no identify from ${remote} within ${IDENTIFY_WAIT_MS / 1000} s`
      : 'no identify on the kept connection; using an earlier connection\'s')
  }

  const out = {
    handshakePlusOneRTTMillis: ms(median(handshakes)),
    pingRTTMilllis: ms(median(rtts)),
    handshakePlusOneRTTsMillis: handshakes.map(ms),
    pingRTTsMillis: rtts.map(ms),
    implementation: `${LIBP2P_NAME} v${LIBP2P_VERSION}`,
    transport: cfg.transport,
    security: cfg.security,
    muxer: cfg.muxer,
    remotePeer: remote.toString(),
    agentVersion: result?.agentVersion ?? null,
    protocols: result?.protocols ?? []
  }

  const problems = []
  if (cfg.echoBytes != null) {
    const r = await echoClient(connection, cfg.echoBytes, { signal })
    out.echoBytes = cfg.echoBytes
    out.echoOk = r.ok
    out.echoSeconds = seconds(r.end - r.requested)
    if (!r.ok) problems.push('echo: the bytes that came back differ from those sent')
  }
  if (cfg.perfUpload != null) {
    const r = await perfClient(connection, cfg.perfUpload, cfg.perfDownload, { signal })
    const firstByte = r.firstByte ?? r.end
    out.perfUploadBytes = cfg.perfUpload
    out.perfDownloadBytes = r.got
    out.perfUploadSeconds = seconds(firstByte - r.requested)
    out.perfDownloadSeconds = seconds(r.end - firstByte)
    if (!r.ok) problems.push(`perf: asked for ${cfg.perfDownload} bytes, received ${r.got}`)
  }

  process.stdout.write(JSON.stringify(out) + '\n')
  for (const p of problems) log(p)
  exitAfterStop(node, problems.length > 0 ? 1 : 0)
}

// Gossipsub mode ---------------------------------------------------------------------------

const GOSSIPSUB_PEERS_KEY = 'gossipsubPeers'
const GOSSIPSUB_READY_KEY = 'gossipsubReady'
const GOSSIPSUB_GO_KEY = 'gossipsubGo'
const DIAL_ATTEMPTS = 3
const LOOPBACK_IPS = ['127.0.0.1', '::1']

// The message id of interop/CONTRACT.md and go-libp2p-pubsub's DefaultMsgIdFn: the `from`
// field as sent (the author's peer id multihash) followed by the 8-byte big-endian seqno.
// js's own default for StrictSign (msgIdFnStrictSign) is different: it uses the author's
// protobuf-encoded public key instead of `from` (for Ed25519 that is `from` without its
// 0x00 0x24 identity-multihash prefix), so its ids would not match the other
// implementations' in IHAVE/IWANT/IDONTWANT.
function msgIdFromSeqno (msg) {
  if (msg.type !== 'signed') throw new Error('msgIdFromSeqno: expected a signed message (StrictSign)')
  const from = msg.from.toMultihash().bytes
  const id = new Uint8Array(from.byteLength + 8)
  id.set(from, 0)
  new DataView(id.buffer).setBigUint64(from.byteLength, msg.sequenceNumber, false)
  return id
}

const sleep = (msValue) => new Promise(resolve => setTimeout(resolve, msValue))

async function runGossipsub (cfg, stack) {
  const gs = cfg.gossipsub
  const deadline = performance.now() + cfg.timeoutSeconds * 1000
  const remainingSeconds = () => Math.max((deadline - performance.now()) / 1000, 0)
  const { gossipsub, StrictSign } = await import('@libp2p/gossipsub')
  const redis = await connectRedis(cfg.redisAddr)
  const base = nodeConfig({
    privateKey: await generateKeyPair('Ed25519'),
    listen: [listenAddr(cfg)],
    ...stack,
    maxPingStreams: HANDLER_STREAM_LIMIT
  })
  const node = await createLibp2p({
    ...base,
    services: {
      ...base.services,
      pubsub: gossipsub({
        globalSignaturePolicy: StrictSign,
        msgIdFn: msgIdFromSeqno,
        // js always scores peers, and its default IP colocation penalty ((n - 10)^2 * -5 for
        // each of n > 10 peers on one IP) makes all-on-loopback test networks fall apart: a
        // node with 12 local peers scores each at -20, drops them all from its mesh and stops
        // gossiping to them. Exempt loopback only; every other score parameter is js's default.
        scoreParams: { IPColocationFactorWhitelist: new Set(LOOPBACK_IPS) }
      })
    }
  })
  const pubsub = node.services.pubsub

  // every distinct message from another node on the topic (gossipsub emits each message id
  // once; own messages are not emitted since emitSelf is false)
  const receivedIds = new Set()
  const receivedData = new Set()
  let goAt = null
  let lastAt = null
  let published = 0
  let onReceived = () => {}
  const decoder = new TextDecoder()
  pubsub.addEventListener('message', (evt) => {
    const msg = evt.detail
    if (msg.topic !== gs.topic) return
    if (msg.type === 'signed' && msg.from.equals(node.peerId)) return
    const id = Buffer.from(msgIdFromSeqno(msg)).toString('hex')
    if (receivedIds.has(id)) return
    receivedIds.add(id)
    const data = decoder.decode(msg.data)
    receivedData.add(data)
    const now = performance.now()
    if (receivedIds.size <= gs.expect) lastAt = now
    log(`received ${JSON.stringify(data)} from ${msg.type === 'signed' ? msg.from : '?'}` +
      (goAt == null ? ' (before go)' : ` (${Math.round(now - goAt)} ms after go)`))
    onReceived()
  })

  let reported = false
  const report = () => {
    reported = true
    const out = {
      implementation: `${LIBP2P_NAME} v${LIBP2P_VERSION}`,
      gossipsubIndex: gs.index,
      peerId: node.peerId.toString(),
      published,
      received: receivedIds.size,
      expected: gs.expect,
      receivedData: [...receivedData].sort(),
      seconds: goAt == null || lastAt == null ? 0 : Math.max(Math.round(lastAt - goAt) / 1000, 0),
      meshPeers: pubsub.getMeshPeers(gs.topic).length,
      topicPeers: pubsub.getSubscribers(gs.topic).length
    }
    process.stdout.write(JSON.stringify(out) + '\n')
    return out
  }

  let stopping = false
  const stop = (why, code) => {
    if (stopping) return
    stopping = true
    log(`${why}: stopping`)
    redis.destroy?.()
    exitAfterStop(node, code)
  }
  process.on('SIGINT', () => stop('SIGINT', 0))
  process.on('SIGTERM', () => stop('SIGTERM', 0))
  // test_timeout_seconds: the JSON line with what arrived (unless it was printed already)
  const timedOut = () => {
    if (stopping) return
    if (reported) {
      stop(`test_timeout_seconds (${cfg.timeoutSeconds}) passed`, 0)
      return
    }
    log(`test_timeout_seconds (${cfg.timeoutSeconds}) passed with ${receivedIds.size} of ${gs.expect} messages`)
    report()
    stop('timeout', 1)
  }
  setTimeout(timedOut, cfg.timeoutSeconds * 1000)

  await node.start()
  const addr = advertisedAddr(node, cfg)
  await redis.rPush(GOSSIPSUB_PEERS_KEY, addr)
  log(`gossipsub node ${gs.index} at ${addr} (${LIBP2P_NAME} ${LIBP2P_VERSION}, ${pubsub.protocols.join(' ')})`)

  pubsub.subscribe(gs.topic)
  for (const target of gs.connect) {
    for (let attempt = 1; ; attempt++) {
      try {
        const conn = await node.dial(multiaddr(target), { signal: AbortSignal.timeout(Math.max(Math.ceil(remainingSeconds() * 1000), 1)) })
        log(`connected to ${conn.remotePeer} via ${conn.remoteAddr}`)
        break
      } catch (err) {
        if (attempt >= DIAL_ATTEMPTS) throw new Error(`dialing ${target}: ${err.message}`)
        log(`dialing ${target} (attempt ${attempt}): ${err.message}; retrying`)
        await sleep(500)
      }
    }
  }

  // ready: at least one peer has told us it is in the topic (or is in our mesh)
  const topicPeers = () => pubsub.getSubscribers(gs.topic).length + pubsub.getMeshPeers(gs.topic).length
  while (topicPeers() === 0) {
    await sleep(50)
  }
  await redis.rPush(GOSSIPSUB_READY_KEY, String(gs.index))
  log(`ready: topic peers ${pubsub.getSubscribers(gs.topic).join(' ')}`)

  const go = await redis.blPop(GOSSIPSUB_GO_KEY, Math.max(Math.ceil(remainingSeconds()), 1))
  if (go == null) {
    log(`no ${GOSSIPSUB_GO_KEY} token in Redis before the timeout`)
    timedOut()
    return
  }
  goAt = performance.now()
  log(`go: mesh ${pubsub.getMeshPeers(gs.topic).length}, topic peers ${pubsub.getSubscribers(gs.topic).length}`)

  for (let i = 0; i < gs.publish; i++) {
    const data = new TextEncoder().encode(`${gs.index}:${i}`)
    for (;;) {
      try {
        const r = await pubsub.publish(gs.topic, data)
        published++
        log(`published ${gs.index}:${i} to ${r.recipients.length} peers`)
        break
      } catch (err) {
        // js refuses to publish when no topic peer is connected (allowPublishToZeroTopicPeers
        // is false): wait for one to come back rather than lose the message
        if (!String(err.message).includes('NoPeersSubscribedToTopic')) throw err
        log(`publish ${gs.index}:${i}: no topic peers, retrying`)
        await sleep(100)
      }
    }
  }

  if (receivedIds.size < gs.expect) {
    await new Promise((resolve) => {
      onReceived = () => { if (receivedIds.size >= gs.expect) resolve() }
    })
    onReceived = () => {}
  }
  report()
  log(`received all ${gs.expect} expected messages; serving until SIGTERM`)
}

async function main () {
  let cfg, stack
  try {
    cfg = readConfig()
    stack = await stackFor(cfg)
  } catch (err) {
    if (err instanceof Unsupported) {
      log(`unsupported: ${err.message}`)
      process.exit(EXIT_UNSUPPORTED)
    }
    log(`bad configuration: ${err.message}`)
    process.exit(1)
  }
  process.on('unhandledRejection', (err) => { log(`unhandled rejection: ${err?.stack ?? err}`) })
  if (cfg.gossipsub != null) {
    await runGossipsub(cfg, stack)
  } else if (cfg.isDialer) {
    // not unref'd: if everything else stalls, this still ends the run
    setTimeout(() => {
      log(`test_timeout_seconds (${cfg.timeoutSeconds}) passed`)
      process.exit(1)
    }, cfg.timeoutSeconds * 1000)
    await runDialer(cfg, stack)
  } else {
    await runListener(cfg, stack)
  }
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`)
  process.exit(1)
})
