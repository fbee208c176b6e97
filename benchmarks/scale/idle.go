package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The idle measurement (-idle): what an idle connection and an idle room
// member cost the server, with no broadcast. Each run starts a server,
// measures it empty, with -conns connections that called nothing, and with
// the same connections each a member of the room; the runs alternate
// between the servers of -servers (builds of two revisions, say), and
// the report gives the median of each figure per server.

// ServerExe is a server program to measure: a build of this command,
// perhaps from another revision, which plays the server role.
type ServerExe struct {
	// Name labels the server in the report.
	Name string
	// Path is the executable; "" means this binary.
	Path string
}

// parseServers parses -servers: "name=path,name=path"; a bare name, or an
// empty path, means this binary.
func parseServers(s string) ([]ServerExe, error) {
	if s == "" {
		return []ServerExe{{Name: "this"}}, nil
	}
	var out []ServerExe
	for f := range strings.SplitSeq(s, ",") {
		name, path, _ := strings.Cut(f, "=")
		if name == "" {
			return nil, fmt.Errorf("-servers %q: an entry without a name", s)
		}
		out = append(out, ServerExe{Name: name, Path: path})
	}
	return out, nil
}

// IdleRun is one idle measurement of one server.
type IdleRun struct {
	Server string
	Conns  int
	// Before is the server with no connection, Idle with Conns connections
	// that called nothing, Members with each of them a member of the room;
	// all after a GC.
	Before, Idle, Members Stats
}

// perConn is the growth of a figure from Before to Idle, per connection.
func (r IdleRun) perConn(f func(Stats) int64) int64 {
	return (f(r.Idle) - f(r.Before)) / int64(max(r.Conns, 1))
}

// perMember is the growth of a figure from Before to Members, per member:
// a connection and its membership.
func (r IdleRun) perMember(f func(Stats) int64) int64 {
	return (f(r.Members) - f(r.Before)) / int64(max(r.Conns, 1))
}

// settle is how long the server is left alone before a measurement: its
// idle workers exit after a second (transport's workerIdle).
const settle = 2 * time.Second

// runIdle measures one server once.
func runIdle(ctx context.Context, cfg DriverConfig, srvExe ServerExe, codecName string) (run IdleRun, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	run = IdleRun{Server: srvExe.Name, Conns: cfg.Conns}
	timeout := "-timeout=" + cfg.Timeout.String()
	var srv *child
	if srvExe.Path == "" {
		srv, err = startChild("server", []string{timeout})
	} else {
		srv, err = startChildExe(srvExe.Path, "server", []string{timeout})
	}
	if err != nil {
		return run, err
	}
	var ld *child
	defer func() {
		err = errors.Join(err, srv.stop(2*ioTimeout))
		if ld != nil {
			err = errors.Join(err, ld.stop(2*ioTimeout))
		}
	}()
	addr, err := srv.expect(ctx, "listen")
	if err != nil {
		return run, err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if run.Before, err = serverStats(ctx, hc, addr, true); err != nil {
		return run, err
	}
	ld, err = startChild("load", []string{timeout, "-addrs=" + addr, "-codec=" + codecName,
		"-conns=" + strconv.Itoa(cfg.Conns), "-messages=0", "-defer-join",
		"-sources=" + strconv.Itoa(cfg.Sources)})
	if err != nil {
		return run, err
	}
	if _, err := ld.expect(ctx, "ready"); err != nil {
		return run, err
	}
	if err := pause(ctx, settle); err != nil {
		return run, err
	}
	if run.Idle, err = serverStats(ctx, hc, addr, true); err != nil {
		return run, err
	}
	if err := ld.send("join"); err != nil {
		return run, err
	}
	if _, err := ld.expect(ctx, "joined"); err != nil {
		return run, err
	}
	if err := waitMembers(ctx, hc, addr, cfg.Conns, cfg.Conns); err != nil {
		return run, err
	}
	if err := pause(ctx, settle); err != nil {
		return run, err
	}
	if run.Members, err = serverStats(ctx, hc, addr, true); err != nil {
		return run, err
	}
	if err := ld.send("done"); err != nil {
		return run, err
	}
	if _, err := ld.expect(ctx, "result"); err != nil {
		return run, err
	}
	return run, nil
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// driveIdle runs cfg.Runs rounds of the idle measurement, each measuring
// every server in turn (A B A B ...), and writes the report.
func driveIdle(ctx context.Context, cfg DriverConfig, out io.Writer) error {
	byServer := make(map[string][]IdleRun)
	for i := range cfg.Runs {
		for _, s := range cfg.Servers {
			fmt.Fprintf(out, "scale: idle, round %d of %d, server %s, %d connections, %s ...\n", i+1, cfg.Runs, s.Name, cfg.Conns, cfg.Codecs[0])
			r, err := runIdle(ctx, cfg, s, cfg.Codecs[0])
			if err != nil {
				return fmt.Errorf("server %s: %w", s.Name, err)
			}
			fmt.Fprintf(out, "scale:   idle connection %s, member %s of RSS\n",
				size(r.perConn(func(s Stats) int64 { return s.RSS })), size(r.perMember(func(s Stats) int64 { return s.RSS })))
			byServer[s.Name] = append(byServer[s.Name], r)
		}
	}
	return writeIdleReport(out, cfg, byServer)
}

// median is the median of f over runs (the lower middle of an even count).
func median(runs []IdleRun, f func(IdleRun) int64) int64 {
	v := make([]int64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

func writeIdleReport(out io.Writer, cfg DriverConfig, byServer map[string][]IdleRun) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nIdle server memory, %d connections, codec %s, median of %d runs per server (alternating), GOMAXPROCS %d (driver)\n\n", cfg.Conns, cfg.Codecs[0], cfg.Runs, cores())
	b.WriteString("| server | RSS per idle connection | RSS per idle member (connection + membership) | membership alone | Go heap per member | stacks per member | goroutines per member | runs (RSS per member) |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	rss := func(s Stats) int64 { return s.RSS }
	for _, s := range cfg.Servers {
		runs := byServer[s.Name]
		var each []string
		for _, r := range runs {
			each = append(each, size(r.perMember(rss)))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.2f | %s |\n", s.Name,
			size(median(runs, func(r IdleRun) int64 { return r.perConn(rss) })),
			size(median(runs, func(r IdleRun) int64 { return r.perMember(rss) })),
			size(median(runs, func(r IdleRun) int64 { return r.perMember(rss) - r.perConn(rss) })),
			size(median(runs, func(r IdleRun) int64 { return r.perMember(func(s Stats) int64 { return s.HeapLive }) })),
			size(median(runs, func(r IdleRun) int64 { return r.perMember(func(s Stats) int64 { return s.Stacks }) })),
			float64(median(runs, func(r IdleRun) int64 { return 100 * r.perMember(func(s Stats) int64 { return s.Goroutines }) }))/100,
			strings.Join(each, ", "))
	}
	_, err := io.WriteString(out, b.String())
	return err
}
