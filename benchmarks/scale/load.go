package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// LoadResult is what the load process reports on its last line of output.
type LoadResult struct {
	// Members is the number of members that connected and joined.
	Members int `json:"members"`
	// Expected is the number of messages each member should receive.
	Expected int `json:"expected"`
	// Complete is the number of members that received all of them.
	Complete int `json:"complete"`
	// Deliveries is the number of messages received, all members.
	Deliveries int64 `json:"deliveries"`
	// Duplicates counts messages a member had received already; Gaps
	// counts room sequence numbers that were not the previous one plus
	// one. The publisher's requests run concurrently on the server, so
	// members may see the messages in another order than published, but
	// every member sees the same order, the room's sequence.
	Duplicates int64 `json:"duplicates"`
	Gaps       int64 `json:"gaps"`
	// Failed counts members whose stream ended or connection broke before
	// the end, FirstError the first such error.
	Failed     int    `json:"failed"`
	FirstError string `json:"firstError,omitempty"`
	// First and Last are the times of the first and last delivery (Unix
	// nanoseconds).
	First int64 `json:"first"`
	Last  int64 `json:"last"`
	// Latency percentiles of publish-to-delivery, in microseconds.
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
	// ByNode are the latencies by the node the member is connected to
	// (the index in -addrs), as histograms the driver merges across load
	// processes.
	ByNode []Hist `json:"byNode"`
	// JoinTime is how long dialing and joining took.
	JoinTime time.Duration `json:"joinTime"`
	// Self is the load process's own measurement at the end.
	Self Stats `json:"self"`
	// ReadyCPU is the load process's CPU time when every member had
	// joined: Self.CPU minus ReadyCPU is what receiving cost it.
	ReadyCPU time.Duration `json:"readyCPU"`
}

// loadMain is the load role: it connects -conns members, each of which
// joins the room; prints "ready N"; after the line "done" on its standard
// input it waits for the members to receive -messages each (or -drain),
// prints "result JSON", and exits when its standard input closes.
func loadMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("scale load", flag.ContinueOnError)
	addrs := fs.String("addrs", "", "server addresses, comma-separated: member i connects to the (i mod n)-th")
	offset := fs.Int("offset", 0, "index of this process's first member among all members")
	codecName := fs.String("codec", "proto", "codec: proto or json")
	conns := fs.Int("conns", 100, "members")
	messages := fs.Int("messages", 0, "messages each member expects")
	sources := fs.Int("sources", 4, "loopback source addresses")
	workers := fs.Int("dial-workers", 32, "concurrent dials")
	drain := fs.Duration("drain", 30*time.Second, "wait for late deliveries after done")
	timeout := fs.Duration("timeout", 5*time.Minute, "lifetime bound")
	deferJoin := fs.Bool("defer-join", false, "connect without joining; join on the line \"join\", then print \"joined N\"")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := codecByName(*codecName)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()

	l := &load{codec: c, expect: *messages, allDone: make(chan struct{}), deferJoin: *deferJoin}
	start := time.Now()
	err = l.connect(ctx, strings.Split(*addrs, ","), *offset, *conns, *sources, *workers)
	joinTime := time.Since(start)
	readyCPU := readStats(false).CPU
	if err == nil {
		_, err = fmt.Fprintf(stdout, "ready %d\n", len(l.members))
	}
	if err == nil && *deferJoin {
		err = waitLine(ctx, lines, "join")
		if err == nil {
			err = l.join(*workers)
		}
		if err == nil {
			_, err = fmt.Fprintf(stdout, "joined %d\n", len(l.members))
		}
	}
	if err == nil {
		err = waitLine(ctx, lines, "done")
	}
	if err == nil {
		t := time.NewTimer(*drain)
		select {
		case <-l.allDone:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		res := l.result()
		res.JoinTime, res.ReadyCPU = joinTime, readyCPU
		var b []byte
		b, err = json.Marshal(res)
		if err == nil {
			_, err = fmt.Fprintf(stdout, "result %s\n", b)
		}
		if err == nil {
			// Stay connected until the driver has stopped the server (and
			// closes standard input), so that the server closes first and
			// keeps the TIME_WAITs.
			_ = waitLine(ctx, lines, "\x00never")
		}
	}
	cancel()
	l.close()
	// The goroutine reading standard input ends with the process.
	return err
}

