package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/redis/go-redis/v9"
)

const identifyWait = 10 * time.Second

// result is the dialer's one JSON line (see interop/CONTRACT.md).
type result struct {
	HandshakePlusOneRTTMillis  float64   `json:"handshakePlusOneRTTMillis"`
	PingRTTMilllis             float64   `json:"pingRTTMilllis"` // sic: test-plans spelling
	HandshakePlusOneRTTsMillis []float64 `json:"handshakePlusOneRTTsMillis"`
	PingRTTsMillis             []float64 `json:"pingRTTsMillis"`
	Implementation             string    `json:"implementation"`
	Transport                  string    `json:"transport"`
	Security                   *string   `json:"security"`
	Muxer                      *string   `json:"muxer"`
	RemotePeer                 string    `json:"remotePeer"`
	AgentVersion               *string   `json:"agentVersion"`
	Protocols                  []string  `json:"protocols"`

	EchoBytes   *int64   `json:"echoBytes,omitempty"`
	EchoOk      *bool    `json:"echoOk,omitempty"`
	EchoSeconds *float64 `json:"echoSeconds,omitempty"`

	PerfUploadBytes     *int64   `json:"perfUploadBytes,omitempty"`
	PerfDownloadBytes   *int64   `json:"perfDownloadBytes,omitempty"`
	PerfUploadSeconds   *float64 `json:"perfUploadSeconds,omitempty"`
	PerfDownloadSeconds *float64 `json:"perfDownloadSeconds,omitempty"`
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func durMs(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func strPtr(s string) *string { return &s }

func runDialer(cfg *config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()

	rdb, err := connectRedis(ctx, cfg.redisAddr)
	if err != nil {
		return err
	}
	defer rdb.Close()

	h, err := newHost(cfg, "")
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	defer h.Close()

	// BLPOP's timeout is whole seconds; what is left of the run, at least 1 s.
	wait := time.Until(deadlineOf(ctx)).Truncate(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	vals, err := rdb.BLPop(ctx, wait, "listenerAddr").Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("no listenerAddr in Redis within %s", wait)
	}
	if err != nil {
		return fmt.Errorf("redis BLPOP listenerAddr: %w", err)
	}
	addrStr := vals[1]
	log.Printf("dialing %s (%s)", addrStr, cfg.describe())
	maddr, err := ma.NewMultiaddr(addrStr)
	if err != nil {
		return fmt.Errorf("bad listener address %q: %w", addrStr, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(maddr)
	if err != nil {
		return fmt.Errorf("bad listener address %q: %w", addrStr, err)
	}
	// Keep the address across the ClosePeer calls between handshake samples.
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)

	res := &result{
		Implementation: "go-libp2p " + libp2pVersion(),
		Transport:      cfg.transport,
		RemotePeer:     ai.ID.String(),
		Protocols:      []string{},
	}
	if cfg.transport == "tcp" {
		res.Security, res.Muxer = strPtr(cfg.security), strPtr(cfg.muxer)
	}

	withIDs, ok := h.(interface{ IDService() identify.IDService })
	if !ok {
		return errors.New("host has no identify service")
	}
	ids := withIDs.IDService()

	// Handshake samples: connect + one ping on a fresh connection each time. The
	// last connection and its ping stream are kept for the remaining pings.
	var pings <-chan ping.Result
	var stopPing context.CancelFunc
	for i := 0; i < cfg.handshakeCount; i++ {
		// What h.Connect does (dial, then wait for identify), split to log each part.
		// go-libp2p's NewStream would wait for identify before the ping anyway.
		start := time.Now()
		conn, err := h.Network().DialPeer(ctx, ai.ID)
		if err != nil {
			return fmt.Errorf("handshake sample %d: connect: %w", i+1, err)
		}
		dialed := time.Now()
		select {
		case <-ids.IdentifyWait(conn):
		case <-ctx.Done():
			return fmt.Errorf("handshake sample %d: identify: %w", i+1, ctx.Err())
		}
		identified := time.Now()
		pctx, pcancel := context.WithCancel(ctx)
		ch := ping.Ping(pctx, h, ai.ID)
		r, err := nextPing(ctx, ch)
		if err != nil {
			pcancel()
			return fmt.Errorf("handshake sample %d: ping: %w", i+1, err)
		}
		total := sinceMs(start)
		res.HandshakePlusOneRTTsMillis = append(res.HandshakePlusOneRTTsMillis, total)
		log.Printf("handshake sample %d: %.3f ms = dial %.3f + identify %.3f + ping stream and 1 RTT %.3f (RTT %.3f)",
			i+1, total, durMs(dialed.Sub(start)), durMs(identified.Sub(dialed)),
			durMs(time.Since(identified)), durMs(r.RTT))
		if i == cfg.handshakeCount-1 {
			res.PingRTTsMillis = append(res.PingRTTsMillis, durMs(r.RTT))
			pings, stopPing = ch, pcancel
			break
		}
		pcancel()
		if err := h.Network().ClosePeer(ai.ID); err != nil {
			return fmt.Errorf("handshake sample %d: close connection: %w", i+1, err)
		}
	}
	for len(res.PingRTTsMillis) < cfg.pingCount {
		r, err := nextPing(ctx, pings)
		if err != nil {
			stopPing()
			return fmt.Errorf("ping %d: %w", len(res.PingRTTsMillis)+1, err)
		}
		res.PingRTTsMillis = append(res.PingRTTsMillis, durMs(r.RTT))
	}
	stopPing()
	res.HandshakePlusOneRTTMillis = median(res.HandshakePlusOneRTTsMillis)
	res.PingRTTMilllis = median(res.PingRTTsMillis)
	log.Printf("handshake+1RTT ms %v; ping RTT ms %v", res.HandshakePlusOneRTTsMillis, res.PingRTTsMillis)

	if err := waitIdentify(h, ids, ai.ID, res); err != nil {
		return err
	}

	if cfg.echoBytes >= 0 {
		secs, err := runEcho(ctx, h, ai.ID, cfg.echoBytes)
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		ok := true
		res.EchoBytes, res.EchoOk, res.EchoSeconds = &cfg.echoBytes, &ok, &secs
		log.Printf("echo: %d bytes verified in %.3f s", cfg.echoBytes, secs)
	}

	if cfg.doPerf {
		got, upSecs, downSecs, err := runPerf(ctx, h, ai.ID, cfg.perfUpload, cfg.perfDownload)
		if err != nil {
			return fmt.Errorf("perf: %w", err)
		}
		if got != cfg.perfDownload {
			log.Printf("perf: WARNING asked for %d bytes, received %d", cfg.perfDownload, got)
		}
		res.PerfUploadBytes, res.PerfDownloadBytes = &cfg.perfUpload, &got
		res.PerfUploadSeconds, res.PerfDownloadSeconds = &upSecs, &downSecs
		log.Printf("perf: uploaded %d bytes in %.3f s, downloaded %d bytes in %.3f s",
			cfg.perfUpload, upSecs, got, downSecs)
	}

	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(os.Stdout, "%s\n", line); err != nil {
		return err
	}
	return nil
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func nextPing(ctx context.Context, ch <-chan ping.Result) (ping.Result, error) {
	select {
	case r, ok := <-ch:
		if !ok {
			return r, errors.New("ping stream ended")
		}
		return r, r.Error
	case <-ctx.Done():
		return ping.Result{}, ctx.Err()
	}
}

// waitIdentify waits (at most 10 s) for identify on the kept connection and copies the
// listener's agent version and protocols from the peerstore.
func waitIdentify(h host.Host, ids identify.IDService, p peer.ID, res *result) error {
	conns := h.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		return errors.New("connection to the listener is gone before identify")
	}
	select {
	case <-ids.IdentifyWait(conns[0]):
	case <-time.After(identifyWait):
		log.Printf("identify: nothing after %s", identifyWait)
		return nil
	}
	if v, err := h.Peerstore().Get(p, "AgentVersion"); err == nil {
		if s, ok := v.(string); ok {
			res.AgentVersion = &s
		}
	}
	if protos, err := h.Peerstore().GetProtocols(p); err == nil {
		for _, pr := range protos {
			res.Protocols = append(res.Protocols, string(pr))
		}
		slices.Sort(res.Protocols)
	}
	log.Printf("identify: agent %v, protocols %v", deref(res.AgentVersion), res.Protocols)
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// runEcho sends n random bytes on /echo/1.0.0 while reading the echo concurrently,
// half-closes, reads to EOF and verifies byte for byte. It returns the seconds from
// opening the stream to EOF.
func runEcho(ctx context.Context, h host.Host, p peer.ID, n int64) (float64, error) {
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		return 0, err
	}
	start := time.Now()
	s, err := h.NewStream(ctx, p, echoProtocol)
	if err != nil {
		return 0, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()

	werr := make(chan error, 1)
	go func() {
		for off := int64(0); off < n; {
			end := min(off+chunkSize, n)
			if _, err := s.Write(data[off:end]); err != nil {
				werr <- fmt.Errorf("write at %d: %w", off, err)
				return
			}
			off = end
		}
		werr <- s.CloseWrite()
	}()

	buf := make([]byte, chunkSize)
	var got int64
	for {
		k, err := s.Read(buf)
		if k > 0 {
			if got+int64(k) > n {
				s.Reset()
				return 0, fmt.Errorf("received more than the %d bytes sent", n)
			}
			if !bytes.Equal(buf[:k], data[got:got+int64(k)]) {
				s.Reset()
				return 0, fmt.Errorf("mismatch in bytes %d..%d", got, got+int64(k))
			}
			got += int64(k)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.Reset()
			return 0, fmt.Errorf("read after %d bytes: %w", got, err)
		}
	}
	secs := time.Since(start).Seconds()
	if err := <-werr; err != nil {
		s.Reset()
		return 0, err
	}
	s.Close()
	if got != n {
		return 0, fmt.Errorf("EOF after %d of %d bytes", got, n)
	}
	return secs, nil
}

// runPerf is one /perf/1.0.0 client exchange. It returns the bytes downloaded, the
// seconds from opening the stream to the first downloaded byte (to EOF when nothing
// comes back) and the seconds from there to EOF.
func runPerf(ctx context.Context, h host.Host, p peer.ID, up, down int64) (int64, float64, float64, error) {
	start := time.Now()
	s, err := h.NewStream(ctx, p, perfProtocol)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()

	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(down))
	if _, err := s.Write(hdr[:]); err != nil {
		s.Reset()
		return 0, 0, 0, fmt.Errorf("write size: %w", err)
	}
	if err := writeZeros(s, uint64(up)); err != nil {
		s.Reset()
		return 0, 0, 0, fmt.Errorf("upload: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return 0, 0, 0, fmt.Errorf("close write: %w", err)
	}

	buf := make([]byte, chunkSize)
	var got int64
	var first time.Time
	for {
		k, err := s.Read(buf)
		if k > 0 {
			if got == 0 {
				first = time.Now()
			}
			got += int64(k)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.Reset()
			return 0, 0, 0, fmt.Errorf("download after %d bytes: %w", got, err)
		}
	}
	end := time.Now()
	s.Close()
	if got == 0 {
		return 0, end.Sub(start).Seconds(), 0, nil
	}
	return got, first.Sub(start).Seconds(), end.Sub(first).Seconds(), nil
}
