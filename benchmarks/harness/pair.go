package harness

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A pair is a scenario and its Partner, run with Config.Interleave: in each
// repetition both loads are connected to one server (the scenario's), and
// they take turns of Interleave each until each had Params.Duration, after
// a turn each that is not measured. Each turn's server CPU, wire bytes and
// messages go to the load that ran it.
//
// Two scenarios run one after the other, each on a server of its own,
// differ in more than their loads: the machine's speed drifts between
// them (shared hosts drift by tens of percent within seconds), and so may
// the server's heap, and with it how often the garbage collector runs. On
// one server, in turns a fraction of a second long, both loads meet the
// same heap, the same caches and the same machine: what differs is what
// they send. The turns go A B B A A B ..., so that a drift that is steady
// over a pair of turns costs both loads alike.

// pairOf returns the jobs of job i's pair: the host, of the scenario that
// names the other as its Partner (its server serves both), and the guest;
// ok is false when i has no partner among jobs with its codec and size.
func pairOf(jobs []Job, i int) (host, guest int, ok bool) {
	same := func(k int) bool {
		return k != i && jobs[k].Params.Codec == jobs[i].Params.Codec && jobs[k].Params.Size == jobs[i].Params.Size
	}
	for k, j := range jobs {
		switch {
		case !same(k):
		case jobs[i].Scenario.Partner != "" && j.Scenario.Key() == jobs[i].Scenario.Partner:
			return i, k, true
		case j.Scenario.Partner != "" && j.Scenario.Partner == jobs[i].Scenario.Key():
			return k, i, true
		}
	}
	return -1, -1, false
}

// runPair runs job host, whose server both loads use, and job guest in
// turns (see the comment at the top of this file), and returns their
// results.
func runPair(ctx context.Context, cfg Config, host, guest Job, tag string) (rh, rg Result, err error) {
	p := host.Params
	if p.Duration <= 0 || p.Messages > 0 || guest.Params.Messages > 0 {
		return rh, rg, errors.New("harness: loads that take turns are bound by time alone: a -duration, and -messages 0")
	}
	if host.Scenario.Shape != Calls || guest.Scenario.Shape != Calls {
		return rh, rg, errors.New("harness: only scenarios of calls (echo) take turns")
	}
	rh, rg = newResult(cfg, host), newResult(cfg, guest)
	rh.Interleave, rg.Interleave = cfg.Interleave, cfg.Interleave
	for i := range reps(cfg) {
		label := fmt.Sprintf("%s %s with %s rep %d/%d", tag, host.ID(), guest.Scenario.Impl, i+1, reps(cfg))
		a, b, err := runPairRep(ctx, cfg, host, guest, i+1, label)
		if err != nil {
			return rh, rg, fmt.Errorf("rep %d: %w", i+1, err)
		}
		rh.Reps, rg.Reps = append(rh.Reps, a), append(rg.Reps, b)
	}
	if cfg.Progress != nil {
		for _, r := range []Result{rh, rg} {
			fmt.Fprintf(cfg.Progress, "\r\033[K%s %s (in turns): %.0f msgs/s (±%.0f%%), server %.2f CPU s/M\n", tag, r.ID(),
				msgsPerSec.Median(r), 100*msgsPerSec.Spread(r), serverCPU.Median(r))
		}
	}
	return rh, rg, nil
}

// side is one load of a pair and what its turns added up to.
type side struct {
	load    Load
	rec     *Recorder
	elapsed time.Duration
	client  time.Duration
	server  serverDelta
	conn    ProcStats // the server before this load connected
	after   ProcStats // and after
	turns   []Turn
}

