package main

import (
	"bytes"
	"context"
	"os"
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
