package hub

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestMemoryNetwork(t *testing.T) {
	t.Parallel()
	net := NewMemoryNetwork()
	net.queue = 4
	a, b, c := net.Broker(), net.Broker(), net.Broker()
	ctx := context.Background()
	gotB := make(chan string, 100)
	block := make(chan struct{})
	if err := a.Open(ctx, "a", func([]byte) { t.Error("a received its own message") }); err != nil {
		t.Fatal(err)
	}
	if err := a.Open(ctx, "a", func([]byte) {}); err == nil {
		t.Error("a second Open succeeded")
	}
	if err := b.Open(ctx, "b", func(m []byte) { gotB <- string(m) }); err != nil {
		t.Fatal(err)
	}
	// c blocks in its first delivery until block closes: its queue of 4
	// fills behind it.
	entered := make(chan struct{}, 1)
	if err := c.Open(ctx, "c", func([]byte) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-block
	}); err != nil {
		t.Fatal(err)
	}
	msg := []byte("m0")
	for i := range 10 {
		msg[1] = byte('0' + i)
		if err := a.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-entered
		}
		select {
		case m := <-gotB:
			if want := string([]byte{'m', byte('0' + i)}); m != want {
				t.Fatalf("b got %q, want %q (in order)", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("b did not get every message")
		}
	}
	// c holds one message in its callback and 4 in its queue; 5 dropped.
	if d := c.(*memoryBroker).dropped.Load(); d != 5 {
		t.Errorf("c dropped %d messages, want 5", d)
	}
	close(block)
	for _, br := range []Broker{a, b, c} {
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Publish(ctx, msg); !errors.Is(err, ErrBrokerClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
}

// TestMemoryBacklog: the memory broker counts the messages queued to a hub
// and the one it is receiving.
func TestMemoryBacklog(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		net := NewMemoryNetwork()
		from, to := net.Broker(), net.Broker().(BacklogBroker)
		release := make(chan struct{})
		if err := to.Open(context.Background(), "to", func([]byte) { <-release }); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = to.Close() }()
		for range 3 {
			if err := from.Publish(context.Background(), []byte("m")); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if n := to.Backlog(); n != 3 {
			t.Errorf("backlog %d, want 3 (one received, two queued)", n)
		}
		close(release)
		synctest.Wait()
		if n := to.Backlog(); n != 0 {
			t.Errorf("backlog %d after receiving, want 0", n)
		}
	})
}
