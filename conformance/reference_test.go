package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/conformance"
	"github.com/protows/protows/conformance/clients/go/driver"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/reflection"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// referenceServers serves the test service on 127.0.0.1 once per profile,
// configured as the flags of cmd/protows-testserver in docs/CONFORMANCE.md
// say, and returns the target.
func referenceServers(t *testing.T) conformance.ServerTarget {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PROTOWS_CONFORMANCE_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	iss, err := testservice.NewTokenIssuer()
	if err != nil {
		t.Fatal(err)
	}
	configs := map[string]transport.Config{
		// protows-testserver
		conformance.ProfileDefault: {},
		// protows-testserver -auth jwt -auth-timeout 1s
		conformance.ProfileAuth: {Authenticator: iss.Authenticator(), AuthTimeout: time.Second},
		// protows-testserver -ping-interval 200ms -read-timeout 1s -max-calls 16
		//   -allow-origin https://app.example.com,https://*.example.com -compression
		//   -reflection
		conformance.ProfileTuned: {
			PingInterval:      200 * time.Millisecond,
			ReadTimeout:       time.Second,
			MaxCalls:          16,
			AllowedOrigins:    []string{"https://app.example.com", "https://*.example.com"},
			EnableCompression: true,
		},
	}
	target := conformance.ServerTarget{URLs: map[string]string{}}
	for profile, cfg := range configs {
		cfg.Logger = logger
		r := router.New(router.WithLogger(logger))
		if err := testservice.Register(r); err != nil {
			t.Fatal(err)
		}
		if profile == conformance.ProfileTuned {
			if err := reflection.Register(r); err != nil {
				t.Fatal(err)
			}
		}
		ws := transport.NewServer(r, cfg)
		mux := http.NewServeMux()
		mux.Handle("/ws", ws)
		if profile == conformance.ProfileAuth {
			mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
				ttl, err := time.ParseDuration(r.URL.Query().Get("ttl"))
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				tok, _, err := iss.Mint(r.URL.Query().Get("sub"), ttl)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				_, _ = io.WriteString(w, tok)
			})
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := transport.NewHTTPServer("", mux)
		hs.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
		done := make(chan error, 1)
		go func() { done <- hs.Serve(ln) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = hs.Shutdown(ctx)
			if err := ws.Shutdown(ctx); err != nil {
				t.Errorf("%s: shutdown: %v", profile, err)
			}
			if err := <-done; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("%s: serve: %v", profile, err)
			}
		})
		target.URLs[profile] = "ws://" + ln.Addr().String() + "/ws"
		if profile == conformance.ProfileAuth {
			target.TokenURL = "http://" + ln.Addr().String() + "/token"
		}
	}
	return target
}

// options are the run options of the tests: -run-case selects cases by
// a regular expression on their full names (PROTOWS_CONFORMANCE_RUN).
func options(t *testing.T, target string) conformance.Options {
	t.Helper()
	pending, err := conformance.ReferencePending()
	if err != nil {
		t.Fatal(err)
	}
	o := conformance.Options{Pending: pending, Target: target, Parallel: 8}
	if re := os.Getenv("PROTOWS_CONFORMANCE_RUN"); re != "" {
		o.Run = regexp.MustCompile(re)
	}
	if testing.Verbose() {
		o.Progress = os.Stderr
	}
	return o
}

