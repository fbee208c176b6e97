package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// echoTimeout bounds each read and write of Echoers, so that a stuck
// server fails a repetition instead of hanging it.
const echoTimeout = 10 * time.Second

// EchoFrames says what Echoers send and how they count the replies.
type EchoFrames struct {
	// Frame is the request, encoded once. Each connection writes a copy
	// of its own.
	Frame []byte
	// Type is the WebSocket message type of Frame and of the replies.
	Type int
	// SetID, when not nil, writes the id of the seq-th request of a
	// connection into its copy of Frame, in place, before it is sent: for
	// protocols whose calls in flight need ids of their own.
	SetID func(frame []byte, seq uint64)
	// Count counts the replies of a frame; Min is the fewest bytes a
	// reply has (a shorter message, such as a ping, is not one).
	Count CountFunc
	Min   int
	// Size is the payload bytes of a request, and of its reply.
	Size int
}

// Echoers are minimal echo clients for the server-bound echo scenario
// (serverecho): plain WebSocket connections, each of which writes the same
// pre-encoded request frame again and again, window requests in flight,
// and counts the replies in each frame it reads without decoding them,
// sending one request for each reply counted. So the client does little
// but move bytes, and the server, which decodes each request and encodes
// its reply, is what limits the rate. Echoers are a Load; make them with
// DialEchoers.
//
// Paced echoers (DialPacedEchoers) send open loop instead, on the
// Schedules of a Paced scenario: each request goes out at its due time
// whatever the replies do, and its latency runs from that due time.
type Echoers struct {
	conns  []*websocket.Conn
	frames EchoFrames
	window int
	paced  *Params // the rate of paced echoers; nil for a closed loop
}

var _ Load = (*Echoers)(nil)

// DialEchoers opens n connections to url offering subprotocol (none when
// empty), each to keep window requests in flight.
func DialEchoers(ctx context.Context, url, subprotocol string, n, window int, frames EchoFrames) (*Echoers, error) {
	e := &Echoers{frames: frames, window: max(window, 1)}
	if err := e.dial(ctx, url, subprotocol, n); err != nil {
		return nil, err
	}
	return e, nil
}

// PacedEchoWindow is the requests one connection of paced echoers may
// have in flight: far more than a rate the server keeps up with needs
// (Little: rate × latency), the same as the callers of each connection of
// protows's paced echo, and below the server's in-flight limit.
const PacedEchoWindow = 64

// DialPacedEchoers opens p.Conns connections to url offering subprotocol
// (none when empty) for paced echo: together they send p.Rate requests per
// second, each connection its share on its own Schedule (see Schedules),
// with up to PacedEchoWindow requests in flight. A request that is due
// while its connection's window is full waits for a reply, and its latency,
// measured from its due time, counts the wait, as a paced run's must.
//
// The replies are not decoded, so they cannot be matched to their
// requests: as for closed-loop Echoers, each reply counted is taken as the
// answer to the oldest request still waiting, and its latency runs from
// that request's due time. With a server that answers in order (raw
// gorilla echo) that is exact. With one that may answer out of order and
// batch replies in a frame (protows), a reply that overtakes an older
// request is recorded with the older one's due time, and the older one's
// reply, later, with a younger due time: the latency of the k-th reply on
// a connection runs from the k-th due time. So a reply that is late is
// charged to the oldest request, never hidden, and the percentiles differ
// from those of exact matching only by the reordering among replies in
// flight together.
func DialPacedEchoers(ctx context.Context, url, subprotocol string, p Params, frames EchoFrames) (*Echoers, error) {
	if _, err := Schedules(p, p.Conns, time.Now()); err != nil {
		return nil, err
	}
	e := &Echoers{frames: frames, window: PacedEchoWindow, paced: &p}
	if err := e.dial(ctx, url, subprotocol, p.Conns); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Echoers) dial(ctx context.Context, url, subprotocol string, n int) error {
	for range n {
		// A request goes out in one WebSocket frame.
		conn, err := dialWS(ctx, url, subprotocol, max(len(e.frames.Frame), 4096))
		if err != nil {
			return errors.Join(fmt.Errorf("harness: echoer %d: %w", len(e.conns), err), e.Close())
		}
		e.conns = append(e.conns, conn)
	}
	return nil
}

