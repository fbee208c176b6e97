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
type Echoers struct {
	conns  []*websocket.Conn
	frames EchoFrames
	window int
}

var _ Load = (*Echoers)(nil)

// DialEchoers opens n connections to url offering subprotocol (none when
// empty), each to keep window requests in flight.
func DialEchoers(ctx context.Context, url, subprotocol string, n, window int, frames EchoFrames) (*Echoers, error) {
	e := &Echoers{frames: frames, window: max(window, 1)}
	for range n {
		// A request goes out in one WebSocket frame.
		conn, err := dialWS(ctx, url, subprotocol, max(len(frames.Frame), 4096))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("harness: echoer %d: %w", len(e.conns), err), e.Close())
		}
		e.conns = append(e.conns, conn)
	}
	return e, nil
}

// Run sends requests on every connection until ctx is done, then waits for
// the replies of those in flight.
func (e *Echoers) Run(ctx context.Context, rec *Recorder) error {
	var wg sync.WaitGroup
	errs := make([]error, len(e.conns))
	for i, conn := range e.conns {
		series := rec.Series()
		wg.Go(func() { errs[i] = e.runConn(ctx, conn, series) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runConn pipelines requests on one connection: a writer sends while it
// holds one of window slots and queues each send time; the reader matches
// each reply counted to the oldest send time (the latency is the oldest
// request's, as replies may come in another order) and frees a slot.
func (e *Echoers) runConn(ctx context.Context, conn *websocket.Conn, series *Series) error {
	frame := slices.Clone(e.frames.Frame)
	slots := make(chan struct{}, e.window)
	sent := make(chan time.Time, e.window)
	werr := make(chan error, 1)
	go func() {
		defer close(sent)
		for seq := uint64(1); ; seq++ {
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
			// The send time is queued first, so the reader never counts
			// a reply before its time.
			sent <- time.Now()
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
