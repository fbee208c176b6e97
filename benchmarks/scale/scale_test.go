package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain runs the role the driver asked for when the driver started this
// test binary as its server or load process; otherwise the tests.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if err := runMain(context.Background(), role, os.Args[1:], os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString("scale " + role + ": " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The children are this test binary, built with -race when the tests
	// are: the race runtime would make each sleep 1 s at exit (GORACE's
	// atexit_sleep_ms, a wait for late race reports), for every run.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	goleak.VerifyTestMain(m)
}

// TestSmoke runs the whole measurement small: 200 members, both codecs, in
// separate server and load processes, and checks that every member
// received every message once, without a gap in the room's sequence, and that
// the figures were measured.
func TestSmoke(t *testing.T) {
	cfg := DriverConfig{Conns: 200, Rate: 20, Duration: 1500 * time.Millisecond, Sources: 3, TextSize: 16, Timeout: 30 * time.Second}
	for _, name := range []string{"proto", "json"} {
		t.Run(name, func(t *testing.T) {
			r, err := runCodec(t.Context(), cfg, name)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(r.Messages) * int64(cfg.Conns)
			if r.Messages != 30 || r.Load.Members != cfg.Conns || r.Load.Expected != r.Messages {
				t.Fatalf("messages %d, members %d, expected %d; want 30, %d, 30", r.Messages, r.Load.Members, r.Load.Expected, cfg.Conns)
			}
			if r.Load.Deliveries != want || r.Load.Complete != cfg.Conns {
				t.Errorf("deliveries %d (want %d), complete members %d of %d", r.Load.Deliveries, want, r.Load.Complete, cfg.Conns)
			}
			if r.Load.Duplicates != 0 || r.Load.Gaps != 0 || r.Load.Failed != 0 {
				t.Errorf("duplicates %d, gaps %d, failed %d (%s)", r.Load.Duplicates, r.Load.Gaps, r.Load.Failed, r.Load.FirstError)
			}
			if r.Load.P50 <= 0 || r.Load.P99 < r.Load.P50 || r.Load.Max < r.Load.P99 {
				t.Errorf("latency p50 %d, p99 %d, max %d µs: want 0 < p50 <= p99 <= max", r.Load.P50, r.Load.P99, r.Load.Max)
			}
			if r.deliveriesPerSec() <= 0 {
				t.Errorf("deliveries per second %v", r.deliveriesPerSec())
			}
			if r.Before.Members != 0 || r.Joined.Members != cfg.Conns {
				t.Errorf("server members %d before, %d joined; want 0, %d", r.Before.Members, r.Joined.Members, cfg.Conns)
			}
			// 200 connections cost the server memory: goroutines at least.
			if r.Before.RSS <= 0 || r.Joined.Goroutines < r.Before.Goroutines+int64(cfg.Conns) || r.perConn(func(s Stats) int64 { return s.Stacks }) <= 0 {
				t.Errorf("server memory: before %+v, joined %+v", r.Before, r.Joined)
			}

			var out bytes.Buffer
			if err := writeReport(&out, cfg, []Run{r}); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"| " + name + " | 200 |", "6000 of 6000", "200 of 200", "for 1,000,000"} {
				if !strings.Contains(out.String(), s) {
					t.Errorf("report lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

func TestParseDriverFlags(t *testing.T) {
	tests := []struct {
		args    []string
		codecs  []string
		wantErr bool
	}{
		{args: nil, codecs: []string{"proto"}},
		{args: []string{"-codec", "both"}, codecs: []string{"proto", "json"}},
		{args: []string{"-codec", "json", "-conns", "5"}, codecs: []string{"json"}},
		{args: []string{"-codec", "xml"}, wantErr: true},
		{args: []string{"-conns", "0"}, wantErr: true},
		{args: []string{"-sources", "300"}, wantErr: true},
	}
	for _, tt := range tests {
		cfg, err := parseDriverFlags(tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: error %v, want error %v", tt.args, err, tt.wantErr)
			continue
		}
		if err == nil && strings.Join(cfg.Codecs, ",") != strings.Join(tt.codecs, ",") {
			t.Errorf("%q: codecs %q, want %q", tt.args, cfg.Codecs, tt.codecs)
		}
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1536, "1.5 KiB"}, {3 << 20, "3.0 MiB"}, {5 << 30, "5.00 GiB"}, {-2048, "-2.0 KiB"},
	}
	for _, tt := range tests {
		if got := size(tt.n); got != tt.want {
			t.Errorf("size(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestCluster runs the multi-node path small: three server processes
// joined by a NATS process, the members spread over them from two load
// processes, the publisher on the first node. Every member must get every
// message once, on every node, and NATS must have carried the broadcasts.
func TestCluster(t *testing.T) {
	cfg := DriverConfig{Conns: 30, Nodes: 3, LoadProcs: 2, Rate: 20, Duration: 500 * time.Millisecond, Sources: 2, TextSize: 16, Timeout: 30 * time.Second}
	r, err := runCodec(t.Context(), cfg, "proto")
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != 10 || r.Load.Members != cfg.Conns || len(r.Loads) != 2 || len(r.Servers) != 3 || r.NATS == nil {
		t.Fatalf("messages %d, members %d, load processes %d, servers %d, NATS %v; want 10, 30, 2, 3, measured",
			r.Messages, r.Load.Members, len(r.Loads), len(r.Servers), r.NATS != nil)
	}
	if r.Load.Deliveries != 300 || r.Load.Complete != cfg.Conns {
		t.Errorf("deliveries %d (want 300), complete members %d of %d", r.Load.Deliveries, r.Load.Complete, cfg.Conns)
	}
	if r.Load.Duplicates != 0 || r.Load.Gaps != 0 || r.Load.Failed != 0 {
		t.Errorf("duplicates %d, gaps %d, failed %d (%s)", r.Load.Duplicates, r.Load.Gaps, r.Load.Failed, r.Load.FirstError)
	}
	for i, n := range r.Servers {
		// Each node holds 10 members and knows all 30 from presence; its
		// members got every message, the remote nodes' through NATS.
		if n.Joined.Members != 10 || n.Joined.RoomMembers != 30 || n.Before.Members != 0 {
			t.Errorf("%s: members %d before, %d joined, room %d; want 0, 10, 30", n.Name, n.Before.Members, n.Joined.Members, n.Joined.RoomMembers)
		}
		for k, v := range n.After.Events {
			if strings.HasPrefix(k, "drop/") || strings.HasPrefix(k, "nats/") || strings.HasPrefix(k, "publish_error/") {
				t.Errorf("%s: %s %d (%s)", n.Name, k, v, n.After.NATSError)
			}
		}
		if got := r.Load.ByNode[i].Count(); got != 100 {
			t.Errorf("%s: %d deliveries to its members, want 100", n.Name, got)
		}
	}
	if got := r.Servers[0].After.Events["publish/broadcast"]; got != 10 {
		t.Errorf("node-1 published %d broadcasts to NATS, want 10", got)
	}
	if r.Joined.Members != 30 || r.Before.RSS <= r.Servers[0].Before.RSS {
		t.Errorf("summed servers: %d members, RSS %d (first node %d)", r.Joined.Members, r.Before.RSS, r.Servers[0].Before.RSS)
	}
	// NATS carried each broadcast from node-1 to the three nodes'
	// subscriptions (heartbeats come on top).
	cast := natsDiff(r.NATS.After, r.NATS.Joined)
	if r.NATS.Joined.Conns != 3 || cast.InMsgs < 10 || cast.OutMsgs < 30 || cast.OutBytes < 30*int64(r.Size) {
		t.Errorf("NATS: %d connections, broadcast %+v", r.NATS.Joined.Conns, cast)
	}
	if r.Load.P50 <= 0 || r.Load.P99 < r.Load.P50 || r.Load.Max < r.Load.P99 {
		t.Errorf("latency p50 %d, p99 %d, max %d µs: want 0 < p50 <= p99 <= max", r.Load.P50, r.Load.P99, r.Load.Max)
	}
	var out bytes.Buffer
	if err := writeReport(&out, cfg, []Run{r}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"on 3 server process(es), in 2 load process(es)", "| node-3 | 10 | 30 |", "| broadcast |", "300 of 300", "30 of 30"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
}

func TestHist(t *testing.T) {
	tests := []struct {
		values []int64
		q      float64
		want   int64
	}{
		{values: nil, q: 0.5, want: 0},
		{values: []int64{5}, q: 0.99, want: 5},
		{values: []int64{1, 2, 3, 4}, q: 0.5, want: 3},
		{values: []int64{127, 128}, q: 1, want: 129},    // 128 and 129 share a bucket
		{values: []int64{10_000}, q: 0.5, want: 10_111}, // bucket [9984, 10111]
		{values: []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1_000_000}, q: 0.9, want: 1_007_615},
	}
	for _, tt := range tests {
		var h Hist
		for _, v := range tt.values {
			h.Add(v)
		}
		if got := h.Quantile(tt.q); got != tt.want {
			t.Errorf("%v: quantile %v = %d, want %d", tt.values, tt.q, got, tt.want)
		}
	}
	// Merging two halves gives the histogram of the whole, and a bucket's
	// bound is within 1/64 above each value.
	var a, b, whole Hist
	for v := int64(0); v < 100_000; v += 7 {
		whole.Add(v)
		if v%2 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
		if up := histUpper(histIndex(v)); up < v || float64(up-v) > float64(v)/64 {
			t.Fatalf("value %d: bucket bound %d", v, up)
		}
	}
	a.Merge(b)
	if !slices.Equal(a, whole) {
		t.Error("merged halves differ from the whole")
	}
}

// TestIdleSmoke runs the idle measurement small, against this binary as
// two named servers: every run measured the connections and the members,
// and the report has a row per server.
func TestIdleSmoke(t *testing.T) {
	cfg := DriverConfig{Conns: 100, Sources: 2, Timeout: 30 * time.Second, Idle: true, Runs: 1,
		Codecs: []string{"proto"}, Servers: []ServerExe{{Name: "a"}, {Name: "b"}}}
	r, err := runIdle(t.Context(), cfg, cfg.Servers[0], "json")
	if err != nil {
		t.Fatal(err)
	}
	if r.Members.Members != cfg.Conns || r.Idle.Members != 0 {
		t.Errorf("members %d with the connections idle, %d once joined; want 0, %d", r.Idle.Members, r.Members.Members, cfg.Conns)
	}
	if r.Idle.Goroutines <= r.Before.Goroutines || r.perConn(func(s Stats) int64 { return s.HeapLive }) <= 0 {
		t.Errorf("goroutines %d -> %d, heap per connection %d: the connections were not measured", r.Before.Goroutines, r.Idle.Goroutines, r.perConn(func(s Stats) int64 { return s.HeapLive }))
	}
	var out bytes.Buffer
	if err := driveIdle(t.Context(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| a |", "| b |", "RSS per idle member"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseServers(t *testing.T) {
	got, err := parseServers("main=/tmp/a,head=")
	if err != nil || len(got) != 2 || got[0] != (ServerExe{"main", "/tmp/a"}) || got[1] != (ServerExe{"head", ""}) {
		t.Errorf("parseServers = %v, %v", got, err)
	}
	if _, err := parseServers("=x"); err == nil {
		t.Error("parseServers accepted an entry without a name")
	}
}