// Run sends requests on every connection until ctx is done, then waits for
// the replies of those in flight. Paced echoers' schedules start now.
func (e *Echoers) Run(ctx context.Context, rec *Recorder) error {
	schedules := make([]*Schedule, len(e.conns))
	if e.paced != nil {
		var err error
		if schedules, err = Schedules(*e.paced, len(e.conns), time.Now()); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(e.conns))
	for i, conn := range e.conns {
		series := rec.Series()
		wg.Go(func() { errs[i] = e.runConn(ctx, conn, schedules[i], series) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runConn pipelines requests on one connection: a writer sends while it
// holds one of window slots and queues each send time; the reader matches
// each reply counted to the oldest send time (the latency is the oldest
// request's, as replies may come in another order) and frees a slot. With
// a schedule (paced echoers) the writer sends each request once it is due
// and has a slot, and queues its due time in place of the send time.
func (e *Echoers) runConn(ctx context.Context, conn *websocket.Conn, sched *Schedule, series *Series) error {
	frame := slices.Clone(e.frames.Frame)
	slots := make(chan struct{}, e.window)
	sent := make(chan time.Time, e.window)
	werr := make(chan error, 1)
	go func() {
		defer close(sent)
		for seq := uint64(1); ; seq++ {
			var due time.Time
			if sched != nil {
				var err error
				if due, err = sched.Next(ctx); err != nil {
					werr <- nil
					return
				}
			}
			select {
			case <-ctx.Done():
			case slots <- struct{}{}:
			}
			if ctx.Err() != nil {
				werr <- nil
				return
			}
			if e.frames.SetID != nil {
				e.frames.SetID(frame, seq)
			}
			if sched == nil {
				due = time.Now()
			}
			// The send time is queued first, so the reader never counts
			// a reply before its time.
			sent <- due
			_ = conn.SetWriteDeadline(time.Now().Add(echoTimeout))
			if err := conn.WriteMessage(e.frames.Type, frame); err != nil {
				werr <- fmt.Errorf("harness: echo write: %w", err)
				_ = conn.Close() // unblocks the reader
				return
			}
		}
	}()
	var (
		buf   bytes.Buffer
		rerr  error
		have  int  // replies counted and not yet matched to a request
		fresh bool // the next match is the first of a frame
	)
	for start := range sent {
		for rerr == nil && have == 0 {
			have, rerr = e.read(conn, &buf)
			fresh = true
			if rerr != nil {
				_ = conn.Close() // unblocks the writer
			}
		}
		if rerr == nil {
			frames := 1 // the request
			if fresh {
				frames, fresh = 2, false // and the frame of replies
			}
			series.Record(time.Since(start), 2*e.frames.Size, frames)
			have--
		}
		<-slots
	}
	return errors.Join(<-werr, rerr)
}

// read reads one frame and returns the replies it counts.
func (e *Echoers) read(conn *websocket.Conn, buf *bytes.Buffer) (int, error) {
	_ = conn.SetReadDeadline(time.Now().Add(echoTimeout))
	mt, r, err := conn.NextReader()
	if err != nil {
		return 0, fmt.Errorf("harness: echo read: %w", err)
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return 0, fmt.Errorf("harness: echo read: %w", err)
	}
	n := e.frames.Count(buf.Bytes(), e.frames.Min)
	if n < 0 || mt != e.frames.Type {
		return 0, fmt.Errorf("harness: echo: a reply frame of %d bytes (type %d) does not count", buf.Len(), mt)
	}
	return n, nil
}

// Close closes the connections.
func (e *Echoers) Close() error {
	for _, c := range e.conns {
		_ = c.Close()
	}
	return nil
}
