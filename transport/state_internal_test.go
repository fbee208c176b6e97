package transport

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
)

// TestConnStateTransitions is the transition table of connState: every
// pair of states, and whether the connection may move from one to the
// other.
func TestConnStateTransitions(t *testing.T) {
	t.Parallel()
	states := []connState{stateOpen, stateDraining, stateClosingFlush, stateClosingNow, stateClosed, stateEnded}
	allowed := map[connState][]connState{
		stateOpen:         {stateDraining, stateClosingFlush, stateClosingNow, stateClosed},
		stateDraining:     {stateClosingFlush, stateClosingNow, stateClosed},
		stateClosingFlush: {stateClosingNow, stateClosed},
		stateClosingNow:   {stateClosed},
		stateClosed:       {stateEnded},
		stateEnded:        nil,
	}
	for _, from := range states {
		for _, to := range states {
			want := false
			for _, a := range allowed[from] {
				want = want || a == to
			}
			if got := from.canBecome(to); got != want {
				t.Errorf("%v -> %v allowed = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestConnStateNames(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for s := stateOpen; s <= stateEnded; s++ {
		name := s.String()
		if name == "" || seen[name] {
			t.Errorf("state %d has the name %q, empty or taken", uint8(s), name)
		}
		seen[name] = true
	}
	if got := connState(42).String(); got != "connState(42)" {
		t.Errorf("unknown state = %q", got)
	}
	for s, want := range map[connState]bool{
		stateOpen: false, stateDraining: false, stateClosingFlush: true,
		stateClosingNow: true, stateClosed: true, stateEnded: true,
	} {
		if got := s.closeDecided(); got != want {
			t.Errorf("%v.closeDecided() = %v, want %v", s, got, want)
		}
	}
}

// bareConn returns a connection with no socket and no goroutine: its
// writer is stopped, as after finish, so that the close decisions can be
// followed in its state alone.
func bareConn() *Conn {
	srv := &Server{cfg: Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}.withDefaults()}
	c := &Conn{srv: srv, id: "test", codec: codec.Proto()}
	c.w.stopped = true
	return c
}

// TestCloseDecisions drives a connection through the close decisions and
// checks where each sequence leaves it: its state, the close code it would
// send, whether its queue was kept, and whether it still queues.
func TestCloseDecisions(t *testing.T) {
	t.Parallel()
	closeFlush := func(code protows.CloseCode) func(*Conn) {
		return func(c *Conn) { c.Close(code, fmt.Sprint(code)) }
	}
	closeNow := func(code protows.CloseCode) func(*Conn) {
		return func(c *Conn) { c.closeNow(code, fmt.Sprint(code)) }
	}
	enqueue := func(c *Conn) { _ = c.Enqueue([]byte("x")) }
	tests := []struct {
		name      string
		running   int // handlers running when the steps start
		steps     []func(*Conn)
		state     connState
		code      protows.CloseCode
		queued    int
		enqueueOK bool // whether Enqueue succeeds afterwards
	}{
		{"open", 0, nil, stateOpen, 0, 0, true},
		{"flushed close keeps the queue", 0, []func(*Conn){enqueue, closeFlush(4100)}, stateClosingFlush, 4100, 1, false},
		{"immediate close drops the queue", 0, []func(*Conn){enqueue, closeNow(4100)}, stateClosingNow, 4100, 0, false},
		{"first flushed close wins", 0, []func(*Conn){closeFlush(4100), closeFlush(4200)}, stateClosingFlush, 4100, 0, false},
		{"immediate overrides flushed", 0, []func(*Conn){enqueue, closeFlush(4100), closeNow(4200)}, stateClosingNow, 4200, 0, false},
		{"flushed does not override immediate", 0, []func(*Conn){closeNow(4100), closeFlush(4200)}, stateClosingNow, 4100, 0, false},
		{"first immediate close wins", 0, []func(*Conn){closeNow(4100), closeNow(4200)}, stateClosingNow, 4100, 0, false},
		{"no override once the close frame is out", 0, []func(*Conn){closeFlush(4100), func(c *Conn) { c.closeSent.Store(true) }, closeNow(4200)}, stateClosingFlush, 4100, 0, false},
		{"idle drain closes at once", 0, []func(*Conn){(*Conn).drain}, stateClosingFlush, protows.CloseGoingAway, 0, false},
		{"busy drain waits, still queues", 1, []func(*Conn){(*Conn).drain, enqueue}, stateDraining, 0, 1, true},
		{"drain closes when the last handler returns", 2, []func(*Conn){(*Conn).drain, (*Conn).handlerDone, (*Conn).handlerDone}, stateClosingFlush, protows.CloseGoingAway, 0, false},
		{"first drain's code wins", 1, []func(*Conn){(*Conn).drain, (*Conn).shed, (*Conn).handlerDone}, stateClosingFlush, protows.CloseGoingAway, 0, false},
		{"shed closes with 1013", 1, []func(*Conn){(*Conn).shed, (*Conn).handlerDone}, stateClosingFlush, protows.CloseTryAgainLater, 0, false},
		{"close while draining", 1, []func(*Conn){(*Conn).drain, closeNow(4100), (*Conn).handlerDone}, stateClosingNow, 4100, 0, false},
		{"drain after a close changes nothing", 0, []func(*Conn){closeFlush(4100), (*Conn).drain}, stateClosingFlush, 4100, 0, false},
		{"nothing after closed", 0, []func(*Conn){enqueue, func(c *Conn) {
			c.mu.Lock()
			c.setStateLocked(stateClosed)
			c.mu.Unlock()
		}, closeNow(4100), (*Conn).drain}, stateClosed, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bareConn()
			c.running = tt.running
			c.srv.calls.Add(int64(tt.running))
			c.handlersWG.Add(tt.running)
			for _, step := range tt.steps {
				step(c)
			}
			c.mu.Lock()
			state, code, queued := c.state, c.code, len(c.w.queue)
			c.mu.Unlock()
			if state != tt.state || code != tt.code || queued != tt.queued {
				t.Errorf("state %v, code %d, %d queued; want %v, %d, %d", state, code, queued, tt.state, tt.code, tt.queued)
			}
			err := c.Enqueue([]byte("y"))
			if tt.enqueueOK != (err == nil) {
				t.Errorf("Enqueue afterwards = %v, want success %v", err, tt.enqueueOK)
			}
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("Enqueue afterwards = %v, want ErrClosed", err)
			}
		})
	}
}

// TestSlowConsumerClosesNow: an overflowing queue closes the connection
// at once with 4008, dropping what was queued.
func TestSlowConsumerClosesNow(t *testing.T) {
	t.Parallel()
	c := bareConn()
	c.srv.cfg.SendQueue = 2
	for i := range 2 {
		if err := c.EnqueueParts(codec.Parts{Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Enqueue([]byte("over")); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Enqueue over the limit = %v, want ErrSlowConsumer", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateClosingNow || c.code != protows.CloseSlowConsumer || len(c.w.queue) != 0 {
		t.Errorf("state %v, code %d, %d queued; want closing (immediate), 4008, 0", c.state, c.code, len(c.w.queue))
	}
}
