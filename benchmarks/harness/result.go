package harness

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/protows/protows/benchmarks/payload"
)

// Modes say where a result's server ran, which decides what its CPU and
// memory figures mean.
const (
	// ModeInProcess: server and clients shared one process, so CPU and
	// memory figures are for both together (reported in the server columns).
	ModeInProcess = "in-process"
	// ModeChild: the server ran in a child process of its own, so server
	// and client figures are separate.
	ModeChild = "child"
	// ModeExternal: the server was already running; only client figures
	// and latencies are known.
	ModeExternal = "external"
)

// Rep is the raw figures of one repetition.
type Rep struct {
	// Messages delivered (calls completed, for echo) and the time it took.
	Messages int64         `json:"messages"`
	Elapsed  time.Duration `json:"elapsed"`
	// PayloadBytes is the application payload carried, both ways.
	PayloadBytes int64 `json:"payloadBytes"`
	// Frames is the payload-carrying WebSocket messages.
	Frames int64 `json:"frames"`
	// WireBytes is the TCP bytes both ways during the load (-1: unknown).
	WireBytes int64 `json:"wireBytes"`
	// ServerWrites is the server's writes to its connections during the
	// load, each a system call (0: unknown).
	ServerWrites int64 `json:"serverWrites,omitempty"`
	// P50, p95, P99 and P999 (99.9th) are latency percentiles.
	P50  time.Duration `json:"p50"`
	P95  time.Duration `json:"p95"`
	P99  time.Duration `json:"p99"`
	P999 time.Duration `json:"p999,omitempty"`
	// ServerCPU and ClientCPU are the CPU time used during the load (-1:
	// unknown; equal when the processes were shared).
	ServerCPU time.Duration `json:"serverCpu"`
	ClientCPU time.Duration `json:"clientCpu"`
	// ServerPeakRSS and ClientPeakRSS are resident high-water marks (0:
	// unknown).
	ServerPeakRSS int64 `json:"serverPeakRss"`
	ClientPeakRSS int64 `json:"clientPeakRss"`
	// ServerConnBytes is the server's resident memory growth from opening
	// the connections, before load (-1: unknown).
	ServerConnBytes int64 `json:"serverConnBytes"`
	// ServerConnHeap is the growth of the server's Go heap and stacks
	// (ProcStats.Heap) from opening the connections (0: unknown).
	ServerConnHeap int64 `json:"serverConnHeap,omitempty"`
	// ServerConnGoroutines is the growth of the server's goroutines from
	// opening the connections (0: unknown).
	ServerConnGoroutines int `json:"serverConnGoroutines,omitempty"`
	// Counters are the growth of the server's counters (Counting) during
	// the load; nil when it keeps none.
	Counters map[string]int64 `json:"counters,omitempty"`
	// Conns is the number of connections opened (with the publisher's).
	Conns int `json:"conns"`
	// Turns are the repetition's turns, when its load took turns with a
	// partner's on one server (Config.Interleave), in order: the i-th
	// turn of each of the two was next to the other's i-th in time.
	Turns []Turn `json:"turns,omitempty"`
}

// Turn is what one turn of a load that took turns did (see Rep.Turns).
type Turn struct {
	Messages  int64         `json:"messages"`
	Elapsed   time.Duration `json:"elapsed"`
	ServerCPU time.Duration `json:"serverCpu"`
}

// Result is one scenario, implementation, codec and size, over several
// repetitions.
type Result struct {
	Scenario string       `json:"scenario"`
	Impl     string       `json:"impl"`
	Codec    string       `json:"codec"`
	Size     payload.Size `json:"size"`
	Conns    int          `json:"conns"`
	InFlight int          `json:"inFlight"`
	Burst    int          `json:"burst,omitempty"`
	Rate     float64      `json:"rate,omitempty"`
	Mode     string       `json:"mode"`
	// Interleave is the length of the turns the result's load took with
	// its scenario's partner's on one server (Config.Interleave); zero
	// when it had a server of its own.
	Interleave time.Duration `json:"interleave,omitempty"`
	Reps       []Rep         `json:"reps"`
}

// ID returns "scenario/impl/codec/size".
func (r Result) ID() string {
	return fmt.Sprintf("%s/%s/%s/%s", r.Scenario, r.Impl, r.Codec, r.Size)
}

// Metric is one figure derived from a repetition; NaN means unknown.
type Metric struct {
	// Name is the column header, with its unit.
	Name string
	// Of computes the figure for one repetition of r.
	Of func(r Result, rep Rep) float64
}

// Median returns the metric's median over r's repetitions, ignoring unknown
// ones (NaN when all are unknown).
func (m Metric) Median(r Result) float64 { return Median(m.values(r)) }

// Spread returns the metric's spread (see Spread) over r's repetitions.
func (m Metric) Spread(r Result) float64 { return Spread(m.values(r)) }

func (m Metric) values(r Result) []float64 {
	var xs []float64
	for _, rep := range r.Reps {
		if v := m.Of(r, rep); !math.IsNaN(v) {
			xs = append(xs, v)
		}
	}
	return xs
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(n) / d.Seconds()
}

