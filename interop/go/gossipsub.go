package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/redis/go-redis/v9"
)

const (
	queueSize = 4096                  // pubsub's per-peer outbound, validation and subscription queues
	readyPoll = 10 * time.Millisecond // how often to look for a topic peer
)

// gossipResult is the gossipsub-mode JSON line (see interop/CONTRACT.md).
type gossipResult struct {
	Implementation string   `json:"implementation"`
	GossipsubIndex int      `json:"gossipsubIndex"`
	PeerID         string   `json:"peerId"`
	Published      int      `json:"published"`
	Received       int      `json:"received"`
	Expected       int      `json:"expected"`
	ReceivedData   []string `json:"receivedData"`
	Seconds        float64  `json:"seconds"`
}

// inbox collects the distinct messages that other nodes published.
type inbox struct {
	mu      sync.Mutex
	expect  int
	ids     map[string]bool // message ids (from + seqno)
	data    map[string]bool
	reached chan struct{} // closed once expect messages have arrived
	last    time.Time     // when the expect-th one arrived (zero if expect is 0)
}

func newInbox(expect int) *inbox {
	b := &inbox{expect: expect, ids: map[string]bool{}, data: map[string]bool{}, reached: make(chan struct{})}
	if expect == 0 {
		close(b.reached)
	}
	return b
}

// add records a message; it returns how many distinct messages have arrived and
// whether this one was already known.
func (b *inbox) add(id, data string) (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ids[id] {
		return len(b.ids), true
	}
	b.ids[id] = true
	b.data[data] = true
	if len(b.ids) == b.expect {
		b.last = time.Now()
		close(b.reached)
	}
	return len(b.ids), false
}

// fill copies what has arrived into res; seconds run from goTime (zero: the token never
// came) to the expect-th message.
func (b *inbox) fill(res *gossipResult, goTime time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	res.Received = len(b.ids)
	res.ReceivedData = make([]string, 0, len(b.data))
	for d := range b.data {
		res.ReceivedData = append(res.ReceivedData, d)
	}
	slices.Sort(res.ReceivedData)
	res.Seconds = 0
	if !goTime.IsZero() && b.last.After(goTime) {
		res.Seconds = b.last.Sub(goTime).Seconds()
	}
}

// parseP2pAddr parses a full multiaddr ending in /p2p/<id>.
func parseP2pAddr(s string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("bad multiaddr %q: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, fmt.Errorf("bad multiaddr %q: %w", s, err)
	}
	return ai, nil
}

