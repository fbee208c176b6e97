package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	Codec     string
	Conns     int
	Nodes     int
	LoadProcs int
	Rate      float64
	Messages  int
	// Size is the encoded size of one message's payload in this codec.
	Size int
	// Load sums the load processes' results (Loads), its percentiles
	// from their merged histograms.
	Load  LoadResult
	Loads []LoadResult
	// Servers are the server processes, one per node; Before, Joined and
	// After sum their figures (see sumStats).
	Servers []NodeRun
	// Before is the servers with no member, Joined with every member, both
	// after a GC; After is the servers at the end of the broadcast, without
	// a GC (its HWM is the peak of the whole run).
	Before, Joined, After Stats
	// NATS is the NATS process of a run of several nodes, nil for one.
	NATS *NATSRun
	// Publish is the wall time from the first publish to the last
	// delivery; Sent the time from the first publish to the last.
	Publish, Sent time.Duration
}

// NodeRun is one server process of a run.
type NodeRun struct {
	Name string
	Addr string
	// Members is the number of members connected to it.
	Members               int
	Before, Joined, After Stats
}

// NATSRun is the NATS process of a run, measured when the servers had no
// member, when every member had joined, and after the broadcast.
type NATSRun struct {
	Before, Joined, After NATSStats
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

// runCodec starts the NATS process (for several nodes), the servers and
// the load processes, joins cfg.Conns members, publishes, and collects the
// figures.
func runCodec(ctx context.Context, cfg DriverConfig, name string) (run Run, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	c, err := codecByName(name)
	if err != nil {
		return run, err
	}
	nodes, procs := max(cfg.Nodes, 1), max(cfg.LoadProcs, 1)
	messages := int(cfg.Rate * cfg.Duration.Seconds())
	run = Run{Codec: name, Conns: cfg.Conns, Nodes: nodes, LoadProcs: procs, Rate: cfg.Rate, Messages: messages}
	text := strings.Repeat("x", cfg.TextSize)
	if p, err := c.AppendPayload(nil, &benchv1.Sample{Id: strconv.Itoa(messages), Timestamp: time.Now().UnixNano(), Text: text}); err == nil {
		run.Size = len(p)
	}
	timeout := "-timeout=" + cfg.Timeout.String()

	var srvs, lds []*child
	var nc *child
	defer func() {
		// The servers stop first, so that they close the connections (and
		// keep their TIME_WAITs) and their hubs say goodbye over NATS;
		// then NATS, then the load processes.
		err = errors.Join(err, stopAll(srvs))
		if nc != nil {
			err = errors.Join(err, nc.stop(2*ioTimeout))
		}
		err = errors.Join(err, stopAll(lds))
	}()
	hc := &http.Client{Timeout: 30 * time.Second}

	var natsURL, natsStats string
	if nodes > 1 {
		if nc, err = startChild("nats", []string{timeout}); err != nil {
			return run, err
		}
		line, err := nc.expect(ctx, "listen")
		if err != nil {
			return run, err
		}
		var ok bool
		if natsURL, natsStats, ok = strings.Cut(line, " "); !ok {
			return run, fmt.Errorf("nats: listen line %q", line)
		}
		run.NATS = &NATSRun{}
	}
	addrs := make([]string, nodes)
	for i := range nodes {
		args := []string{timeout}
		node := NodeRun{Name: "node-" + strconv.Itoa(i+1), Members: cfg.Conns / nodes}
		if i < cfg.Conns%nodes {
			node.Members++
		}
		if nodes > 1 {
			args = append(args, "-nats="+natsURL, "-node="+node.Name)
		}
		srv, err := startChild("server", args)
		if err != nil {
			return run, err
		}
		srvs = append(srvs, srv)
		if node.Addr, err = srv.expect(ctx, "listen"); err != nil {
			return run, err
		}
		addrs[i] = node.Addr
		fmt.Fprintf(os.Stderr, "scale: %s listens on %s (/stats, /debug/pprof/)\n", node.Name, node.Addr)
		run.Servers = append(run.Servers, node)
	}
	measure := func(sel func(*NodeRun) *Stats, nsel func(*NATSRun) *NATSStats, gc bool) error {
		for i := range run.Servers {
			st, err := serverStats(ctx, hc, run.Servers[i].Addr, gc)
			if err != nil {
				return err
			}
			*sel(&run.Servers[i]) = st
		}
		if run.NATS != nil {
			return getJSON(ctx, hc, natsStats, gc, nsel(run.NATS))
		}
		return nil
	}
	if err := measure(func(n *NodeRun) *Stats { return &n.Before }, func(n *NATSRun) *NATSStats { return &n.Before }, true); err != nil {
		return run, err
	}

	offset := 0
	for i := range procs {
		n := cfg.Conns / procs
		if i < cfg.Conns%procs {
			n++
		}
		ld, err := startChild("load", []string{timeout, "-addrs=" + strings.Join(addrs, ","), "-codec=" + name,
			"-offset=" + strconv.Itoa(offset), "-conns=" + strconv.Itoa(n), "-messages=" + strconv.Itoa(messages),
			"-sources=" + strconv.Itoa(cfg.Sources)})
		if err != nil {
			return run, err
		}
		lds = append(lds, ld)
		offset += n
	}
	for _, ld := range lds {
		if _, err := ld.expect(ctx, "ready"); err != nil {
			return run, err
		}
	}
	for _, node := range run.Servers {
		if err := waitMembers(ctx, hc, node.Addr, node.Members, cfg.Conns); err != nil {
			return run, fmt.Errorf("%s: %w", node.Name, err)
		}
	}
	if err := measure(func(n *NodeRun) *Stats { return &n.Joined }, func(n *NATSRun) *NATSStats { return &n.Joined }, true); err != nil {
		return run, err
	}

	start := time.Now()
	if run.Sent, err = publish(ctx, addrs[0], c, messages, cfg.Rate, text); err != nil {
		return run, err
	}
	for _, ld := range lds {
		if err := ld.send("done"); err != nil {
			return run, err
		}
	}
	for _, ld := range lds {
		line, err := ld.expect(ctx, "result")
		if err != nil {
			return run, err
		}
		var res LoadResult
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return run, fmt.Errorf("load result: %w", err)
		}
		run.Loads = append(run.Loads, res)
	}
	run.Load = sumLoads(run.Loads)
	run.Publish = time.Unix(0, run.Load.Last).Sub(start)
	if err := measure(func(n *NodeRun) *Stats { return &n.After }, func(n *NATSRun) *NATSStats { return &n.After }, false); err != nil {
		return run, err
	}
	for _, n := range run.Servers {
		run.Before = sumStats(run.Before, n.Before)
		run.Joined = sumStats(run.Joined, n.Joined)
		run.After = sumStats(run.After, n.After)
	}
	return run, nil
}

