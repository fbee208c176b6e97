// Command protows-conformance runs the protows conformance suite
// (docs/CONFORMANCE.md) against a server or a client under test.
//
//	protows-conformance server -url ws://127.0.0.1:8080/ws [-profile-url auth=ws://...] [flags]
//	protows-conformance client [flags] -- COMMAND [ARG...]
//	protows-conformance list
//
// server checks the server listening at the URLs, one per profile; client
// runs COMMAND, a driver of the client under test that speaks the driver
// protocol on stdin and stdout, and checks the client against scripted
// servers on 127.0.0.1. Both print a line per case and write the per-case
// report (-report, -json); the exit status is 1 when a case fails or a
// pending case passes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/protows/protows/conformance"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errFailed) {
			fmt.Fprintln(os.Stderr, "protows-conformance:", err)
		}
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errFailed = errors.New("conformance cases failed")

type usageError struct{ error }

const usage = `usage:
  protows-conformance server -url ws://HOST:PORT/PATH [flags]
  protows-conformance client [flags] -- COMMAND [ARG...]
  protows-conformance list

Run "protows-conformance server -h" or "client -h" for the flags.
`

// profileURLs is the repeated -profile-url flag.
type profileURLs map[string]string

func (p profileURLs) String() string { return fmt.Sprint(map[string]string(p)) }

func (p profileURLs) Set(s string) error {
	name, u, ok := strings.Cut(s, "=")
	if !ok || !slices.Contains(conformance.Profiles, name) {
		return fmt.Errorf("want PROFILE=URL with PROFILE one of %s", strings.Join(conformance.Profiles, ", "))
	}
	p[name] = u
	return nil
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command")}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	suites, err := conformance.Load()
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		return list(suites, stdout)
	case "server", "client":
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	mode := args[0]
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		runRE    = fs.String("run", "", "run only the cases whose full name (suite/case) matches this regular expression")
		codecs   = fs.String("codec", "", "run only this codec: proto or json (default both)")
		pending  = fs.String("pending", "", `pending-fixes list (JSON, see the guide); "reference" is protows's own`)
		target   = fs.String("target", mode+"-under-test", "the name of the implementation, for the report and the pending list's targets")
		report   = fs.String("report", "", "write the per-case text report to this file")
		jsonOut  = fs.String("json", "", "write the JSON report to this file")
		parallel = fs.Int("parallel", 4, "cases run at once")
		quiet    = fs.Bool("q", false, "print only failures and the summary")
		urls     = profileURLs{}
		url      = fs.String("url", "", "server: the WebSocket URL of the server under test (profile default)")
		tokenURL = fs.String("token-url", "", "server: where profile auth mints tokens (default http://HOST:PORT/token of its URL)")
	)
	fs.Var(urls, "profile-url", "server: PROFILE=URL for the profiles auth and tuned (repeatable)")
	fs.Usage = func() {
		if mode == "server" {
			fmt.Fprintln(stderr, "usage: protows-conformance server -url ws://HOST:PORT/PATH [-profile-url auth=URL] [-profile-url tuned=URL] [flags]")
		} else {
			fmt.Fprintln(stderr, "usage: protows-conformance client [flags] -- COMMAND [ARG...]")
		}
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	opts := conformance.Options{Target: *target, Parallel: *parallel}
	if !*quiet {
		opts.Progress = stdout
	}
	if *runRE != "" {
		re, err := regexp.Compile(*runRE)
		if err != nil {
			return usageError{fmt.Errorf("-run: %w", err)}
		}
		opts.Run = re
	}
	if *codecs != "" {
		if _, ok := conformance.Codecs[*codecs]; !ok {
			return usageError{fmt.Errorf("-codec must be proto or json, not %q", *codecs)}
		}
		opts.Codecs = []string{*codecs}
	}
	switch *pending {
	case "":
	case "reference":
		if opts.Pending, err = conformance.ReferencePending(); err != nil {
			return err
		}
	default:
		b, err := os.ReadFile(*pending)
		if err != nil {
			return err
		}
		if opts.Pending, err = conformance.ParsePending(b); err != nil {
			return err
		}
	}
	if opts.Pending != nil {
		if err := conformance.CheckPending(opts.Pending, suites); err != nil {
			return err
		}
	}

	var rep *conformance.Report
	start := time.Now()
	if mode == "server" {
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
		}
		if *url != "" {
			urls[conformance.ProfileDefault] = *url
		}
		if len(urls) == 0 {
			return usageError{errors.New("-url is required")}
		}
		rep = conformance.RunServer(ctx, suites, conformance.ServerTarget{URLs: urls, TokenURL: *tokenURL}, opts)
	} else {
		if fs.NArg() == 0 {
			return usageError{errors.New("the driver command is missing: client [flags] -- COMMAND [ARG...]")}
		}
		d, stopDriver, err := conformance.StartDriver(ctx, fs.Args(), stderr)
		if err != nil {
			return err
		}
		hello, err := d.WaitReady(ctx, 60*time.Second)
		if err != nil {
			_ = stopDriver()
			return err
		}
		fmt.Fprintf(stdout, "driver ready: %v\n", hello["implementation"])
		rep = conformance.RunClient(ctx, suites, d, opts)
		if err := stopDriver(); err != nil {
			fmt.Fprintf(stderr, "driver exited: %v\n", err)
		}
	}
	for path, write := range map[string]func(io.Writer) error{*report: rep.WriteText, *jsonOut: rep.WriteJSON} {
		if path == "" {
			continue
		}
		if err := writeFile(path, write); err != nil {
			return err
		}
	}
	if *quiet {
		for _, r := range rep.Failed() {
			fmt.Fprintf(stdout, "%s %s [%s]: %s\n", r.Outcome, r.Case, r.Codec, r.Error)
		}
	}
	fmt.Fprintf(stdout, "%s in %.1fs\n", rep.Summary(), time.Since(start).Seconds())
	if len(rep.Failed()) > 0 || len(rep.Results) == 0 {
		return errFailed
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// list prints every case and the coverage of PROTOCOL.md's sections.
func list(suites []*conformance.Suite, w io.Writer) error {
	cover := map[string][]string{}
	for _, s := range suites {
		for _, c := range s.Cases {
			codecs := "proto,json"
			if len(c.Codecs) > 0 {
				codecs = strings.Join(c.Codecs, ",")
			}
			fmt.Fprintf(w, "%-6s %-56s %-10s %s\n", c.Mode, c.FullName(), codecs, strings.Join(c.Sections, ","))
			for _, sec := range c.Sections {
				cover[sec] = append(cover[sec], c.FullName())
			}
		}
	}
	secs := make([]string, 0, len(cover))
	for s := range cover {
		secs = append(secs, s)
	}
	sort.Slice(secs, func(i, j int) bool { return sectionLess(secs[i], secs[j]) })
	fmt.Fprintln(w, "\nsection  cases")
	for _, s := range secs {
		fmt.Fprintf(w, "%-8s %d\n", s, len(cover[s]))
	}
	return nil
}

// sectionLess orders "2" < "3.1" < "3.10" < "10".
func sectionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		var x, y int
		fmt.Sscan(as[i], &x)
		fmt.Sscan(bs[i], &y)
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}