func runPairRep(ctx context.Context, cfg Config, host, guest Job, n int, label string) (a, b Rep, err error) {
	ResetPeakRSS()
	srv, err := startServer(ctx, cfg, host, n)
	if err != nil {
		return a, b, err
	}
	defer func() { err = errors.Join(err, srv.close()) }()
	turns := int((host.Params.Duration + cfg.Interleave - 1) / cfg.Interleave)
	sides := [2]*side{}
	for k, j := range []Job{host, guest} {
		s := &side{rec: NewRecorder(0, j.Params.Conns*turns, nil)}
		if s.conn, _, err = srv.snapshot(true); err != nil {
			return a, b, err
		}
		if s.load, err = j.Scenario.Connect(ctx, srv.url(), j.Params); err != nil {
			return a, b, fmt.Errorf("connect %s: %w", j.Scenario.Key(), err)
		}
		defer func() { err = errors.Join(err, s.load.Close()) }()
		if s.after, _, err = srv.snapshot(true); err != nil {
			return a, b, err
		}
		sides[k] = s
	}
	// A turn of each, not measured, first: the first calls of a
	// connection cost more (buffers, goroutines, the server's warm-up),
	// which would count against the load that went first.
	for _, s := range sides {
		if _, err := takeTurn(ctx, cfg, s.load, NewRecorder(0, 1, nil)); err != nil {
			return a, b, err
		}
	}
	at, known, err := srv.snapshot(false)
	if err != nil {
		return a, b, err
	}
	cat := ReadSelf(false)
	stopProgress := progress(cfg.Progress, label, sides[1].rec)
	defer stopProgress()
	for t := range 2 * turns {
		// A B B A A B ...
		s := sides[(t+t/2)%2]
		before := s.rec.Messages()
		took, err := takeTurn(ctx, cfg, s.load, s.rec)
		if err != nil {
			return a, b, err
		}
		s.elapsed += took
		next, _, err := srv.snapshot(false)
		if err != nil {
			return a, b, err
		}
		cnext := ReadSelf(false)
		s.server.add(at, next)
		s.turns = append(s.turns, Turn{Messages: s.rec.Messages() - before, Elapsed: took, ServerCPU: next.CPU - at.CPU})
		s.client += cnext.CPU - cat.CPU
		at, cat = next, cnext
	}
	reps := [2]Rep{}
	for k, s := range sides {
		r := measured(s.rec, s.elapsed, []Job{host, guest}[k].Params.Conns)
		r.ClientCPU, r.ClientPeakRSS = s.client, cat.PeakRSS
		if known {
			r.Turns = s.turns
			s.server.setOn(&r)
			r.ServerPeakRSS = at.PeakRSS
			r.ServerConnBytes = s.after.RSS - s.conn.RSS
			r.ServerConnHeap = s.after.Heap - s.conn.Heap
			r.ServerConnGoroutines = s.after.Goroutines - s.conn.Goroutines
		}
		if r.Messages == 0 {
			return a, b, errors.New("no message was delivered")
		}
		reps[k] = r
	}
	return reps[0], reps[1], nil
}

// takeTurn runs load for a turn (Config.Interleave), recording with rec,
// and returns how long it took, with the replies it waited for.
func takeTurn(ctx context.Context, cfg Config, load Load, rec *Recorder) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Interleave)
	defer cancel()
	start := time.Now()
	err := runLoad(ctx, cfg, load, rec, cfg.Interleave)
	return time.Since(start), err
}

// serverDelta is what a server did between snapshots, summed over spans.
type serverDelta struct {
	cpu          time.Duration
	wire, writes int64
	counters     map[string]int64
}

// add adds what the server did from s1 to s2.
func (d *serverDelta) add(s1, s2 ProcStats) {
	d.cpu += s2.CPU - s1.CPU
	d.wire += (s2.WireIn - s1.WireIn) + (s2.WireOut - s1.WireOut)
	d.writes += s2.WireWrites - s1.WireWrites
	if s2.Counters != nil {
		if d.counters == nil {
			d.counters = make(map[string]int64, len(s2.Counters))
		}
		for k, v := range s2.Counters {
			d.counters[k] += v - s1.Counters[k]
		}
	}
}

// setOn puts d's figures on r.
func (d *serverDelta) setOn(r *Rep) {
	r.ServerCPU, r.WireBytes, r.ServerWrites, r.Counters = d.cpu, d.wire, d.writes, d.counters
}
