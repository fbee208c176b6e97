package natsbroker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/internal/hubtest"
	"github.com/protows/protows/hub/natsbroker"
	"github.com/protows/protows/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a protows node process for
	// TestJetStreamNodeKilled (nodeproc_test.go).
	if name := os.Getenv(nodeEnv); name != "" {
		os.Exit(runNodeProcess(name, os.Getenv(nodeNATSEnv)))
	}
	goleak.VerifyTestMain(m)
}

type Msg = hubtest.Msg

// startNATS runs an embedded NATS server on loopback; port 0 picks one.
func startNATS(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	if port == 0 {
		port = -1 // nats-server's "any free port"
	}
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s
}

func stopNATS(s *natsserver.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// node is one protows server with its hub, joined to the others by NATS.
type node struct {
	nc  *nats.Conn
	hub *hub.Hub[*Msg]
	url string
}

func startNode(t *testing.T, natsURL, name string, ttl time.Duration, presence func(hub.PresenceEvent) (*Msg, bool)) *node {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0), nats.Name(name),
		// The dead-node test closes connections under the server's feet.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config[*Msg]{
		Broker:            natsbroker.New(nc, natsbroker.Config{Subject: "test.rooms"}),
		Node:              name,
		Logger:            slog.New(slog.DiscardHandler),
		HeartbeatInterval: 25 * time.Millisecond,
		PresenceTTL:       ttl,
		Presence:          presence,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{nc: nc, hub: h}
	t.Cleanup(func() {
		_ = h.Close()
		nc.Close()
	})
	n.url = hubtest.Serve(t, h, transport.Config{})
	return n
}

