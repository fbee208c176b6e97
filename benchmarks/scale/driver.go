package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// Run is the measurement of one codec.
type Run struct {
	Codec    string
	Conns    int
	Rate     float64
	Messages int
	// Size is the encoded size of one message's payload in this codec.
	Size int
	Load LoadResult
	// Before is the server with no member, Joined with every member, both
	// after a GC; After is the server at the end of the broadcast, without
	// a GC (its HWM is the peak of the whole run).
	Before, Joined, After Stats
	// Publish is the wall time from the first publish to the last
	// delivery; Sent the time from the first publish to the last.
	Publish, Sent time.Duration
}

// drive runs cfg for each codec and writes the report to out.
func drive(ctx context.Context, cfg DriverConfig, out io.Writer) error {
	var runs []Run
	var errs error
	for _, name := range cfg.Codecs {
		fmt.Fprintf(out, "scale: %s, %d members, %.0f publishes/s for %v ...\n", name, cfg.Conns, cfg.Rate, cfg.Duration)
		r, err := runCodec(ctx, cfg, name)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		runs = append(runs, r)
	}
	if len(runs) > 0 {
		errs = errors.Join(errs, writeReport(out, cfg, runs))
	}
	return errs
}

// runCodec starts a server and a load process, joins cfg.Conns members,
// publishes, and collects the figures.
func runCodec(ctx context.Context, cfg DriverConfig, name string) (run Run, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	c, err := codecByName(name)
	if err != nil {
		return run, err
	}
	messages := int(cfg.Rate * cfg.Duration.Seconds())
	run = Run{Codec: name, Conns: cfg.Conns, Rate: cfg.Rate, Messages: messages}
	text := strings.Repeat("x", cfg.TextSize)
	if p, err := c.AppendPayload(nil, &benchv1.Sample{Id: strconv.Itoa(messages), Timestamp: time.Now().UnixNano(), Text: text}); err == nil {
		run.Size = len(p)
	}
	timeout := "-timeout=" + cfg.Timeout.String()

	srv, err := startChild("server", []string{timeout})
	if err != nil {
		return run, err
	}
	var ld *child
	defer func() {
		// The server stops first, so that it closes the connections (and
		// keeps their TIME_WAITs), then the load process.
		err = errors.Join(err, srv.stop(2*ioTimeout))
		if ld != nil {
			err = errors.Join(err, ld.stop(2*ioTimeout))
		}
	}()
	addr, err := srv.expect(ctx, "listen")
	if err != nil {
		return run, err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if run.Before, err = serverStats(ctx, hc, addr, true); err != nil {
		return run, err
	}

	ld, err = startChild("load", []string{timeout, "-addr=" + addr, "-codec=" + name,
		"-conns=" + strconv.Itoa(cfg.Conns), "-messages=" + strconv.Itoa(messages),
		"-sources=" + strconv.Itoa(cfg.Sources)})
	if err != nil {
		return run, err
	}
	if _, err := ld.expect(ctx, "ready"); err != nil {
		return run, err
	}
	if err := waitMembers(ctx, hc, addr, cfg.Conns); err != nil {
		return run, err
	}
	if run.Joined, err = serverStats(ctx, hc, addr, true); err != nil {
		return run, err
	}

	start := time.Now()
	if run.Sent, err = publish(ctx, addr, c, messages, cfg.Rate, text); err != nil {
		return run, err
	}
	if err := ld.send("done"); err != nil {
		return run, err
	}
	line, err := ld.expect(ctx, "result")
	if err != nil {
		return run, err
	}
	if err := json.Unmarshal([]byte(line), &run.Load); err != nil {
		return run, fmt.Errorf("load result: %w", err)
	}
	run.Publish = time.Unix(0, run.Load.Last).Sub(start)
	if run.After, err = serverStats(ctx, hc, addr, false); err != nil {
		return run, err
	}
	return run, nil
}

func serverStats(ctx context.Context, hc *http.Client, addr string, gc bool) (Stats, error) {
	var st Stats
	u := "http://" + addr + statsPath
	if gc {
		u += "?gc=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return st, fmt.Errorf("stats: %s", res.Status)
	}
	return st, json.NewDecoder(res.Body).Decode(&st)
}

// waitMembers polls the server until its room has n members.
func waitMembers(ctx context.Context, hc *http.Client, addr string, n int) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := serverStats(ctx, hc, addr, false)
		if err != nil {
			return err
		}
		if st.Members == n {
			return nil
		}
		if st.Members > n {
			return fmt.Errorf("room has %d members, want %d", st.Members, n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("room has %d members, want %d: %w", st.Members, n, ctx.Err())
		case <-t.C:
		}
	}
}

// publishWindow is the most Publish calls in flight, well below the
// server's MaxInFlight (128): a server that falls behind slows the
// publisher down instead of refusing publishes.
const publishWindow = 64

// publish sends n Publish requests at rate per second, on a schedule (the
// i-th at start + i/rate, not after the previous reply) as long as fewer
// than publishWindow are in flight, each Sample stamped with its send
// time, and waits for every reply. It returns the time from the first
// send to the last.
func publish(ctx context.Context, addr string, c codec.Codec, n int, rate float64, text string) (sent time.Duration, err error) {
	ws, err := dial(ctx, addr, c, net.IPv4(127, 0, 0, 1))
	if err != nil {
		return 0, fmt.Errorf("publisher: %w", err)
	}
	replies := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ws.Close()
	slots := make(chan struct{}, publishWindow)
	wg.Go(func() { replies <- readReplies(ws, c, n, slots) })

	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := range n {
		t.Reset(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		select {
		case <-t.C:
		case <-ctx.Done():
			return sent, ctx.Err()
		case err := <-replies:
			return sent, fmt.Errorf("publisher: %w", err)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return sent, ctx.Err()
		case err := <-replies:
			return sent, fmt.Errorf("publisher: %w", err)
		}
		req := &benchv1.EchoRequest{Sample: &benchv1.Sample{Id: strconv.Itoa(i), Timestamp: time.Now().UnixNano(), Text: text}}
		frame, err := requestFrame(c, uint32(i+1), publishMethod, req)
		if err != nil {
			return sent, err
		}
		_ = ws.SetWriteDeadline(time.Now().Add(ioTimeout))
		if err := ws.WriteMessage(messageType(c), frame); err != nil {
			return sent, fmt.Errorf("publisher: %w", err)
		}
		sent = time.Since(start)
	}
	select {
	case err := <-replies:
		if err != nil {
			return sent, fmt.Errorf("publisher: %w", err)
		}
		return sent, nil
	case <-time.After(30 * time.Second):
		return sent, errors.New("publisher: replies missing after 30s")
	case <-ctx.Done():
		return sent, ctx.Err()
	}
}

// readReplies reads until n REPLYs arrived, freeing a slot for each; an
// ERROR or a broken connection is an error.
func readReplies(ws *websocket.Conn, c codec.Codec, n int, slots <-chan struct{}) error {
	for got := 0; got < n; {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("after %d of %d replies: %w", got, n, err)
		}
		envs, err := c.DecodeFrame(data)
		if err != nil {
			return err
		}
		for _, e := range envs {
			switch e.GetKind() {
			case protowsv1.Kind_KIND_REPLY:
				got++
				<-slots
			case protowsv1.Kind_KIND_ERROR:
				return fmt.Errorf("publish %d: %v", e.GetId(), e.GetError())
			}
		}
	}
	return nil
}
