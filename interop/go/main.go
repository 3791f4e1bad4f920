// Command peer is the go-libp2p interop peer for p2pstack's interop runner.
//
// It follows interop/CONTRACT.md (the libp2p/test-plans transport-interop contract
// plus p2pstack's optional extras and its gossipsub mode). All configuration comes from
// the environment; the dialer (or a gossipsub-mode node) prints exactly one JSON line on
// stdout, everything else goes to stderr.
package main

import (
	"fmt"
	"log"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// config is the parsed environment.
type config struct {
	transport string // "tcp" or "quic-v1"
	security  string // "noise" or "tls" (tcp only)
	muxer     string // "yamux" (tcp only)
	isDialer  bool
	ip        string
	redisAddr string
	timeout   time.Duration

	// Optional extras (dialer only).
	handshakeCount int
	pingCount      int
	echoBytes      int64 // < 0: not asked
	perfUpload     int64 // < 0 (both): not asked
	perfDownload   int64
	doPerf         bool

	// Gossipsub mode (set when gossipsub_topic is set; is_dialer etc. do not apply).
	gossipsubTopic   string
	gossipsubIndex   int
	gossipsubConnect []string
	gossipsubPublish int
	gossipsubExpect  int
}

// usageError is a configuration we do not support: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func parseCount(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, usageError{fmt.Sprintf("%s=%q: want an integer >= 1", name, v)}
	}
	return n, nil
}

// parseInt reads a non-negative integer; unset or empty gives def, or an error when the
// variable is required.
func parseInt(name string, def int, required bool) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		if required {
			return 0, usageError{fmt.Sprintf("%s is required in gossipsub mode", name)}
		}
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, usageError{fmt.Sprintf("%s=%q: want an integer >= 0", name, v)}
	}
	return n, nil
}

func parseBytes(name string) (int64, bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, usageError{fmt.Sprintf("%s=%q: want an integer >= 0", name, v)}
	}
	return n, true, nil
}

func parseConfig() (*config, error) {
	c := &config{
		transport: os.Getenv("transport"),
		security:  os.Getenv("security"),
		muxer:     os.Getenv("muxer"),
		ip:        envOr("ip", "0.0.0.0"),
		redisAddr: envOr("redis_addr", "redis:6379"),
		echoBytes: -1,
	}
	switch c.transport {
	case "tcp":
		switch c.security {
		case "noise", "tls":
		case "":
			return nil, usageError{"transport=tcp needs security (noise or tls)"}
		default:
			return nil, usageError{fmt.Sprintf("unsupported security %q for tcp (supported: noise, tls)", c.security)}
		}
		switch c.muxer {
		case "yamux":
		case "":
			return nil, usageError{"transport=tcp needs muxer (yamux)"}
		default:
			return nil, usageError{fmt.Sprintf("unsupported muxer %q (supported: yamux)", c.muxer)}
		}
	case "quic-v1":
		// QUIC brings its own security and multiplexing; test-plans leaves these unset.
		if c.security != "" || c.muxer != "" {
			log.Printf("transport=quic-v1: ignoring security=%q muxer=%q", c.security, c.muxer)
		}
		c.security, c.muxer = "", ""
	case "":
		return nil, usageError{"transport is required (tcp or quic-v1)"}
	default:
		return nil, usageError{fmt.Sprintf("unsupported transport %q (supported: tcp, quic-v1)", c.transport)}
	}

	secs := 180.0
	if v := os.Getenv("test_timeout_seconds"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return nil, usageError{fmt.Sprintf("test_timeout_seconds=%q: want a positive number", v)}
		}
		secs = f
	}
	c.timeout = time.Duration(secs * float64(time.Second))

	if c.gossipsubTopic = os.Getenv("gossipsub_topic"); c.gossipsubTopic != "" {
		if err := parseGossipsub(c); err != nil {
			return nil, err
		}
		return c, nil
	}

	switch os.Getenv("is_dialer") {
	case "true":
		c.isDialer = true
	case "false":
	default:
		return nil, usageError{fmt.Sprintf("is_dialer=%q: want true or false", os.Getenv("is_dialer"))}
	}

	var err error
	if c.handshakeCount, err = parseCount("handshake_count", 1); err != nil {
		return nil, err
	}
	if c.pingCount, err = parseCount("ping_count", 1); err != nil {
		return nil, err
	}
	if n, ok, err := parseBytes("echo_bytes"); err != nil {
		return nil, err
	} else if ok {
		c.echoBytes = n
	}
	up, okUp, err := parseBytes("perf_upload_bytes")
	if err != nil {
		return nil, err
	}
	down, okDown, err := parseBytes("perf_download_bytes")
	if err != nil {
		return nil, err
	}
	c.doPerf = okUp || okDown
	c.perfUpload, c.perfDownload = up, down
	return c, nil
}

// parseGossipsub reads the gossipsub-mode variables (see CONTRACT.md, "Gossipsub mode").
func parseGossipsub(c *config) error {
	var err error
	if c.gossipsubIndex, err = parseInt("gossipsub_index", 0, true); err != nil {
		return err
	}
	if c.gossipsubPublish, err = parseInt("gossipsub_publish", 1, false); err != nil {
		return err
	}
	if c.gossipsubExpect, err = parseInt("gossipsub_expect", 0, false); err != nil {
		return err
	}
	for _, a := range strings.Split(os.Getenv("gossipsub_connect"), ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, err := parseP2pAddr(a); err != nil {
			return usageError{fmt.Sprintf("gossipsub_connect: %v", err)}
		}
		c.gossipsubConnect = append(c.gossipsubConnect, a)
	}
	return nil
}

// libp2pVersion is the version of github.com/libp2p/go-libp2p linked into this binary.
func libp2pVersion() string { return moduleVersion("github.com/libp2p/go-libp2p") }

// moduleVersion is the version of the module path linked into this binary.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}

func main() {
	log.SetOutput(os.Stderr)
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("go-peer: ")

	cfg, err := parseConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-peer: %v\n", err)
		os.Exit(2)
	}
	switch {
	case cfg.gossipsubTopic != "":
		err = runGossipsub(cfg)
	case cfg.isDialer:
		err = runDialer(cfg)
	default:
		err = runListener(cfg)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-peer: error: %v\n", err)
		os.Exit(1)
	}
}

// describe is a short "tcp/noise/yamux" style label for logs.
func (c *config) describe() string {
	if c.transport == "tcp" {
		return strings.Join([]string{c.transport, c.security, c.muxer}, "/")
	}
	return c.transport
}