// sumStats adds b's figures to a's, for the servers of a run taken
// together: memory, goroutines, CPU and members add up; the room's members
// and the kernel's slab memory are the same for every node (the slab is
// machine-wide), so the sum keeps b's; the peak RSS adds the processes'
// peaks, which need not have been at the same time.
func sumStats(a, b Stats) Stats {
	return Stats{
		Members:     a.Members + b.Members,
		RoomMembers: b.RoomMembers,
		RSS:         a.RSS + b.RSS,
		HWM:         a.HWM + b.HWM,
		HeapLive:    a.HeapLive + b.HeapLive,
		Stacks:      a.Stacks + b.Stacks,
		GoTotal:     a.GoTotal + b.GoTotal,
		Goroutines:  a.Goroutines + b.Goroutines,
		CPU:         a.CPU + b.CPU,
		KernelSlab:  b.KernelSlab,
	}
}

// sumLoads adds up the load processes' results: counts add, the
// percentiles come from the merged histograms, the process figures (RSS,
// CPU) add up.
func sumLoads(loads []LoadResult) LoadResult {
	var sum LoadResult
	var all Hist
	for _, r := range loads {
		sum.Members += r.Members
		sum.Expected = r.Expected
		sum.Complete += r.Complete
		sum.Deliveries += r.Deliveries
		sum.Duplicates += r.Duplicates
		sum.Gaps += r.Gaps
		sum.Failed += r.Failed
		if sum.FirstError == "" {
			sum.FirstError = r.FirstError
		}
		if r.First != 0 && (sum.First == 0 || r.First < sum.First) {
			sum.First = r.First
		}
		sum.Last = max(sum.Last, r.Last)
		sum.Max = max(sum.Max, r.Max)
		sum.JoinTime = max(sum.JoinTime, r.JoinTime)
		sum.Self.RSS += r.Self.RSS
		sum.Self.CPU += r.Self.CPU
		sum.ReadyCPU += r.ReadyCPU
		for i, h := range r.ByNode {
			if i >= len(sum.ByNode) {
				sum.ByNode = append(sum.ByNode, make([]Hist, i+1-len(sum.ByNode))...)
			}
			sum.ByNode[i].Merge(h)
			all.Merge(h)
		}
	}
	// A bucket's upper bound may lie above the largest value measured.
	q := func(p float64) int64 { return min(all.Quantile(p), sum.Max) }
	sum.P50, sum.P90, sum.P99, sum.P999 = q(0.50), q(0.90), q(0.99), q(0.999)
	return sum
}

func serverStats(ctx context.Context, hc *http.Client, addr string, gc bool) (Stats, error) {
	var st Stats
	return st, getJSON(ctx, hc, addr, gc, &st)
}

// getJSON decodes the /stats of the process at addr into v.
func getJSON(ctx context.Context, hc *http.Client, addr string, gc bool, v any) error {
	u := "http://" + addr + statsPath
	if gc {
		u += "?gc=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("stats: %s", res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// waitMembers polls the server until n members are connected to it and
// its room has room members on every node (its own and, as their presence
// told it, the other nodes').
func waitMembers(ctx context.Context, hc *http.Client, addr string, n, room int) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := serverStats(ctx, hc, addr, false)
		if err != nil {
			return err
		}
		if st.Members == n && st.RoomMembers == room {
			return nil
		}
		if st.Members > n || st.RoomMembers > room {
			return fmt.Errorf("%d members here, %d in the room; want %d, %d", st.Members, st.RoomMembers, n, room)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d members here, %d in the room; want %d, %d: %w", st.Members, st.RoomMembers, n, room, ctx.Err())
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
