package harness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/protows/protows/benchmarks/payload"
)

// Schedule is an open-loop send schedule: the k-th send is due at
// start + k·interval, whatever happened to the sends before it. A load
// that measures each latency from the time its send was due, not from the
// time it went out, counts the time a send waited behind a slow reply:
// a closed loop (send, wait for the reply, send the next) would instead
// slow its sending down when the server is slow and hide exactly the
// queueing a paced run is meant to see ("coordinated omission").
//
// A Schedule is not safe for concurrent use: give each sender its own.
type Schedule struct {
	start    time.Time
	interval time.Duration
	k        int64
	timer    *time.Timer
}

// NewSchedule returns a schedule of rate sends per second whose first send
// is due at start.
func NewSchedule(start time.Time, rate float64) *Schedule {
	return &Schedule{start: start, interval: time.Duration(float64(time.Second) / rate)}
}

// Next waits until the next send is due and returns the time it was due,
// or ctx's error once ctx is done. It never skips a send nor moves the
// schedule: a sender that fell behind gets the due times it missed at
// once, and the latencies measured from them include the delay.
func (s *Schedule) Next(ctx context.Context) (time.Time, error) {
	due := s.start.Add(time.Duration(s.k) * s.interval)
	if d := time.Until(due); d > 0 {
		if s.timer == nil {
			s.timer = time.NewTimer(d)
		} else {
			s.timer.Reset(d)
		}
		select {
		case <-s.timer.C:
		case <-ctx.Done():
			s.timer.Stop()
			return time.Time{}, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.k++
	return due, nil
}

// Schedules returns the open-loop schedules of n senders (connections)
// that share p.Rate sends per second, staggered so that together they send
// evenly: sender i starts i/p.Rate seconds after start. It returns an
// error when p.Rate is not positive.
func Schedules(p Params, n int, start time.Time) ([]*Schedule, error) {
	if p.Rate <= 0 || math.IsInf(p.Rate, 0) || math.IsNaN(p.Rate) {
		return nil, fmt.Errorf("harness: a paced load needs a positive rate, have %v", p.Rate)
	}
	if n <= 0 {
		return nil, errors.New("harness: a paced load needs a sender")
	}
	step := time.Duration(float64(time.Second) / p.Rate)
	out := make([]*Schedule, n)
	for i := range out {
		out[i] = NewSchedule(start.Add(time.Duration(i)*step), p.Rate/float64(n))
	}
	return out, nil
}

// PeakOf is the scenario key whose saturated msgs/s a paced run's rate is a
// fraction of, by default: raw gorilla/websocket echo, the baseline with no
// framework.
const PeakOf = "echo/gorilla"

// peakRates returns the median msgs/s of every result of the scenario key
// (name/impl) by codec and size: the peaks a paced run takes a fraction of.
func peakRates(results []Result, key string) map[string]float64 {
	out := make(map[string]float64)
	for _, r := range Combine(results) {
		if r.Scenario+"/"+r.Impl == key {
			if v := msgsPerSec.Median(r); v > 0 {
				out[peakKey(r.Codec, r.Size)] = v
			}
		}
	}
	return out
}

func peakKey(codec string, size payload.Size) string { return codec + "/" + string(size) }

// setPacedRates gives each Paced job of jobs the rate fraction × the peak of
// its codec and size in peaks, rounded to a whole number of calls per
// second so that runs from the same peaks combine. It fails for a job whose
// peak is missing.
func setPacedRates(jobs []Job, peaks map[string]float64, fraction float64) error {
	for i, j := range jobs {
		if j.Scenario.Shape != Paced {
			continue
		}
		peak, ok := peaks[peakKey(j.Params.Codec, j.Params.Size)]
		if !ok {
			return fmt.Errorf("harness: no peak for %s (%s %s) to pace at a fraction of", j.ID(), j.Params.Codec, j.Params.Size)
		}
		jobs[i].Params.Rate = math.Round(fraction * peak)
	}
	return nil
}

// peakJobs returns the saturated jobs of the scenario key for the codecs
// and sizes of the Paced jobs, each once, with the parameters base gives
// them: the runs whose msgs/s the paced rates are a fraction of.
func peakJobs(all []Scenario, key string, jobs []Job, base func(Scenario, string, payload.Size) Params) ([]Job, error) {
	var peak *Scenario
	for i := range all {
		if all[i].Key() == key {
			peak = &all[i]
		}
	}
	if peak == nil {
		return nil, fmt.Errorf("harness: no scenario %q to measure the peak rate with", key)
	}
	seen := make(map[string]bool)
	var out []Job
	for _, j := range jobs {
		k := peakKey(j.Params.Codec, j.Params.Size)
		if j.Scenario.Shape != Paced || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, Job{Scenario: *peak, Params: base(*peak, j.Params.Codec, j.Params.Size)})
	}
	return out, nil
}

// The metrics of paced runs: the tail that queueing makes.
var (
	p999 = Metric{"p999 ms", func(_ Result, p Rep) float64 {
		if p.P999 <= 0 {
			return math.NaN()
		}
		return float64(p.P999) / 1e6
	}}
)
