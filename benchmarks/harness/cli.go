package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/protows/protows/benchmarks/payload"
)

// Main is the command line of a load tool: it parses args (without the
// program name), runs the selected scenarios, prints the Markdown report to
// stdout and writes NAME.md, NAME.jsonl and NAME.svg into the output
// directory. Run with the child flag it is instead a server child (see
// Config.Child). Every server binds to loopback.
func Main(ctx context.Context, scenarios []Scenario, args []string) error {
	if IsChild(args) {
		return mainChild(scenarios, args[1])
	}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var (
		only     = fs.String("scenarios", "", "comma-separated scenario keys (name/impl, or name or impl alone) to run; empty runs all")
		codecs   = fs.String("codecs", "proto,json", "codecs to run")
		sizes    = fs.String("sizes", "small,medium,large", "payload sizes to run")
		conns    = fs.Int("conns", 16, "connections, for echo and push")
		inflight = fs.Int("inflight", 0, "calls in flight per connection, for echo (0: 8, or 2 for large payloads)")
		burst    = fs.Int("burst", 0, "messages per stream, for push (0: 256, or 16 for large payloads)")
		idle     = fs.Int("idle-conns", 1000, "connections of the idle scenario")
		members  = fs.Int("members", 100, "room members, for broadcast")
		window   = fs.Int("window", 0, "publishes the broadcast publisher may be ahead of the deliveries (0: 8, or 2 for large payloads)")
		rate     = fs.Float64("rate", 0, "publishes per second, for broadcast (0: as fast as the window allows); calls per second over all connections, for paced echo (echo-paced, serverecho-paced)")
		fraction = fs.Float64("peak-fraction", 0, "pace echo-paced and serverecho-paced at this fraction (0 < f <= 1) of the peak msgs/s of saturated -peak-of, per codec and size, instead of at -rate")
		peakOf   = fs.String("peak-of", PeakOf, "scenario key whose saturated msgs/s -peak-fraction takes a fraction of")
		peakFrom = fs.String("peak-from", "", "comma-separated JSON-lines result files to take the -peak-of peak from; empty measures it first, in this run (its results are reported too)")
		summary  = fs.String("summary-into", "", "also put the short results page (NAME-summary.md) into this Markdown file, between its summary markers, and its chart beside it as summary.svg")
		messages = fs.Int64("messages", 200_000, "count bound of each repetition: messages delivered (0: none)")
		duration = fs.Duration("duration", 3*time.Second, "time bound of each repetition (0: none)")
		reps     = fs.Int("reps", 3, "repetitions of each run; the report shows medians")
		server   = fs.String("server", "", "ws:// URL of a running server to load instead of starting one (loopback only)")
		serve    = fs.String("serve", "", "serve the one selected scenario's server at this loopback address (127.0.0.1:8080) until interrupted, for -server runs from elsewhere")
		child    = fs.Bool("child", false, "run each server in a child process, so that server and client CPU and memory are measured apart")
		turns    = fs.Duration("interleave", 0, "run each scenario that has a partner (serverecho/protows-keyed: serverecho/protows) with it on one server, their loads taking turns of this length, each for -duration (0: each on a server of its own)")
		profile  = fs.String("server-cpuprofile", "", "with -child: write each server's CPU profile to this directory (one file per repetition)")
		cpuprof  = fs.String("cpuprofile", "", "write the CPU profile of this process (the clients, with -child) to this file")
		outDir   = fs.String("out", "benchmarks/out", "directory for the report files")
		name     = fs.String("name", "results", "base name of the report files")
		merge    = fs.String("merge", "", "comma-separated JSON-lines result files (from other runs or load tools) to add to the report; repetitions of the same run are combined")
		list     = fs.Bool("list", false, "list the scenarios and exit")
		noRun    = fs.Bool("no-run", false, "run nothing: report the -merge files only")
		quiet    = fs.Bool("quiet", false, "no progress line")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		for _, s := range scenarios {
			fmt.Printf("%s\t%s\n", s.Key(), strings.Join(s.Codecs, ","))
		}
		return nil
	}
	if *server != "" {
		if err := checkLoopback(*server); err != nil {
			return err
		}
	}
	selected, err := selectScenarios(scenarios, *only)
	if err != nil {
		return err
	}
	if *serve != "" {
		if len(selected) != 1 {
			return fmt.Errorf("-serve needs exactly one scenario (-scenarios name/impl), have %d", len(selected))
		}
		c := splitList(*codecs)
		sizes, err := parseSizes(*sizes)
		if err != nil || len(c) == 0 || len(sizes) == 0 {
			return errors.Join(err, errors.New("-serve needs a codec and a size"))
		}
		return serveUntil(ctx, selected[0], Params{Codec: c[0], Size: sizes[0]}, *serve)
	}
	sizeList, err := parseSizes(*sizes)
	if err != nil {
		return err
	}
	var jobs []Job
	if *noRun {
		selected = nil
	}
	paramsOf := func(s Scenario, c string, size payload.Size) Params {
		p := Params{Codec: c, Size: size, Conns: *conns, InFlight: auto(*inflight, 8, size), Messages: *messages, Duration: *duration}
		switch s.Shape {
		case Fanout:
			p.Conns, p.InFlight, p.Rate = *members, auto(*window, 8, size), *rate
		case Stream:
			p.InFlight, p.Burst = 0, auto(*burst, 256, size)
		case Idle:
			p.Conns, p.InFlight, p.Messages = *idle, 1, int64(*idle)
		case Paced:
			p.InFlight, p.Rate = 0, *rate
		}
		return p
	}
	for _, s := range selected {
		for i, size := range sizeList {
			if s.Shape == Idle && i > 0 {
				break // an idle connection's memory does not depend on the payload
			}
			for _, c := range splitList(*codecs) {
				if slices.Contains(s.Codecs, c) {
					jobs = append(jobs, Job{Scenario: s, Params: paramsOf(s, c, size)})
				}
			}
		}
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg := Config{Reps: *reps, ServerURL: *server, Child: *child, ProfileDir: *profile, Interleave: *turns}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	peakResults, err := pace(ctx, cfg, scenarios, jobs, paramsOf, *fraction, *peakOf, splitList(*peakFrom))
	if err != nil {
		return err
	}
	results, runErr := Run(ctx, cfg, jobs)
	results = append(peakResults, results...)
	for _, f := range splitList(*merge) {
		more, err := readResultsFile(f)
		if err != nil {
			return errors.Join(runErr, err)
		}
		results = append(results, more...)
	}
	results = Combine(results)
	if len(results) == 0 {
		return errors.Join(runErr, errors.New("no results"))
	}
	if err := WriteMarkdown(os.Stdout, results); err != nil {
		return errors.Join(runErr, err)
	}
	if err := writeFiles(*outDir, *name, results); err != nil {
		return errors.Join(runErr, err)
	}
	if *summary != "" {
		return errors.Join(runErr, publishSummary(*outDir, *name, *summary))
	}
	return runErr
}

// pace sets the rate of the Paced jobs: fraction of the peak msgs/s of the
// scenario peakOf, taken from the results in peakFrom or, when there are
// none, measured first (those results are returned, to be reported). With
// no fraction the jobs keep the rate of -rate, which must then be set.
func pace(ctx context.Context, cfg Config, all []Scenario, jobs []Job, paramsOf func(Scenario, string, payload.Size) Params, fraction float64, peakOf string, peakFrom []string) ([]Result, error) {
	if !slices.ContainsFunc(jobs, func(j Job) bool { return j.Scenario.Shape == Paced }) {
		return nil, nil
	}
	if fraction == 0 {
		for _, j := range jobs {
			if j.Scenario.Shape == Paced && j.Params.Rate <= 0 {
				return nil, fmt.Errorf("%s needs -rate or -peak-fraction", j.Scenario.Key())
			}
		}
		return nil, nil
	}
	if !(fraction > 0 && fraction <= 1) {
		return nil, fmt.Errorf("-peak-fraction %v: want 0 < f <= 1", fraction)
	}
	var measured, from []Result
	for _, f := range peakFrom {
		more, err := readResultsFile(f)
		if err != nil {
			return nil, err
		}
		from = append(from, more...)
	}
	if len(peakFrom) == 0 {
		pj, err := peakJobs(all, peakOf, jobs, paramsOf)
		if err != nil {
			return nil, err
		}
		if measured, err = Run(ctx, cfg, pj); err != nil {
			return nil, fmt.Errorf("measuring the peak: %w", err)
		}
		from = measured
	}
	return measured, setPacedRates(jobs, peakRates(from, peakOf), fraction)
}

// publishSummary splices the short page dir/name-summary.md into the
// Markdown file page and copies its chart beside page as summary.svg.
func publishSummary(dir, name, page string) error {
	summary, err := os.ReadFile(filepath.Join(dir, name+"-summary.md"))
	if err != nil {
		return err
	}
	chart, err := os.ReadFile(filepath.Join(dir, name+"-summary.svg"))
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(page)
	if err != nil {
		return err
	}
	// The page links its chart by the name it has beside the page.
	summary = bytes.ReplaceAll(summary, []byte("]("+name+"-summary.svg)"), []byte("](summary.svg)"))
	out, err := SpliceSummary(doc, summary)
	if err != nil {
		return fmt.Errorf("%s: %w", page, err)
	}
	return errors.Join(
		os.WriteFile(page, out, 0o644),
		os.WriteFile(filepath.Join(filepath.Dir(page), "summary.svg"), chart, 0o644))
}

// IsChild reports whether args (without the program name) make Main a
// server child. A test binary that runs child-mode loads calls Main from
// TestMain when it does.
func IsChild(args []string) bool { return len(args) == 2 && args[0] == childArg }

// auto returns v, or when it is 0 the default for the payload size: what is
// in flight when a bound is reached still has to arrive, and at large
// payloads (64 KB, slowest in JSON) a deep pipeline takes seconds to drain.
func auto(v, def int, size payload.Size) int {
	switch {
	case v > 0:
		return v
	case size == payload.Large:
		return max(def/16, 2)
	}
	return def
}

func mainChild(scenarios []Scenario, spec string) error {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		return fmt.Errorf("harness child: %w", err)
	}
	for _, s := range scenarios {
		if s.Key() != cs.Scenario {
			continue
		}
		if cs.CPUProfile != "" {
			f, err := os.Create(cs.CPUProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		return serveChild(s, cs.Params, os.Stdin, os.Stdout)
	}
	return fmt.Errorf("harness child: unknown scenario %q", cs.Scenario)
}

func writeFiles(dir, name string, results []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	writers := map[string]func(io.Writer, []Result) error{
		".md": WriteMarkdown, ".jsonl": WriteJSONL, ".svg": WriteSVG,
		"-summary.svg": WriteSummarySVG,
		"-summary.md": func(w io.Writer, rs []Result) error {
			return WriteSummary(w, rs, name+"-summary.svg")
		},
	}
	var errs []error
	for _, ext := range []string{".md", ".jsonl", ".svg", "-summary.md", "-summary.svg"} {
		var b bytes.Buffer
		if err := writers[ext](&b, results); err != nil {
			if errors.Is(err, ErrNoSummary) {
				// Nothing to summarise: no stale page of an earlier run stays.
				if err := os.Remove(filepath.Join(dir, name+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			} else {
				errs = append(errs, err)
			}
			continue
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, name+ext), b.Bytes(), 0o644))
	}
	return errors.Join(errs...)
}

func readResultsFile(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadJSONL(f)
}

func selectScenarios(all []Scenario, only string) ([]Scenario, error) {
	if only == "" {
		return slices.DeleteFunc(slices.Clone(all), func(s Scenario) bool { return s.Explicit }), nil
	}
	var out []Scenario
	for _, want := range splitList(only) {
		n := len(out)
		for _, s := range all {
			byImpl := want == s.Impl && (!s.Explicit || allExplicit(all, func(o Scenario) bool { return o.Impl == s.Impl }))
			byName := want == s.Name && (!s.Explicit || allExplicit(all, func(o Scenario) bool { return o.Name == s.Name }))
			if want == s.Key() || byImpl || byName {
				if !slices.ContainsFunc(out, func(o Scenario) bool { return o.Key() == s.Key() }) {
					out = append(out, s)
				}
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("no scenario matches %q (try -list)", want)
		}
	}
	return out, nil
}

// allExplicit reports whether every scenario that matches is Explicit:
// variants run when named by a name or impl that only variants have
// (echo-paced, protows-nobatch), not by one they share with the scenarios
// that run by default (echo, gorilla).
func allExplicit(all []Scenario, match func(Scenario) bool) bool {
	for _, s := range all {
		if match(s) && !s.Explicit {
			return false
		}
	}
	return true
}

func parseSizes(list string) ([]payload.Size, error) {
	var out []payload.Size
	for _, s := range splitList(list) {
		if !slices.Contains(payload.Sizes, payload.Size(s)) {
			return nil, fmt.Errorf("unknown size %q (have %v)", s, payload.Sizes)
		}
		out = append(out, payload.Size(s))
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
