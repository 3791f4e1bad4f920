package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
)

// listenMultiaddr is the port-0 address to bind for the configured transport.
func listenMultiaddr(cfg *config) string {
	family := "ip4"
	if strings.Contains(cfg.ip, ":") {
		family = "ip6"
	}
	if cfg.transport == "quic-v1" {
		return fmt.Sprintf("/%s/%s/udp/0/quic-v1", family, cfg.ip)
	}
	return fmt.Sprintf("/%s/%s/tcp/0", family, cfg.ip)
}

func runListener(cfg *config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()

	rdb, err := connectRedis(ctx, cfg.redisAddr)
	if err != nil {
		return err
	}
	defer rdb.Close()

	h, err := newHost(cfg, listenMultiaddr(cfg))
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	defer h.Close()
	serveProtocols(h)

	addr, err := fullListenAddr(cfg, h)
	if err != nil {
		return err
	}
	if err := rdb.RPush(ctx, "listenerAddr", addr).Err(); err != nil {
		return fmt.Errorf("redis RPUSH listenerAddr: %w", err)
	}
	log.Printf("listening (%s, go-libp2p %s) on %s", cfg.describe(), libp2pVersion(), addr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Printf("got %v, exiting", s)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("test_timeout_seconds (%s) reached", cfg.timeout)
	}
}

// fullListenAddr is the node's bound address of the configured transport (with the real
// port, not an announced one) plus /p2p/<id>; 0.0.0.0 and :: become loopback.
func fullListenAddr(cfg *config, h host.Host) (string, error) {
	for _, a := range h.Network().ListenAddresses() {
		s := a.String()
		if cfg.transport == "quic-v1" && !strings.Contains(s, "/quic-v1") {
			continue
		}
		if cfg.transport == "tcp" && !strings.Contains(s, "/tcp/") {
			continue
		}
		s = strings.Replace(s, "/ip4/0.0.0.0/", "/ip4/127.0.0.1/", 1)
		s = strings.Replace(s, "/ip6/::/", "/ip6/::1/", 1)
		return s + "/p2p/" + h.ID().String(), nil
	}
	return "", fmt.Errorf("no %s listen address among %v", cfg.transport, h.Network().ListenAddresses())
}

// sinceMs is the elapsed time since t in float milliseconds.
func sinceMs(t time.Time) float64 {
	return float64(time.Since(t).Nanoseconds()) / 1e6
}
