package harness

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// samplesPerRun bounds the latency samples one repetition keeps, over all
// of its series: enough for a stable p99, small enough for 1,000 clients.
const samplesPerRun = 200_000

// Recorder collects what a load observes during one repetition. Counters are
// atomic; latencies go into Series, one per goroutine, so that recording does
// not contend.
type Recorder struct {
	messages atomic.Int64
	payload  atomic.Int64
	frames   atomic.Int64
	target   int64
	reached  func() // called once when messages reaches target

	mu     sync.Mutex
	series []*Series
	perCap int
}

// NewRecorder returns a recorder that calls reached (once) when target
// messages have been recorded. A target of 0 means no count bound. The
// expected number of series sizes each series' share of the sample budget.
func NewRecorder(target int64, expectedSeries int, reached func()) *Recorder {
	if reached == nil {
		reached = func() {}
	}
	return &Recorder{
		target:  target,
		reached: sync.OnceFunc(reached),
		perCap:  max(samplesPerRun/max(expectedSeries, 1), 256),
	}
}

// Series returns a new latency series. A Series is not safe for concurrent
// use: give each goroutine its own.
func (r *Recorder) Series() *Series {
	s := &Series{r: r}
	r.mu.Lock()
	s.res = newReservoir(r.perCap, uint64(len(r.series))*0x9e3779b97f4a7c15+1)
	r.series = append(r.series, s)
	r.mu.Unlock()
	return s
}

// Messages returns the messages recorded so far.
func (r *Recorder) Messages() int64 { return r.messages.Load() }

// Series records the latencies of one goroutine.
type Series struct {
	r   *Recorder
	res *reservoir
}

// Record counts one delivered message: its latency, the payload bytes it
// carried (both ways, for a round trip) and how many payload-carrying
// WebSocket messages it took (2 for a request and its reply). It reports
// whether the recorder's count bound has been reached.
func (s *Series) Record(latency time.Duration, payloadBytes, frames int) bool {
	s.res.add(latency)
	s.r.payload.Add(int64(payloadBytes))
	s.r.frames.Add(int64(frames))
	n := s.r.messages.Add(1)
	if s.r.target > 0 && n >= s.r.target {
		s.r.reached()
		return true
	}
	return false
}

// RecordMany counts n delivered messages whose latency was not measured
// (minimal clients that do not decode payloads), carried in frames
// WebSocket messages. It reports whether the count bound has been reached.
func (s *Series) RecordMany(n, payloadBytes, frames int) bool {
	s.r.payload.Add(int64(payloadBytes))
	s.r.frames.Add(int64(frames))
	m := s.r.messages.Add(int64(n))
	if s.r.target > 0 && m >= s.r.target {
		s.r.reached()
		return true
	}
	return false
}

// sorted returns every kept latency sample, sorted. Call it only after the
// load has stopped.
func (r *Recorder) sorted() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []time.Duration
	for _, s := range r.series {
		all = append(all, s.res.samples...)
	}
	slices.Sort(all)
	return all
}