// runGossipsub is the gossipsub mode of CONTRACT.md: join a network of nodes that the
// runner starts one after another, publish, and report what arrived from the others.
func runGossipsub(cfg *config) error {
	tctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	// ctx ends on the timeout or on SIGTERM/SIGINT; tctx.Err() tells which.
	ctx, stop := signal.NotifyContext(tctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

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

	// The router lives until we return (it keeps forwarding after the report).
	psCtx, psCancel := context.WithCancel(context.Background())
	defer psCancel()
	// Queues large enough for a burst of publishes (the runner's publish-rate runs send
	// hundreds back to back; go's default of 32 per peer would drop them).
	opts := []pubsub.Option{
		pubsub.WithPeerOutboundQueueSize(queueSize),
		pubsub.WithValidateQueueSize(queueSize),
	}
	if os.Getenv("GOSSIPSUB_TRACE") != "" { // every RPC event on stderr: slow, for debugging
		opts = append(opts, pubsub.WithEventTracer(traceLogger{}))
	}
	ps, err := pubsub.NewGossipSub(psCtx, h, opts...)
	if err != nil {
		return fmt.Errorf("start gossipsub: %w", err)
	}

	res := &gossipResult{
		Implementation: "go-libp2p " + libp2pVersion(),
		GossipsubIndex: cfg.gossipsubIndex,
		PeerID:         h.ID().String(),
		Expected:       cfg.gossipsubExpect,
		ReceivedData:   []string{},
	}
	box := newInbox(cfg.gossipsubExpect)
	var goTime time.Time
	var once sync.Once
	report := func() {
		once.Do(func() {
			box.fill(res, goTime)
			line, err := json.Marshal(res)
			if err != nil {
				log.Printf("marshal result: %v", err)
				return
			}
			fmt.Fprintf(os.Stdout, "%s\n", line)
		})
	}
	// abort reports what arrived when the run ends early (timeout or signal).
	abort := func(stage string) error {
		report()
		if tctx.Err() != nil {
			return fmt.Errorf("test_timeout_seconds (%s) reached while %s (%d/%d messages)",
				cfg.timeout, stage, res.Received, res.Expected)
		}
		return fmt.Errorf("interrupted while %s (%d/%d messages)", stage, res.Received, res.Expected)
	}

	addr, err := fullListenAddr(cfg, h)
	if err != nil {
		return err
	}
	if err := rdb.RPush(ctx, "gossipsubPeers", addr).Err(); err != nil {
		return fmt.Errorf("redis RPUSH gossipsubPeers: %w", err)
	}
	log.Printf("gossipsub node %d (%s, go-libp2p %s, go-libp2p-pubsub %s) on %s",
		cfg.gossipsubIndex, cfg.describe(), libp2pVersion(), moduleVersion(pubsubModule), addr)

	for _, a := range cfg.gossipsubConnect {
		ai, err := parseP2pAddr(a)
		if err != nil {
			return err
		}
		if err := h.Connect(ctx, *ai); err != nil {
			if ctx.Err() != nil {
				return abort("dialing " + a)
			}
			return fmt.Errorf("dial %s: %w", a, err)
		}
		log.Printf("connected to %s", a)
	}

	topic, err := ps.Join(cfg.gossipsubTopic)
	if err != nil {
		return fmt.Errorf("join %q: %w", cfg.gossipsubTopic, err)
	}
	events, err := topic.EventHandler()
	if err != nil {
		return fmt.Errorf("topic events: %w", err)
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(queueSize))
	if err != nil {
		return fmt.Errorf("subscribe %q: %w", cfg.gossipsubTopic, err)
	}
	log.Printf("subscribed to %q", cfg.gossipsubTopic)

	go watchTopicPeers(psCtx, events)
	go receiveMessages(psCtx, sub, h.ID(), box)

	// Ready once a topic peer is also one we have a pubsub stream to (ListPeers); the
	// join event alone can come first, from the peer's stream, before ours is set up.
	for len(topic.ListPeers()) == 0 {
		select {
		case <-time.After(readyPoll):
		case <-ctx.Done():
			return abort("waiting for a peer in the topic")
		}
	}
	if err := rdb.RPush(ctx, "gossipsubReady", cfg.gossipsubIndex).Err(); err != nil {
		return fmt.Errorf("redis RPUSH gossipsubReady: %w", err)
	}
	log.Printf("ready; topic peers %d", len(topic.ListPeers()))

	// go-redis does not interrupt a blocking BLPOP on context cancellation, so wait for
	// it beside the context. BLPOP's timeout is whole seconds: ask again until the
	// deadline (the context ends the wait on time).
	blpop := make(chan error, 1)
	go func() {
		for {
			wait := time.Until(deadlineOf(tctx)).Truncate(time.Second)
			if wait < time.Second {
				wait = time.Second
			}
			_, err := rdb.BLPop(ctx, wait, "gossipsubGo").Result()
			if errors.Is(err, redis.Nil) && ctx.Err() == nil {
				continue
			}
			blpop <- err
			return
		}
	}()
	select {
	case err := <-blpop:
		if err != nil && ctx.Err() != nil {
			return abort("waiting for gossipsubGo")
		}
		if err != nil {
			return fmt.Errorf("redis BLPOP gossipsubGo: %w", err)
		}
	case <-ctx.Done():
		return abort("waiting for gossipsubGo")
	}
	goTime = time.Now()
	log.Printf("go; topic peers %d", len(topic.ListPeers()))

	for i := 0; i < cfg.gossipsubPublish; i++ {
		data := fmt.Sprintf("%d:%d", cfg.gossipsubIndex, i)
		if err := topic.Publish(ctx, []byte(data)); err != nil {
			if ctx.Err() != nil {
				return abort("publishing")
			}
			return fmt.Errorf("publish %q: %w", data, err)
		}
		res.Published++
	}

	select {
	case <-box.reached:
	case <-ctx.Done():
		return abort("receiving")
	}
	report()
	log.Printf("received %d/%d messages in %.3f s; serving until SIGTERM",
		res.Received, res.Expected, res.Seconds)

	<-ctx.Done()
	if tctx.Err() != nil {
		return fmt.Errorf("test_timeout_seconds (%s) reached", cfg.timeout)
	}
	log.Printf("got a signal, exiting")
	return nil
}

// watchTopicPeers logs peers joining and leaving the topic.
func watchTopicPeers(ctx context.Context, events *pubsub.TopicEventHandler) {
	defer events.Cancel()
	for {
		ev, err := events.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		switch ev.Type {
		case pubsub.PeerJoin:
			log.Printf("topic: peer %s joined", ev.Peer)
		case pubsub.PeerLeave:
			log.Printf("topic: peer %s left", ev.Peer)
		}
	}
}

// receiveMessages feeds the messages of other nodes into box (go-libp2p-pubsub also
// delivers our own publishes to our subscription; they do not count).
func receiveMessages(ctx context.Context, sub *pubsub.Subscription, self peer.ID, box *inbox) {
	defer sub.Cancel()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		from := msg.GetFrom()
		if from == self {
			continue
		}
		n, dup := box.add(msg.ID, string(msg.GetData()))
		note := ""
		if dup {
			note = " (again)"
		}
		log.Printf("received %q%s: origin %s seqno %d via %s; %d/%d",
			msg.GetData(), note, shortID(from), seqno(msg.GetSeqno()), shortID(msg.ReceivedFrom),
			n, box.expect)
	}
}

const pubsubModule = "github.com/libp2p/go-libp2p-pubsub"

