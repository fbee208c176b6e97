package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Derived figures of a run.

// perConn is the growth of a server figure from Before to Joined, per
// member.
func (r Run) perConn(f func(Stats) int64) int64 {
	if r.Conns == 0 {
		return 0
	}
	return (f(r.Joined) - f(r.Before)) / int64(r.Conns)
}

// deliveriesPerSec is the members' receipts per second between the first
// and the last.
func (r Run) deliveriesPerSec() float64 {
	d := time.Duration(r.Load.Last - r.Load.First)
	if d <= 0 {
		return 0
	}
	return float64(r.Load.Deliveries) / d.Seconds()
}

// publishRate is the publishes per second achieved: the target rate
// unless the server held the publisher back.
func (r Run) publishRate() float64 {
	if r.Sent <= 0 || r.Messages < 2 {
		return 0
	}
	// The first publish goes at 0, the last at (n-1)/rate.
	return float64(r.Messages-1) / r.Sent.Seconds()
}

// serverCPU is the server's CPU time during the broadcast, as a share of
// one core (100% is one core; the machine has GOMAXPROCS of them).
func (r Run) serverCPU() float64 {
	if r.Publish <= 0 {
		return 0
	}
	return float64(r.After.CPU-r.Joined.CPU) / float64(r.Publish)
}

// cpuPerDelivery is the servers' CPU time during the broadcast divided by
// the deliveries, in microseconds: what a delivery costs, whatever share
// of the machine the servers got.
func (r Run) cpuPerDelivery() float64 {
	if r.Load.Deliveries == 0 {
		return 0
	}
	return float64((r.After.CPU - r.Joined.CPU).Microseconds()) / float64(r.Load.Deliveries)
}

// loadCPU is the load process's CPU time while receiving, as a share of
// one core. It includes the final sort of the latencies.
func (r Run) loadCPU() float64 {
	if r.Publish <= 0 {
		return 0
	}
	return float64(r.Load.Self.CPU-r.Load.ReadyCPU) / float64(r.Publish)
}

// projection is the resident memory of one server process holding n
// members, from the measured baseline and bytes per connection.
func (r Run) projection(n int64) int64 {
	return r.Before.RSS + n*r.perConn(func(s Stats) int64 { return s.RSS })
}

