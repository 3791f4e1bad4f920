package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/x/rate"
	"github.com/redis/go-redis/v9"
)

const (
	echoProtocol = protocol.ID("/echo/1.0.0")
	perfProtocol = protocol.ID("/perf/1.0.0")
	chunkSize    = 64 << 10
)

// newResourceManager lifts every resource-manager limit: infinite scope limits, no
// connection rate limit and no per-subnet connection cap. The runner opens many
// connections and streams in a row from one IP.
func newResourceManager() (network.ResourceManager, error) {
	unlimitedV4 := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 0, ConnCount: math.MaxInt}}
	unlimitedV6 := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 0, ConnCount: math.MaxInt}}
	return rcmgr.NewResourceManager(
		rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits),
		rcmgr.WithConnRateLimiters(&rate.Limiter{}),
		rcmgr.WithLimitPerSubnet(unlimitedV4, unlimitedV6),
		rcmgr.WithMetricsDisabled(),
	)
}

// newHost starts a node with exactly the configured transport stack and an Ed25519
// identity. listenAddr is empty for the dialer.
func newHost(cfg *config, listenAddr string) (host.Host, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	rm, err := newResourceManager()
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.UserAgent("github.com/libp2p/go-libp2p@" + libp2pVersion()),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(&connmgr.NullConnMgr{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.Ping(true),
	}
	switch cfg.transport {
	case "tcp":
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport))
		switch cfg.security {
		case "noise":
			opts = append(opts, libp2p.Security(noise.ID, noise.New))
		case "tls":
			opts = append(opts, libp2p.Security(libp2ptls.ID, libp2ptls.New))
		}
		opts = append(opts, libp2p.Muxer(yamux.ID, yamux.DefaultTransport))
	case "quic-v1":
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if listenAddr != "" {
		opts = append(opts, libp2p.ListenAddrStrings(listenAddr))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	return libp2p.New(opts...)
}

// serveProtocols installs the echo and perf servers (ping and identify are built in).
func serveProtocols(h host.Host) {
	h.SetStreamHandler(echoProtocol, handleEcho)
	h.SetStreamHandler(perfProtocol, handlePerf)
}

// handleEcho writes back every byte until the remote closes its write side, then
// closes the stream.
func handleEcho(s network.Stream) {
	buf := make([]byte, chunkSize)
	var total int64
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				log.Printf("echo: write to %s: %v", s.Conn().RemotePeer(), werr)
				s.Reset()
				return
			}
			total += int64(n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Printf("echo: read from %s: %v", s.Conn().RemotePeer(), err)
			s.Reset()
			return
		}
	}
	if err := s.Close(); err != nil {
		log.Printf("echo: close: %v", err)
	}
	log.Printf("echo: %d bytes echoed to %s", total, s.Conn().RemotePeer())
}

// handlePerf is the server side of libp2p/specs perf/perf.md: read the u64 big-endian
// download size N, drain the upload to EOF, send N bytes, close the write side.
func handlePerf(s network.Stream) {
	var hdr [8]byte
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		log.Printf("perf: read size: %v", err)
		s.Reset()
		return
	}
	n := binary.BigEndian.Uint64(hdr[:])
	up, err := io.CopyBuffer(io.Discard, s, make([]byte, chunkSize))
	if err != nil {
		log.Printf("perf: drain upload: %v", err)
		s.Reset()
		return
	}
	if err := writeZeros(s, n); err != nil {
		log.Printf("perf: send %d bytes: %v", n, err)
		s.Reset()
		return
	}
	if err := s.Close(); err != nil {
		log.Printf("perf: close: %v", err)
	}
	log.Printf("perf: received %d bytes, sent %d bytes to %s", up, n, s.Conn().RemotePeer())
}

var zeroChunk = make([]byte, chunkSize)

// writeZeros writes n bytes of a constant buffer (perf payload content is arbitrary).
func writeZeros(w io.Writer, n uint64) error {
	for n > 0 {
		c := uint64(len(zeroChunk))
		if n < c {
			c = n
		}
		if _, err := w.Write(zeroChunk[:c]); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

// connectRedis returns a client once Redis answers PING, retrying until ctx ends.
func connectRedis(ctx context.Context, addr string) (*redis.Client, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil {
			return rdb, nil
		}
		log.Printf("redis %s not ready: %v", addr, err)
		select {
		case <-ctx.Done():
			rdb.Close()
			return nil, fmt.Errorf("redis %s: %w", addr, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