func seqno(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// shortID is the tail of a peer id, as go-libp2p's ShortString shows it.
func shortID(p peer.ID) string {
	s := p.String()
	if len(s) > 6 {
		return "*" + s[len(s)-6:]
	}
	return s
}

func shortIDBytes(b []byte) string {
	p, err := peer.IDFromBytes(b)
	if err != nil {
		return hex.EncodeToString(b)
	}
	return shortID(p)
}

// msgID shows a default message id (from + seqno) as origin/seqno.
func msgID(id []byte) string {
	if len(id) > 8 {
		if p, err := peer.IDFromBytes(id[:len(id)-8]); err == nil {
			return fmt.Sprintf("%s/%d", shortID(p), binary.BigEndian.Uint64(id[len(id)-8:]))
		}
	}
	return hex.EncodeToString(id)
}

func msgIDs(ids [][]byte) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = msgID(id)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// traceLogger writes go-libp2p-pubsub's trace events that matter for interop (pubsub
// streams and their protocol, mesh changes, rejected and duplicate messages, non-empty
// RPCs) to stderr.
type traceLogger struct{}

func (traceLogger) Trace(evt *pubsubpb.TraceEvent) {
	switch evt.GetType() {
	case pubsubpb.TraceEvent_ON_NEW_OUTBOUND_STREAM:
		e := evt.GetOnNewOutboundStream()
		log.Printf("trace: pubsub stream to %s: %s", shortIDBytes(e.GetPeerID()), e.GetProto())
	case pubsubpb.TraceEvent_ON_CLOSED_OUTBOUND_STREAM:
		log.Printf("trace: pubsub stream to %s closed", shortIDBytes(evt.GetOnClosedOutboundStream().GetPeerID()))
	case pubsubpb.TraceEvent_REJECT_MESSAGE:
		e := evt.GetRejectMessage()
		log.Printf("trace: REJECTED message %s via %s: %s",
			msgID(e.GetMessageID()), shortIDBytes(e.GetReceivedFrom()), e.GetReason())
	case pubsubpb.TraceEvent_DUPLICATE_MESSAGE:
		e := evt.GetDuplicateMessage()
		log.Printf("trace: duplicate message %s via %s", msgID(e.GetMessageID()), shortIDBytes(e.GetReceivedFrom()))
	case pubsubpb.TraceEvent_GRAFT:
		e := evt.GetGraft()
		log.Printf("trace: mesh %q + %s", e.GetTopic(), shortIDBytes(e.GetPeerID()))
	case pubsubpb.TraceEvent_PRUNE:
		e := evt.GetPrune()
		log.Printf("trace: mesh %q - %s", e.GetTopic(), shortIDBytes(e.GetPeerID()))
	case pubsubpb.TraceEvent_RECV_RPC:
		e := evt.GetRecvRPC()
		if s := rpcSummary(e.GetMeta()); s != "" {
			log.Printf("trace: rpc <- %s: %s", shortIDBytes(e.GetReceivedFrom()), s)
		}
	case pubsubpb.TraceEvent_SEND_RPC:
		e := evt.GetSendRPC()
		if s := rpcSummary(e.GetMeta()); s != "" {
			log.Printf("trace: rpc -> %s: %s", shortIDBytes(e.GetSendTo()), s)
		}
	case pubsubpb.TraceEvent_DROP_RPC:
		e := evt.GetDropRPC()
		log.Printf("trace: DROPPED rpc to %s: %s", shortIDBytes(e.GetSendTo()), rpcSummary(e.GetMeta()))
	}
}

// rpcSummary is a one-line description of an RPC, empty for an empty one.
func rpcSummary(m *pubsubpb.TraceEvent_RPCMeta) string {
	var parts []string
	for _, s := range m.GetSubscription() {
		sign := "-"
		if s.GetSubscribe() {
			sign = "+"
		}
		parts = append(parts, fmt.Sprintf("sub %s%q", sign, s.GetTopic()))
	}
	if msgs := m.GetMessages(); len(msgs) > 0 {
		ids := make([][]byte, len(msgs))
		for i, mm := range msgs {
			ids[i] = mm.GetMessageID()
		}
		parts = append(parts, "publish "+msgIDs(ids))
	}
	c := m.GetControl()
	for _, x := range c.GetIhave() {
		parts = append(parts, fmt.Sprintf("ihave %q %s", x.GetTopic(), msgIDs(x.GetMessageIDs())))
	}
	for _, x := range c.GetIwant() {
		parts = append(parts, "iwant "+msgIDs(x.GetMessageIDs()))
	}
	for _, x := range c.GetGraft() {
		parts = append(parts, fmt.Sprintf("graft %q", x.GetTopic()))
	}
	for _, x := range c.GetPrune() {
		parts = append(parts, fmt.Sprintf("prune %q (px %d)", x.GetTopic(), len(x.GetPeers())))
	}
	for _, x := range c.GetIdontwant() {
		parts = append(parts, "idontwant "+msgIDs(x.GetMessageIDs()))
	}
	return strings.Join(parts, ", ")
}
