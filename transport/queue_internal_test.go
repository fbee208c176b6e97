package transport

import (
	"errors"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
)

// TestQueueByteBound: the bytes held for a connection, queued and being
// written, never exceed MaxQueueBytes, except for one envelope taken when
// nothing is held. (The bound was about twice the limit when only the
// queue, not the batch being written, had to be empty.)
func TestQueueByteBound(t *testing.T) {
	t.Parallel()
	const limit = 100
	for _, tc := range []struct {
		name            string
		inWrite, queued int // bytes being written, bytes queued before
		size            int // the envelope queued
		ok              bool
	}{
		{"nothing held: any one envelope", 0, 0, 5 * limit, true},
		{"up to the limit", 40, 50, 10, true},
		{"beyond the limit", 40, 50, 11, false},
		{"queue empty, batch being written", 80, 0, 30, false},
		{"queue empty, batch being written, fits", 80, 0, 20, true},
		{"a large envelope is held: nothing more", 5 * limit, 0, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := bareConn()
			c.srv.cfg.MaxQueueBytes = limit
			c.w.inWrite = int64(tc.inWrite)
			if tc.queued > 0 {
				if err := c.Enqueue(make([]byte, tc.queued)); err != nil {
					t.Fatal(err)
				}
			}
			err := c.Enqueue(make([]byte, tc.size))
			if tc.ok != (err == nil) {
				t.Fatalf("Enqueue = %v, want success %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrSlowConsumer) {
				t.Fatalf("Enqueue = %v, want ErrSlowConsumer", err)
			}
			c.mu.Lock()
			held := c.w.queued + c.w.inWrite
			c.mu.Unlock()
			if err == nil && held > limit && held != int64(tc.size) {
				t.Fatalf("%d bytes held, limit %d", held, limit)
			}
		})
	}
}

// TestAnswerWaitsForRoom: an answer that does not fit waits until the
// writer took the queue (or the connection closes), where anything else
// closes the connection with 4008.
func TestAnswerWaitsForRoom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		release func(c *Conn)
		want    error
		queued  int
	}{
		{"the writer takes the queue", func(c *Conn) {
			c.mu.Lock()
			c.w.queue, c.w.queued = nil, 0
			c.wakeLocked()
			c.mu.Unlock()
		}, nil, 1},
		{"the connection closes", func(c *Conn) { c.closeNow(protows.CloseGoingAway, "bye") }, ErrClosed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := bareConn()
			c.srv.cfg.SendQueue = 2
			for range 2 {
				if err := c.Enqueue([]byte("q")); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- c.enqueue(codec.Parts{Body: []byte("answer")}, true) }()
			select {
			case err := <-done:
				t.Fatalf("the answer did not wait: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			tc.release(c)
			if err := <-done; !errors.Is(err, tc.want) {
				t.Fatalf("enqueue = %v, want %v", err, tc.want)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.w.queue) != tc.queued {
				t.Fatalf("%d queued, want %d", len(c.w.queue), tc.queued)
			}
		})
	}
}

// TestOneEnvelopeFrame: a frame of one envelope is as long as the
// envelope, in both codecs: the size limit the send queue applies to an
// envelope is the size of the message it goes out in.
func TestOneEnvelopeFrame(t *testing.T) {
	t.Parallel()
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		for _, n := range []int{0, 1, 127, 128, 16384, 1 << 20} {
			elem := make([]byte, n)
			if got := len(codec.AppendFrame(cd, nil, elem)); got != n {
				t.Errorf("%s: a frame of one %d-byte envelope has %d bytes", cd.Name(), n, got)
			}
		}
	}
}

// TestTruncateUTF8 cuts at a rune boundary.
func TestTruncateUTF8(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 2, "ab"},
		{"éé", 3, "é"},
		{"éé", 2, "é"},
		{"€", 2, ""},
	} {
		if got := truncateUTF8(tc.s, tc.n); got != tc.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
