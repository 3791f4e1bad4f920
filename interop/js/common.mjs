// Code shared by the two js-libp2p interop peers: peer.mjs (the CLI the pytest suite uses)
// and contract.mjs (the interop/CONTRACT.md peer).
//
// - log(): diagnostics on stderr, with the prefix set by setLogPrefix()
// - stream helpers for js-libp2p 3 streams: toBytes, sendAll, writeRepeated, writeZeros
// - the /echo/1.0.0 and /perf/1.0.0 server handlers and their clients
// - nodeConfig(): the createLibp2p options both peers start from

import { randomFillSync } from 'node:crypto'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'

export const ECHO_PROTOCOL = '/echo/1.0.0'
export const PERF_PROTOCOL = '/perf/1.0.0'
export const PING_PROTOCOL = '/ipfs/ping/1.0.0'
export const CHUNK = 64 * 1024

let logPrefix = 'js-peer'

export function setLogPrefix (prefix) {
  logPrefix = prefix
}

export function log (msg) {
  process.stderr.write(`${logPrefix}: ${msg}\n`)
}

// Chunks from a js-libp2p 3 stream are Uint8Array or Uint8ArrayList.
export function toBytes (chunk) {
  return chunk instanceof Uint8Array ? chunk : chunk.subarray()
}

// stream.send() queues the data and returns false when the muxer wants us to wait for 'drain'.
export async function sendAll (stream, data) {
  if (!stream.send(data)) {
    await stream.onDrain()
  }
}

// Sends `total` bytes taken from `chunk` over and over. `chunk` must not be modified while
// the stream may still hold it (send() queues a reference).
export async function writeRepeated (stream, total, chunk) {
  let sent = 0
  while (sent < total) {
    const n = Math.min(chunk.byteLength, total - sent)
    await sendAll(stream, n === chunk.byteLength ? chunk : chunk.subarray(0, n))
    sent += n
  }
}

// Sends `total` zero bytes.
export async function writeZeros (stream, total) {
  await writeRepeated(stream, total, new Uint8Array(CHUNK))
}

// /echo/1.0.0 server: echo every byte until the remote closes its write side, then close.
export async function echoHandler (stream, connection) {
  try {
    for await (const chunk of stream) {
      await sendAll(stream, chunk)
    }
    await stream.close()
  } catch (err) {
    log(`echo from ${connection.remotePeer}: ${err.message}`)
    stream.abort(err)
  }
}

// /perf/1.0.0 server (libp2p/specs perf/perf.md): read a u64 big-endian N, drain the
// upload until EOF, write N bytes, close.
export async function perfHandler (stream, connection) {
  try {
    const header = new Uint8Array(8)
    let have = 0
    let uploaded = 0
    for await (const chunk of stream) {
      let bytes = toBytes(chunk)
      if (have < 8) {
        const take = Math.min(8 - have, bytes.byteLength)
        header.set(bytes.subarray(0, take), have)
        have += take
        bytes = bytes.subarray(take)
      }
      uploaded += bytes.byteLength
    }
    if (have < 8) throw new Error(`perf: stream ended after ${have} header bytes`)
    const n = new DataView(header.buffer).getBigUint64(0, false)
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`perf: download size ${n} too large`)
    log(`perf from ${connection.remotePeer}: uploaded ${uploaded}, sending ${n}`)
    await writeZeros(stream, Number(n))
    await stream.close()
  } catch (err) {
    log(`perf from ${connection.remotePeer}: ${err.message}`)
    stream.abort(err)
  }
}

// /echo/1.0.0 client: sends `total` random bytes in CHUNK pieces while reading
// concurrently, closes its write side, reads until EOF and compares byte for byte.
// Times (performance.now() ms): `requested` before newStream, `opened` after it, `end` at EOF.
export async function echoClient (connection, total, options = {}) {
  const requested = performance.now()
  const stream = await connection.newStream(ECHO_PROTOCOL, options)
  const received = Buffer.allocUnsafe(total)
  const sent = Buffer.allocUnsafe(total)
  let got = 0
  let overflow = false
  const opened = performance.now()
  const reader = (async () => {
    for await (const chunk of stream) {
      const bytes = toBytes(chunk)
      if (got + bytes.byteLength > total) {
        overflow = true
        break
      }
      received.set(bytes, got)
      got += bytes.byteLength
    }
  })()
  const writer = (async () => {
    let off = 0
    while (off < total) {
      const n = Math.min(CHUNK, total - off)
      const chunk = sent.subarray(off, off + n)
      randomFillSync(chunk)
      await sendAll(stream, chunk)
      off += n
    }
    await stream.close() // closes our write side (yamux FIN); reading continues
  })()
  await Promise.all([writer, reader])
  const end = performance.now()
  if (overflow) throw new Error(`echo: received more than the ${total} bytes sent`)
  if (got !== total) throw new Error(`echo: sent ${total} bytes, received ${got}`)
  return { ok: sent.equals(received), got, requested, opened, end }
}

// /perf/1.0.0 client: sends the download size as u64 big-endian, then `upload` bytes (one
// random CHUNK repeated), closes its write side and counts what comes back until EOF.
// Times (performance.now() ms):
// `requested` before newStream, `opened` after it, `firstByte` at the first downloaded byte
// (null if none came) and `end` at EOF.
export async function perfClient (connection, upload, download, options = {}) {
  const requested = performance.now()
  const stream = await connection.newStream(PERF_PROTOCOL, options)
  const opened = performance.now()
  const header = new Uint8Array(8)
  new DataView(header.buffer).setBigUint64(0, BigInt(download), false)
  let got = 0
  let firstByte = null
  const reader = (async () => {
    for await (const chunk of stream) {
      if (firstByte == null && chunk.byteLength > 0) firstByte = performance.now()
      got += chunk.byteLength
    }
  })()
  await sendAll(stream, header)
  await writeRepeated(stream, upload, randomFillSync(new Uint8Array(CHUNK)))
  await stream.close()
  await reader
  const end = performance.now()
  return { ok: got === download, got, requested, opened, firstByte, end }
}

// Options for createLibp2p. `maxPingStreams` is the ping service's inbound and outbound
// stream limit per connection (js's own default: 2 inbound, 1 outbound).
export function nodeConfig ({ privateKey, listen = [], transports, connectionEncrypters = [],
  streamMuxers = [], maxPingStreams = 16 }) {
  return {
    privateKey,
    addresses: { listen },
    transports,
    connectionEncrypters,
    streamMuxers,
    connectionManager: {
      // default 5 new inbound connections per second per host: tests open many
      inboundConnectionThreshold: 1_000_000,
      maxIncomingPendingConnections: 1_000,
      maxConnections: 10_000
    },
    services: {
      ping: ping({ maxInboundStreams: maxPingStreams, maxOutboundStreams: maxPingStreams }),
      identify: identify()
    }
  }
}

// The echo and perf handlers allow this many inbound (and outbound) streams per connection.
export const HANDLER_STREAM_LIMIT = 1024