func waitNodes(t *testing.T, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		deadline := time.Now().Add(5 * time.Second)
		for len(n.hub.Nodes()) != len(nodes)-1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s hears from %v", n.hub.Node(), n.hub.Nodes())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestThreeNodesExactlyOnceInPublisherOrder(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	defer stopNATS(ns)
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, ns.ClientURL(), fmt.Sprintf("n%d", i+1), 5*time.Second, nil))
	}
	waitNodes(t, nodes)
	var clients []*hubtest.Client
	for _, n := range nodes {
		for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
			cl := hubtest.Dial(t, n.url, c)
			cl.Watch(1, "lobby")
			clients = append(clients, cl)
		}
	}
	for _, n := range nodes {
		hubtest.WaitMembers(t, n.hub, "lobby", len(clients))
	}
	const per = 100
	var publishers []string
	var wg sync.WaitGroup
	for i, n := range nodes {
		for p := range 2 {
			name := fmt.Sprintf("n%d-p%d", i+1, p)
			publishers = append(publishers, name)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 1; k <= per; k++ {
					if err := n.hub.Broadcast(context.Background(), "lobby", &Msg{Subject: name, ExpiresAt: int64(k)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for ci, cl := range clients {
		next := map[string]int64{}
		var lastSeq uint64
		for i := 0; i < len(publishers)*per; i++ {
			e, m := cl.NextMsg()
			if want := next[m.GetSubject()] + 1; m.GetExpiresAt() != want {
				t.Fatalf("client %d: from %s got #%d, want #%d", ci, m.GetSubject(), m.GetExpiresAt(), want)
			}
			next[m.GetSubject()] = m.GetExpiresAt()
			if lastSeq != 0 && e.GetSeq() != lastSeq+1 {
				t.Fatalf("client %d: seq %d after %d without a loss", ci, e.GetSeq(), lastSeq)
			}
			lastSeq = e.GetSeq()
		}
		// Exactly once: nothing more arrives.
		if e, err := cl.Next(100 * time.Millisecond); err == nil {
			t.Fatalf("client %d: extra envelope %v", ci, e)
		}
	}
}

func TestDeadNodeTakesItsPresence(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	defer stopNATS(ns)
	left := make(chan string, 100)
	var nodes []*node
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		presence := func(ev hub.PresenceEvent) (*Msg, bool) {
			if !ev.Joined {
				select {
				case left <- name + " saw " + ev.Member.Node + "/" + ev.Member.Room + " leave":
				default:
				}
			}
			return nil, false
		}
		nodes = append(nodes, startNode(t, ns.ClientURL(), name, time.Second, presence))
	}
	waitNodes(t, nodes)
	for _, n := range nodes {
		cl := hubtest.Dial(t, n.url, codec.Proto())
		cl.Watch(1, "lobby")
	}
	for _, n := range nodes {
		hubtest.WaitMembers(t, n.hub, "lobby", 3)
	}
	// n3 loses its NATS connection for good, as when its process dies: no
	// goodbye, no more heartbeats.
	nodes[2].nc.Close()
	for _, n := range nodes[:2] {
		hubtest.WaitMembers(t, n.hub, "lobby", 2)
		for _, m := range n.hub.Members("lobby") {
			if m.Node == "n3" {
				t.Errorf("%s still lists %s", n.hub.Node(), m.ID())
			}
		}
	}
	// n1 and n2 each saw n3's member leave, and nobody else. (n3, cut
	// off, sees everyone else leave: it is not asked.)
	got := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for !got["n1 saw n3/lobby leave"] || !got["n2 saw n3/lobby leave"] {
		select {
		case ev := <-left:
			got[ev] = true
		case <-deadline:
			t.Fatalf("leave events: %v", got)
		}
	}
	for ev := range got {
		if !strings.HasPrefix(ev, "n3 ") && !strings.HasSuffix(ev, "n3/lobby leave") {
			t.Errorf("unexpected %q", ev)
		}
	}
}

func TestNATSRestartIsSurvivedAndGapsShow(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	port := ns.Addr().(*net.TCPAddr).Port
	url := ns.ClientURL()
	pub := startNode(t, url, "n1", 5*time.Second, nil)
	sub := startNode(t, url, "n2", 5*time.Second, nil)
	waitNodes(t, []*node{pub, sub})
	cl := hubtest.Dial(t, sub.url, codec.JSON())
	cl.Watch(1, "r")
	hubtest.WaitMembers(t, pub.hub, "r", 1)

	type got struct {
		n   int64
		seq uint64
	}
	var recv []got
	read := func() got {
		e, m := cl.NextMsg()
		g := got{m.GetExpiresAt(), e.GetSeq()}
		recv = append(recv, g)
		return g
	}
	k := int64(0) // written by one goroutine at a time: before, then during the broadcaster's life
	bcast := func() {
		k++
		if err := pub.hub.Broadcast(context.Background(), "r", &Msg{ExpiresAt: k}); err != nil {
			t.Error(err)
		}
	}
	bcast()
	read()

	stopNATS(ns)
	for range 5 { // during the outage: buffered by nats.go, maybe lost
		bcast()
	}
	ns = startNATS(t, port)
	defer stopNATS(ns)
	for _, n := range []*node{pub, sub} {
		deadline := time.Now().Add(5 * time.Second)
		for n.nc.Status() != nats.CONNECTED {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not reconnect: %v", n.hub.Node(), n.nc.Status())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Broadcast until the subscriber is reached again: the first
	// broadcasts after the restart may pass the subscriber's subscription,
	// which nats.go sends again on its own connection.
	after := k + 1
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			bcast()
		}
	}()
	for g := read(); g.n < after; g = read() {
	}
	close(stop)
	<-stopped
	// Every message that was lost shows as a skipped sequence number.
	for i := 1; i < len(recv); i++ {
		lost := recv[i].n - recv[i-1].n - 1
		skipped := int64(recv[i].seq - recv[i-1].seq - 1)
		if recv[i].n <= recv[i-1].n {
			t.Fatalf("message #%d after #%d", recv[i].n, recv[i-1].n)
		}
		if lost > 0 && skipped == 0 {
			t.Errorf("%d messages lost before #%d but the sequence went %d -> %d", lost, recv[i].n, recv[i-1].seq, recv[i].seq)
		}
	}
	t.Logf("received (message, seq): %v", recv)
	// Presence survives too.
	hubtest.WaitMembers(t, pub.hub, "r", 1)
}

// TestBacklogCountsWaitingAndReceiving: the backlog a hub reads to tell a
// node that is behind from one that is dead counts the message being
// received as well as those waiting.
func TestBacklogCountsWaitingAndReceiving(t *testing.T) {
	t.Parallel()
	s := startNATS(t, 0)
	defer stopNATS(s)
	var ncs []*nats.Conn
	for range 2 {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		ncs = append(ncs, nc)
	}
	b := natsbroker.New(ncs[0], natsbroker.Config{Subject: "test.backlog"}).(hub.BacklogBroker)
	if n := b.Backlog(); n != 0 {
		t.Errorf("backlog before Open = %d", n)
	}
	release := make(chan struct{})
	entered := make(chan struct{}, 3)
	if err := b.Open(context.Background(), "n1", func([]byte) {
		entered <- struct{}{}
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	for i := range 3 {
		if err := ncs[1].Publish("test.backlog", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ncs[1].Flush(); err != nil {
		t.Fatal(err)
	}
	<-entered
	waitBacklog(t, b, 3) // one in receive, two waiting
	close(release)
	waitBacklog(t, b, 0)
}

func waitBacklog(t *testing.T, b hub.BacklogBroker, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Backlog() != want {
		if time.Now().After(deadline) {
			t.Fatalf("backlog %d, want %d", b.Backlog(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
