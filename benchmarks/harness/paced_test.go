package harness

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows/benchmarks/payload"
)

func TestScheduleOpenLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		s := NewSchedule(start, 1000) // 1 ms apart
		for k := range 3 {
			due, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(time.Duration(k) * time.Millisecond); !due.Equal(want) || !time.Now().Equal(want) {
				t.Fatalf("send %d due %v at %v, want both %v", k, due.Sub(start), time.Since(start), want.Sub(start))
			}
		}
		// The sender falls 5 ms behind (a slow reply): the sends it missed
		// are due at once, at their own times, none skipped, so latencies
		// measured from them count the wait.
		time.Sleep(5 * time.Millisecond)
		late := time.Now()
		for k := 3; k <= 7; k++ {
			due, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(time.Duration(k) * time.Millisecond); !due.Equal(want) {
				t.Errorf("send %d due %v, want %v", k, due.Sub(start), want.Sub(start))
			}
			if !time.Now().Equal(late) {
				t.Errorf("send %d waited although it was overdue", k)
			}
		}
		// Then the schedule is on time again: the next is due at 8 ms.
		due, _ := s.Next(ctx)
		if want := start.Add(8 * time.Millisecond); !due.Equal(want) || !time.Now().Equal(want) {
			t.Errorf("send 8 due %v at %v, want 8ms", due.Sub(start), time.Since(start))
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(100 * time.Microsecond); cancel() }()
		if _, err := s.Next(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Next after cancel = %v, want context.Canceled", err)
		}
	})
}

func TestSchedulesStagger(t *testing.T) {
	start := time.Unix(1000, 0)
	ss, err := Schedules(Params{Rate: 400}, 4, start) // 100/s each, 2.5 ms apart in all
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range ss {
		if want := start.Add(time.Duration(i) * 2500 * time.Microsecond); !s.start.Equal(want) || s.interval != 10*time.Millisecond {
			t.Errorf("schedule %d starts %v every %v, want %v every 10ms", i, s.start.Sub(start), s.interval, want.Sub(start))
		}
	}
	for _, p := range []Params{{}, {Rate: -1}} {
		if _, err := Schedules(p, 4, start); err == nil {
			t.Errorf("Schedules accepted rate %v", p.Rate)
		}
	}
	if _, err := Schedules(Params{Rate: 10}, 0, start); err == nil {
		t.Error("Schedules accepted no sender")
	}
}

func TestPacedRates(t *testing.T) {
	rep := func(n int64) Rep { return Rep{Messages: n, Elapsed: time.Second} }
	results := []Result{
		{Scenario: "echo", Impl: "gorilla", Codec: CodecProto, Size: payload.Small, Reps: []Rep{rep(100_001)}},
		{Scenario: "echo", Impl: "gorilla", Codec: CodecProto, Size: payload.Small, Reps: []Rep{rep(80_000)}},
		{Scenario: "echo", Impl: "gorilla", Codec: CodecProto, Size: payload.Small, Reps: []Rep{rep(90_000)}},
		{Scenario: "echo", Impl: "gorilla", Codec: CodecJSON, Size: payload.Small, Reps: []Rep{rep(40_000)}},
		{Scenario: "echo", Impl: "protows", Codec: CodecProto, Size: payload.Small, Reps: []Rep{rep(1)}},
	}
	peaks := peakRates(results, PeakOf)
	if want := map[string]float64{"proto/small": 90_000, "json/small": 40_000}; !maps.Equal(peaks, want) {
		t.Fatalf("peaks %v, want %v (medians of gorilla's echo)", peaks, want)
	}
	paced := Scenario{Name: "echo-paced", Impl: "protows", Shape: Paced}
	jobs := []Job{
		{Scenario: paced, Params: Params{Codec: CodecProto, Size: payload.Small}},
		{Scenario: paced, Params: Params{Codec: CodecJSON, Size: payload.Small}},
		{Scenario: Scenario{Name: "echo", Impl: "protows"}, Params: Params{Codec: CodecProto, Size: payload.Small}},
	}
	if err := setPacedRates(jobs, peaks, 0.5); err != nil {
		t.Fatal(err)
	}
	if jobs[0].Params.Rate != 45_000 || jobs[1].Params.Rate != 20_000 || jobs[2].Params.Rate != 0 {
		t.Errorf("rates %v, %v, %v; want 45000, 20000 and 0 (not paced)", jobs[0].Params.Rate, jobs[1].Params.Rate, jobs[2].Params.Rate)
	}
	jobs = append(jobs, Job{Scenario: paced, Params: Params{Codec: CodecProto, Size: payload.Large}})
	if err := setPacedRates(jobs, peaks, 0.5); err == nil || !strings.Contains(err.Error(), "no peak") {
		t.Errorf("a paced job without a peak: %v, want an error", err)
	}

	// The peak runs: one saturated gorilla echo per codec and size of the
	// paced jobs, with the parameters given.
	all := []Scenario{{Name: "echo", Impl: "gorilla"}, paced}
	pj, err := peakJobs(all, PeakOf, jobs, func(s Scenario, c string, size payload.Size) Params {
		return Params{Codec: c, Size: size, Conns: 16, InFlight: 8}
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range pj {
		ids = append(ids, j.ID())
		if j.Params.Conns != 16 || j.Params.InFlight != 8 {
			t.Errorf("%s: params %+v", j.ID(), j.Params)
		}
	}
	if got := strings.Join(ids, " "); got != "echo/gorilla/proto/small echo/gorilla/json/small echo/gorilla/proto/large" {
		t.Errorf("peak jobs %s", got)
	}
	if _, err := peakJobs(all, "echo/nats", jobs, nil); err == nil {
		t.Error("peakJobs accepted an unknown scenario")
	}
}