// cpuPerMillion returns CPU seconds per million messages.
func cpuPerMillion(cpu time.Duration, msgs int64) float64 {
	if cpu < 0 || msgs == 0 {
		return math.NaN()
	}
	return cpu.Seconds() / float64(msgs) * 1e6
}

func known(v int64) float64 {
	if v <= 0 {
		return math.NaN()
	}
	return float64(v)
}

// The metrics of the report.
var (
	msgsPerSec = Metric{"msgs/s", func(_ Result, p Rep) float64 { return perSecond(p.Messages, p.Elapsed) }}
	payloadMBs = Metric{"payload MB/s", func(_ Result, p Rep) float64 { return perSecond(p.PayloadBytes, p.Elapsed) / 1e6 }}
	p50        = Metric{"p50 ms", func(_ Result, p Rep) float64 { return float64(p.P50) / 1e6 }}
	p95        = Metric{"p95 ms", func(_ Result, p Rep) float64 { return float64(p.P95) / 1e6 }}
	p99        = Metric{"p99 ms", func(_ Result, p Rep) float64 { return float64(p.P99) / 1e6 }}
	wirePerMsg = Metric{"wire B/msg", func(_ Result, p Rep) float64 {
		if p.WireBytes < 0 || p.Frames == 0 {
			return math.NaN()
		}
		return float64(p.WireBytes) / float64(p.Frames)
	}}
	// writesPerMsg shows write coalescing: below 1 when a write carries
	// several messages (batching), 1 or more when each costs its own.
	writesPerMsg = Metric{"server writes/msg", func(_ Result, p Rep) float64 {
		if p.ServerWrites <= 0 || p.Messages == 0 {
			return math.NaN()
		}
		return float64(p.ServerWrites) / float64(p.Messages)
	}}
	serverCPU = Metric{"server CPU s/M", func(_ Result, p Rep) float64 { return cpuPerMillion(p.ServerCPU, p.Messages) }}
	clientCPU = Metric{"client CPU s/M", func(r Result, p Rep) float64 {
		if r.Mode == ModeInProcess {
			return math.NaN() // in the server column, for both
		}
		return cpuPerMillion(p.ClientCPU, p.Messages)
	}}
	serverPeakMB = Metric{"server peak RSS MB", func(_ Result, p Rep) float64 { return known(p.ServerPeakRSS) / 1e6 }}
	clientPeakMB = Metric{"client peak RSS MB", func(r Result, p Rep) float64 {
		if r.Mode == ModeInProcess {
			return math.NaN()
		}
		return known(p.ClientPeakRSS) / 1e6
	}}
	serverBytesPerConn = Metric{"server B/conn", func(_ Result, p Rep) float64 {
		if p.ServerConnBytes < 0 || p.Conns == 0 {
			return math.NaN()
		}
		return float64(p.ServerConnBytes) / float64(p.Conns)
	}}
	serverHeapPerConn = Metric{"server heap B/conn", func(_ Result, p Rep) float64 {
		if p.ServerConnHeap <= 0 || p.Conns == 0 {
			return math.NaN()
		}
		return float64(p.ServerConnHeap) / float64(p.Conns)
	}}
	// marshalsPerBroadcast divides the server's payload marshals by the
	// publishes: deliveries over members, since every publish reaches
	// every member.
	marshalsPerBroadcast = Metric{"marshals/bcast", func(r Result, p Rep) float64 {
		n, ok := p.Counters[CounterMarshals]
		if !ok || !strings.HasPrefix(r.Scenario, "broadcast") || r.Conns == 0 || p.Messages == 0 {
			return math.NaN()
		}
		return float64(n) / (float64(p.Messages) / float64(r.Conns))
	}}
)

// Metrics returns the report's metrics in column order.
func Metrics() []Metric {
	return []Metric{msgsPerSec, payloadMBs, p50, p95, p99, wirePerMsg, writesPerMsg, serverCPU, clientCPU, serverPeakMB, clientPeakMB, serverBytesPerConn, serverHeapPerConn, marshalsPerBroadcast}
}

// Combine joins results of the same scenario, implementation, codec, size
// and parameters into one, with the repetitions of all, in order: what
// separate runs of the load tools, interleaved so that a drifting machine
// affects each implementation alike, measured one repetition at a time.
// Results that differ in a parameter stay apart.
func Combine(results []Result) []Result {
	type key struct {
		id                     string
		conns, inFlight, burst int
		rate                   float64
		mode                   string
		interleave             time.Duration
	}
	out := make([]Result, 0, len(results))
	at := make(map[key]int, len(results))
	for _, r := range results {
		k := key{r.ID(), r.Conns, r.InFlight, r.Burst, r.Rate, r.Mode, r.Interleave}
		if i, ok := at[k]; ok {
			out[i].Reps = append(out[i].Reps, r.Reps...)
			continue
		}
		at[k] = len(out)
		r.Reps = slices.Clone(r.Reps)
		out = append(out, r)
	}
	return out
}