// waitLine waits for the line want on lines.
func waitLine(ctx context.Context, lines <-chan string, want string) error {
	for {
		select {
		case s, ok := <-lines:
			if !ok {
				return fmt.Errorf("standard input closed before %q", want)
			}
			if s == want {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type load struct {
	codec     codec.Codec
	expect    int
	nodes     int // set by connect
	mu        sync.Mutex
	members   []*member
	completed atomic.Int64
	total     atomic.Int64 // members, once all are connected
	allDone   chan struct{}
	doneOnce  sync.Once
	stopping  atomic.Bool // stop ends the readers: their errors are not failures
	readers   sync.WaitGroup
	deferJoin bool // connect sends no Join: join does, later
}

// member is one raw client: a WebSocket that joined the room, and what it
// received. Only its reader goroutine touches the fields until it ends.
type member struct {
	ws      *websocket.Conn
	node    int      // index of the member's server in -addrs
	lat     []int32  // microseconds, one per delivery
	seen    []uint64 // bitmap of the message indexes received
	lastSeq uint64
	dups    int64
	gaps    int64
	first   int64
	last    int64
	err     error
}

// connect dials n members with a few workers; each sends its Join REQUEST
// and starts reading at once. Member offset+i of all connects to
// addrs[(offset+i) mod len(addrs)], so that the members of every load
// process spread evenly over the nodes.
func (l *load) connect(ctx context.Context, addrs []string, offset, n, sources, workers int) error {
	join, err := requestFrame(l.codec, 1, joinMethod, &benchv1.PushRequest{})
	if err != nil {
		return err
	}
	idx := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range idx {
				g := offset + i
				ws, err := dial(ctx, addrs[g%len(addrs)], l.codec, sourceIP(g, sources))
				if err == nil && !l.deferJoin {
					_ = ws.SetWriteDeadline(time.Now().Add(ioTimeout))
					err = ws.WriteMessage(messageType(l.codec), join)
					if err != nil {
						_ = ws.Close()
					}
				}
				if err != nil {
					errs <- fmt.Errorf("member %d: %w", i, err)
					return
				}
				// gorilla's default ping handler gives the pong one second
				// to be written and fails the connection after that: too
				// short for a process that runs 10,000 readers on a busy
				// machine.
				ws.SetPingHandler(func(data string) error {
					err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(ioTimeout))
					if errors.Is(err, websocket.ErrCloseSent) {
						return nil
					}
					return err
				})
				m := &member{ws: ws, node: g % len(addrs), lat: make([]int32, 0, l.expect), seen: make([]uint64, (l.expect+63)/64)}
				l.mu.Lock()
				l.members = append(l.members, m)
				l.mu.Unlock()
				l.readers.Go(func() { l.read(m) })
			}
		})
	}
	var first error
feed:
	for i := range n {
		select {
		case idx <- i:
		case first = <-errs:
			break feed
		case <-ctx.Done():
			first = ctx.Err()
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if first == nil {
		select {
		case first = <-errs:
		default:
		}
	}
	l.mu.Lock()
	l.total.Store(int64(len(l.members)))
	l.nodes = len(addrs)
	l.mu.Unlock()
	l.checkDone()
	return first
}

// join sends the Join REQUEST of every member, from a few workers.
func (l *load) join(workers int) error {
	frame, err := requestFrame(l.codec, 1, joinMethod, &benchv1.PushRequest{})
	if err != nil {
		return err
	}
	l.mu.Lock()
	members := slices.Clone(l.members)
	l.mu.Unlock()
	next := make(chan *member)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for m := range next {
				// The reader only reads, and WriteControl (its pongs) may
				// run beside WriteMessage.
				_ = m.ws.SetWriteDeadline(time.Now().Add(ioTimeout))
				if err := m.ws.WriteMessage(messageType(l.codec), frame); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, m := range members {
		next <- m
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("join: %w", err)
	default:
		return nil
	}
}

// read records the member's deliveries until its connection ends.
func (l *load) read(m *member) {
	for {
		_, data, err := m.ws.ReadMessage()
		if err != nil {
			// Once stop set the read deadline, the error is its doing.
			if len(m.lat) < l.expect && !l.stopping.Load() {
				m.err = err
			}
			return
		}
		envs, err := l.codec.DecodeFrame(data)
		if err != nil {
			m.err = err
			return
		}
		for _, e := range envs {
			if err := l.receive(m, e); err != nil {
				m.err = err
				return
			}
		}
	}
}

func (l *load) receive(m *member, e *protowsv1.Envelope) error {
	switch e.GetKind() {
	case protowsv1.Kind_KIND_STREAM_MESSAGE:
	case protowsv1.Kind_KIND_STREAM_END, protowsv1.Kind_KIND_ERROR:
		return fmt.Errorf("stream ended: %s %v", e.GetKind(), e.GetError())
	default:
		return nil
	}
	now := time.Now().UnixNano()
	var s benchv1.Sample
	if err := l.codec.UnmarshalPayload(e.GetPayload(), &s); err != nil {
		return err
	}
	i, err := strconv.ParseInt(s.GetId(), 10, 64)
	if err != nil {
		return fmt.Errorf("message id %q: %w", s.GetId(), err)
	}
	if i < 0 || i >= int64(l.expect) {
		return fmt.Errorf("message id %d out of range [0, %d)", i, l.expect)
	}
	if m.seen[i/64]&(1<<(i%64)) != 0 {
		m.dups++
		return nil
	}
	m.seen[i/64] |= 1 << (i % 64)
	if m.lastSeq != 0 && e.GetSeq() != m.lastSeq+1 {
		m.gaps++
	}
	m.lastSeq = e.GetSeq()
	if m.first == 0 {
		m.first = now
	}
	m.last = now
	m.lat = append(m.lat, int32(min((now-s.GetTimestamp())/1e3, math.MaxInt32)))
	if len(m.lat) == l.expect {
		l.completed.Add(1)
		l.checkDone()
	}
	return nil
}

// checkDone closes allDone once every member has received every message.
func (l *load) checkDone() {
	if n := l.total.Load(); n > 0 && l.completed.Load() >= n || l.expect == 0 {
		l.doneOnce.Do(func() { close(l.allDone) })
	}
}

// result stops the readers, so that the members' figures are final, and
// summarizes them.
func (l *load) result() LoadResult {
	l.stop()
	res := LoadResult{Members: len(l.members), Expected: l.expect, ByNode: make([]Hist, l.nodes)}
	all := make([]int32, 0, len(l.members)*l.expect)
	for _, m := range l.members {
		res.Deliveries += int64(len(m.lat))
		res.Duplicates += m.dups
		res.Gaps += m.gaps
		if len(m.lat) == l.expect {
			res.Complete++
		}
		if m.err != nil {
			res.Failed++
			if res.FirstError == "" {
				res.FirstError = m.err.Error()
			}
		}
		if m.first != 0 && (res.First == 0 || m.first < res.First) {
			res.First = m.first
		}
		res.Last = max(res.Last, m.last)
		all = append(all, m.lat...)
		for _, v := range m.lat {
			res.ByNode[m.node].Add(int64(v))
		}
	}
	slices.Sort(all)
	pct := func(p float64) int64 {
		if len(all) == 0 {
			return 0
		}
		return int64(all[min(len(all)-1, int(p*float64(len(all))))])
	}
	res.P50, res.P90, res.P99, res.P999 = pct(0.50), pct(0.90), pct(0.99), pct(0.999)
	if len(all) > 0 {
		res.Max = int64(all[len(all)-1])
	}
	res.Self = readStats(false)
	return res
}

// stop ends every reader and waits for them: afterwards the members'
// figures are final and safe to read. The connections are closed at
// once; the server sees them go after it has been told to stop.
func (l *load) stop() {
	l.mu.Lock()
	members := slices.Clone(l.members)
	l.mu.Unlock()
	l.stopping.Store(true)
	for _, m := range members {
		// An expired read deadline ends ReadMessage without closing the
		// connection, so the server still closes first.
		_ = m.ws.SetReadDeadline(time.Unix(1, 0))
	}
	l.readers.Wait()
}

func (l *load) close() {
	l.stop()
	for _, m := range l.members {
		_ = m.ws.Close()
	}
}