// finish writes the report under out/ (PROTOWS_CONFORMANCE_OUT) and fails
// the test for every failure.
func finish(t *testing.T, rep *conformance.Report) {
	t.Helper()
	dir := os.Getenv("PROTOWS_CONFORMANCE_OUT")
	if dir == "" {
		dir = filepath.Join("out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for ext, write := range map[string]func(io.Writer) error{".txt": rep.WriteText, ".json": rep.WriteJSON} {
		f, err := os.Create(filepath.Join(dir, rep.Target+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Log(rep.Summary())
	if len(rep.Results) == 0 {
		t.Fatal("no case ran")
	}
	for _, res := range rep.Failed() {
		t.Errorf("%s %s [%s]: %s\n%s", res.Outcome, res.Case, res.Codec, res.Error, strings.Join(res.Transcript, "\n"))
	}
	if n := rep.Counts()[conformance.OutcomeNotRun]; n > 0 {
		t.Errorf("%d results not run", n)
	}
	fmt.Fprintf(os.Stderr, "conformance: %s (report: %s)\n", rep.Summary(), filepath.Join(dir, rep.Target+".txt"))
}

// TestGoServer runs every server case in both codecs against the Go
// server (transport + router + the test service), in process.
func TestGoServer(t *testing.T) {
	suites, err := conformance.Load()
	if err != nil {
		t.Fatal(err)
	}
	target := referenceServers(t)
	rep := conformance.RunServer(t.Context(), suites, target, options(t, "go-server"))
	finish(t, rep)
}

// TestGoClient runs every client case in both codecs against the Go
// client, through its driver (conformance/clients/go) in process.
func TestGoClient(t *testing.T) {
	suites, err := conformance.Load()
	if err != nil {
		t.Fatal(err)
	}
	cmdR, cmdW := io.Pipe()
	evR, evW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := driver.Serve(t.Context(), cmdR, evW)
		evW.Close()
		done <- err
	}()
	d := conformance.NewDriver(evR, cmdW)
	if _, err := d.WaitReady(t.Context(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	rep := conformance.RunClient(t.Context(), suites, d, options(t, "go-client"))
	if err := d.Send(map[string]any{"op": "quit"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("driver: %v", err)
	}
	cmdW.Close()
	finish(t, rep)
}

// TestRunnerCatchesFailures runs cases that are wrong on purpose
// (testdata/broken) against the Go server and client: each must fail, for
// the expected reason, so that a passing suite means something.
func TestRunnerCatchesFailures(t *testing.T) {
	suites, err := conformance.LoadFS(os.DirFS("testdata"), "broken")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"broken/wrong-payload":           `payload.text: want "b", got "a"`,
		"broken/wrong-close-code":        "close code 1002",
		"broken/unexpected-envelope":     `unexpected envelope {"id":1,"kind":"pong"}`,
		"broken/not-silent":              "want silence",
		"broken/no-close":                "no close within 300ms",
		"broken/wrong-status":            "HTTP status",
		"broken/wrong-raw":               "message is",
		"broken/wrong-driver-result":     `event: want "reply", got "error"`,
		"broken/client-never-reconnects": "did not connect within 500ms",
	}
	rep := conformance.RunServer(t.Context(), suites, referenceServers(t), conformance.Options{Target: "broken"})

	cmdR, cmdW := io.Pipe()
	evR, evW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := driver.Serve(t.Context(), cmdR, evW)
		evW.Close()
		done <- err
	}()
	d := conformance.NewDriver(evR, cmdW)
	if _, err := d.WaitReady(t.Context(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	crep := conformance.RunClient(t.Context(), suites, d, conformance.Options{Target: "broken"})
	_ = d.Send(map[string]any{"op": "quit"})
	if err := <-done; err != nil {
		t.Errorf("driver: %v", err)
	}
	cmdW.Close()

	results := append(rep.Results, crep.Results...)
	if len(results) != len(want) {
		t.Errorf("%d results, want %d", len(results), len(want))
	}
	for _, r := range results {
		if r.Outcome != conformance.OutcomeFail {
			t.Errorf("%s: %s, want FAIL", r.Case, r.Outcome)
			continue
		}
		if !strings.Contains(r.Error, want[r.Case]) {
			t.Errorf("%s failed with %q, want it to say %q", r.Case, r.Error, want[r.Case])
		}
	}

	// A pending case that fails is expected; one that passes fails the run.
	p, err := conformance.ParsePending([]byte(`{"pending":[{"case":"broken/wrong-payload","targets":["broken"],"why":"a test"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rep = conformance.RunServer(t.Context(), suites, referenceServers(t), conformance.Options{Target: "broken", Pending: p, Run: regexp.MustCompile("wrong-payload")})
	if len(rep.Results) != 1 || rep.Results[0].Outcome != conformance.OutcomeExpectedFail || len(rep.Failed()) != 0 {
		t.Errorf("pending failing case: %+v", rep.Results)
	}
	good, err := conformance.Load()
	if err != nil {
		t.Fatal(err)
	}
	p, err = conformance.ParsePending([]byte(`{"pending":[{"case":"kinds/unary-reply","targets":["broken"],"why":"a test"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rep = conformance.RunServer(t.Context(), good, referenceServers(t), conformance.Options{Target: "broken", Pending: p, Run: regexp.MustCompile("^kinds/unary-reply$"), Codecs: []string{"proto"}})
	if len(rep.Failed()) != 1 || rep.Failed()[0].Outcome != conformance.OutcomeUnexpectedPass {
		t.Errorf("pending passing case: %+v", rep.Results)
	}
}