func writeReport(out io.Writer, cfg DriverConfig, runs []Run) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d members in one room on %d server process(es), in %d load process(es), %.0f publishes/s for %v, GOMAXPROCS %d (driver)\n\n",
		cfg.Conns, max(cfg.Nodes, 1), max(cfg.LoadProcs, 1), cfg.Rate, cfg.Duration, cores())
	b.WriteString("| codec | members | payload | messages | publishes/s | deliveries | deliveries/s | p50 | p99 | p99.9 | max | complete | server CPU | load CPU | server CPU per delivery |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | %d | %d B | %d | %.1f | %d of %d | %.0f | %s | %s | %s | %s | %d of %d | %.0f%% | %.0f%% | %.1f µs |\n",
			r.Codec, r.Conns, r.Size, r.Messages, r.publishRate(), r.Load.Deliveries, int64(r.Messages)*int64(r.Conns),
			r.deliveriesPerSec(), ms(r.Load.P50), ms(r.Load.P99), ms(r.Load.P999), ms(r.Load.Max),
			r.Load.Complete, r.Conns, 100*r.serverCPU(), 100*r.loadCPU(), r.cpuPerDelivery())
	}
	b.WriteString("\n| codec | server RSS, no member | with members | RSS per conn | Go heap per conn | stacks per conn | goroutines per conn | peak RSS | kernel slab per conn (both ends, machine-wide) | load process RSS |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s |\n", r.Codec,
			size(r.Before.RSS), size(r.Joined.RSS),
			size(r.perConn(func(s Stats) int64 { return s.RSS })),
			size(r.perConn(func(s Stats) int64 { return s.HeapLive })),
			size(r.perConn(func(s Stats) int64 { return s.Stacks })),
			float64(r.Joined.Goroutines-r.Before.Goroutines)/float64(max(r.Conns, 1)),
			size(r.After.HWM),
			size(r.perConn(func(s Stats) int64 { return s.KernelSlab })),
			size(r.Load.Self.RSS))
	}
	for _, r := range runs {
		writeCluster(&b, r)
	}
	for _, r := range runs {
		writeEvents(&b, r)
	}
	b.WriteString("\n")
	for _, r := range runs {
		if r.Nodes > 1 {
			if r.Load.Failed > 0 || r.Load.Duplicates > 0 || r.Load.Gaps > 0 {
				fmt.Fprintf(&b, "%s: %d members failed (first: %s), %d duplicates, %d sequence gaps\n",
					r.Codec, r.Load.Failed, r.Load.FirstError, r.Load.Duplicates, r.Load.Gaps)
			}
			continue
		}
		fmt.Fprintf(&b, "%s: one server process would need about %s of RSS for 100,000 connections and %s for 1,000,000 (%s + n x %s), kernel socket memory and file descriptors aside.\n",
			r.Codec, size(r.projection(100_000)), size(r.projection(1_000_000)),
			size(r.Before.RSS), size(r.perConn(func(s Stats) int64 { return s.RSS })))
		if r.Load.Failed > 0 || r.Load.Duplicates > 0 || r.Load.Gaps > 0 {
			fmt.Fprintf(&b, "%s: %d members failed (first: %s), %d duplicates, %d sequence gaps\n",
				r.Codec, r.Load.Failed, r.Load.FirstError, r.Load.Duplicates, r.Load.Gaps)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// writeCluster writes the figures of each node and of NATS for a run of
// several nodes.
func writeCluster(b *strings.Builder, r Run) {
	if r.Nodes <= 1 {
		return
	}
	fmt.Fprintf(b, "\n%s, by node (the publisher is connected to %s; latency of the members connected to each node):\n\n", r.Codec, r.Servers[0].Name)
	b.WriteString("| node | members here | room members it knows | RSS, no member | with members | RSS per member here | Go heap per member here | peak RSS | CPU | deliveries | p50 | p99 |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i, n := range r.Servers {
		per := func(f func(Stats) int64) int64 { return (f(n.Joined) - f(n.Before)) / int64(max(n.Members, 1)) }
		var h Hist
		if i < len(r.Load.ByNode) {
			h = r.Load.ByNode[i]
		}
		cpu := 0.0
		if r.Publish > 0 {
			cpu = float64(n.After.CPU-n.Joined.CPU) / float64(r.Publish)
		}
		fmt.Fprintf(b, "| %s | %d | %d | %s | %s | %s | %s | %s | %.0f%% | %d | %s | %s |\n", n.Name, n.Joined.Members, n.Joined.RoomMembers,
			size(n.Before.RSS), size(n.Joined.RSS), size(per(func(s Stats) int64 { return s.RSS })),
			size(per(func(s Stats) int64 { return s.HeapLive })), size(n.After.HWM), 100*cpu,
			h.Count(), ms(h.Quantile(0.5)), ms(h.Quantile(0.99)))
	}
	if nt := r.NATS; nt != nil {
		join, cast := natsDiff(nt.Joined, nt.Before), natsDiff(nt.After, nt.Joined)
		cpu, perPub := 0.0, func(n int64) int64 { return n / int64(max(r.Messages, 1)) }
		if r.Publish > 0 {
			cpu = float64(nt.After.Self.CPU-nt.Joined.Self.CPU) / float64(r.Publish)
		}
		secs := r.Publish.Seconds()
		fmt.Fprintf(b, "\n%s, NATS (%d client connections):\n\n", r.Codec, nt.Joined.Conns)
		b.WriteString("| phase | messages in | messages out | bytes in | bytes out | per publish in / out | out per second | NATS CPU | NATS RSS |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		fmt.Fprintf(b, "| joins (presence) | %d | %d | %s | %s | | | | %s |\n", join.InMsgs, join.OutMsgs, size(join.InBytes), size(join.OutBytes), size(nt.Joined.Self.RSS))
		fmt.Fprintf(b, "| broadcast | %d | %d | %s | %s | %s / %s | %s/s | %.0f%% | %s |\n", cast.InMsgs, cast.OutMsgs, size(cast.InBytes), size(cast.OutBytes),
			size(perPub(cast.InBytes)), size(perPub(cast.OutBytes)), size(int64(float64(cast.OutBytes)/max(secs, 1e-9))), 100*cpu, size(nt.After.Self.RSS))
	}
	if len(r.Loads) > 0 {
		fmt.Fprintf(b, "\n%s, load processes:", r.Codec)
		for i, l := range r.Loads {
			cpu := 0.0
			if r.Publish > 0 {
				cpu = float64(l.Self.CPU-l.ReadyCPU) / float64(r.Publish)
			}
			fmt.Fprintf(b, " #%d %d members, CPU %.0f%%, RSS %s, joined in %v;", i+1, l.Members, 100*cpu, size(l.Self.RSS), l.JoinTime.Round(time.Millisecond))
		}
		b.WriteString("\n")
	}
}

// writeEvents writes each server's counts of drops, gaps, NATS errors and
// publications to NATS at the end of the run, when it has any.
func writeEvents(b *strings.Builder, r Run) {
	for _, n := range r.Servers {
		keys := slices.Sorted(maps.Keys(n.After.Events))
		if len(keys) == 0 {
			continue
		}
		fmt.Fprintf(b, "\n%s, %s events:", r.Codec, n.Name)
		for _, k := range keys {
			fmt.Fprintf(b, " %s %d;", k, n.After.Events[k])
		}
		if n.After.NATSError != "" {
			fmt.Fprintf(b, " first NATS error: %s", n.After.NATSError)
		}
	}
	b.WriteString("\n")
}

// natsDiff is a minus b, counters only.
func natsDiff(a, b NATSStats) NATSStats {
	return NATSStats{InMsgs: a.InMsgs - b.InMsgs, InBytes: a.InBytes - b.InBytes, OutMsgs: a.OutMsgs - b.OutMsgs, OutBytes: a.OutBytes - b.OutBytes}
}

// ms formats microseconds as milliseconds.
func ms(us int64) string {
	return fmt.Sprintf("%.2f ms", float64(us)/1e3)
}

// size formats bytes in binary units.
func size(n int64) string {
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%s%.2f GiB", neg, float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%s%.1f KiB", neg, float64(n)/(1<<10))
	}
	return fmt.Sprintf("%s%d B", neg, n)
}
