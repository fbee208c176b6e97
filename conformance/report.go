package conformance

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options select and qualify a run.
type Options struct {
	// Run selects cases whose full name ("suite/case") matches; nil means
	// every case.
	Run *regexp.Regexp
	// Codecs restricts the codecs; empty means both.
	Codecs []string
	// Pending lists cases expected to fail for this target.
	Pending *Pending
	// Target names the implementation under test, to pick its entries of
	// Pending ("go-server", "go-client", "ts-node", "ts-chromium").
	Target string
	// Progress receives a line per case as it ends; nil means none.
	Progress io.Writer
	// Parallel is how many cases run at once (a case marked exclusive runs
	// alone); zero means 1.
	Parallel int
}

func (o Options) selected(c *Case) bool { return o.Run == nil || o.Run.MatchString(c.FullName()) }

func (o Options) codecSelected(cn string) bool {
	return len(o.Codecs) == 0 || slices.Contains(o.Codecs, cn)
}

// Outcome is how a case ended.
type Outcome string

// The outcomes. Only OutcomeFail and OutcomeUnexpectedPass fail a run.
const (
	OutcomePass           Outcome = "pass"
	OutcomeFail           Outcome = "FAIL"
	OutcomeExpectedFail   Outcome = "expected-fail"
	OutcomeUnexpectedPass Outcome = "UNEXPECTED-PASS"
	OutcomeNotRun         Outcome = "not-run"
)

// Result is one case in one codec.
type Result struct {
	Case     string        `json:"case"`
	Codec    string        `json:"codec"`
	Mode     string        `json:"mode"`
	Profile  string        `json:"profile,omitempty"`
	Sections []string      `json:"sections"`
	Outcome  Outcome       `json:"outcome"`
	Duration time.Duration `json:"durationNs"`
	// Error is why the case failed (or why a pending case still fails).
	Error string `json:"error,omitempty"`
	// Pending is the reason from the pending list, when listed.
	Pending    string   `json:"pending,omitempty"`
	Transcript []string `json:"transcript,omitempty"`
}

// Report is the results of a run.
type Report struct {
	Target  string    `json:"target"`
	Started time.Time `json:"started"`
	Results []Result  `json:"results"`

	mu       sync.Mutex
	pending  *Pending
	progress io.Writer
}

func newReport(o Options) *Report {
	return &Report{Target: o.Target, Started: time.Now(), pending: o.Pending, progress: o.Progress}
}

// finish classifies a case's error against the pending list and adds it.
func (r *Report) finish(res *Result, err error) {
	entry, pending := r.pending.lookup(r.Target, res.Case, res.Codec)
	if pending {
		res.Pending = entry.Why
	}
	switch {
	case err == nil && (!pending || entry.Flaky):
		res.Outcome = OutcomePass
	case err == nil:
		res.Outcome = OutcomeUnexpectedPass
		res.Error = "listed as pending (" + entry.Why + ") but passes: remove it from the pending list"
	case pending:
		res.Outcome = OutcomeExpectedFail
		res.Error = err.Error()
	default:
		res.Outcome = OutcomeFail
		res.Error = err.Error()
	}
	if res.Outcome == OutcomePass {
		res.Transcript = nil
	}
	r.add(*res)
}

func (r *Report) add(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Results = append(r.Results, res)
	if r.progress != nil {
		line := fmt.Sprintf("%-16s %-52s %-5s %6.2fs", res.Outcome, res.Case, res.Codec, res.Duration.Seconds())
		if res.Outcome == OutcomeFail || res.Outcome == OutcomeUnexpectedPass {
			line += "  " + res.Error
		}
		fmt.Fprintln(r.progress, line)
	}
}

// Failed returns the results that fail the run.
func (r *Report) Failed() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Outcome == OutcomeFail || res.Outcome == OutcomeUnexpectedPass {
			out = append(out, res)
		}
	}
	return out
}

// Counts returns the number of results per outcome.
func (r *Report) Counts() map[Outcome]int {
	m := map[Outcome]int{}
	for _, res := range r.Results {
		m[res.Outcome]++
	}
	return m
}

// Summary is one line: the counts per outcome.
func (r *Report) Summary() string {
	c := r.Counts()
	return fmt.Sprintf("%s: %d results: %d pass, %d FAIL, %d expected-fail (pending fixes), %d UNEXPECTED-PASS, %d not run",
		r.Target, len(r.Results), c[OutcomePass], c[OutcomeFail], c[OutcomeExpectedFail], c[OutcomeUnexpectedPass], c[OutcomeNotRun])
}

// WriteText writes the per-case report: one line per case and codec,
// then the errors and transcripts of those that did not pass.
func (r *Report) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "protows conformance report: %s\n\n", r.Summary())
	res := slices.Clone(r.Results)
	sort.SliceStable(res, func(i, j int) bool { return res[i].Case < res[j].Case })
	for _, x := range res {
		fmt.Fprintf(&b, "%-16s %-56s %-5s %6.2fs  [%s]\n", x.Outcome, x.Case, x.Codec, x.Duration.Seconds(), strings.Join(x.Sections, ","))
	}
	for _, x := range res {
		if x.Outcome == OutcomePass {
			continue
		}
		fmt.Fprintf(&b, "\n== %s %s [%s]: %s\n", x.Outcome, x.Case, x.Codec, x.Error)
		if x.Pending != "" {
			fmt.Fprintf(&b, "   pending: %s\n", x.Pending)
		}
		for _, l := range x.Transcript {
			fmt.Fprintf(&b, "   %s\n", l)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// Pending lists the cases an implementation is known to fail, each with
// the reason (an issue), so that a run reports them as expected failures
// and fails when one of them passes: then the fix landed, and the entry
// goes.
type Pending struct {
	// Description says what the list is.
	Description string `json:"description,omitempty"`
	// Entries are the cases.
	Entries []PendingEntry `json:"pending"`
}

// PendingEntry is one pending case.
type PendingEntry struct {
	// Case is the case's full name.
	Case string `json:"case"`
	// Codecs restricts the entry; empty means both.
	Codecs []string `json:"codecs,omitempty"`
	// Targets are the implementations the entry is for.
	Targets []string `json:"targets"`
	// Why is the reason, with the issue.
	Why string `json:"why"`
	// Flaky marks a defect that shows in some runs only: a pass is not
	// an unexpected pass.
	Flaky bool `json:"flaky,omitempty"`
}

func (p *Pending) lookup(target, name, codecName string) (*PendingEntry, bool) {
	if p == nil {
		return nil, false
	}
	for i, e := range p.Entries {
		if e.Case == name && slices.Contains(e.Targets, target) && (len(e.Codecs) == 0 || slices.Contains(e.Codecs, codecName)) {
			return &p.Entries[i], true
		}
	}
	return nil, false
}

// ParsePending reads a pending list.
func ParsePending(b []byte) (*Pending, error) {
	var p Pending
	if err := strictUnmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("pending list: %w", err)
	}
	return &p, nil
}

//go:embed pending.json
var pendingJSON []byte

// ReferencePending returns the pending list of protows's own
// implementations (pending.json).
func ReferencePending() (*Pending, error) { return ParsePending(pendingJSON) }

// checkPending reports entries that name no case.
func (p *Pending) check(suites []*Suite) error {
	names := map[string]bool{}
	for _, s := range suites {
		for _, c := range s.Cases {
			names[c.FullName()] = true
		}
	}
	for _, e := range p.Entries {
		if !names[e.Case] {
			return fmt.Errorf("pending list names %q, which is not a case", e.Case)
		}
		if len(e.Targets) == 0 || e.Why == "" {
			return fmt.Errorf("pending entry %q needs targets and a reason", e.Case)
		}
	}
	return nil
}

// CheckPending reports pending entries that name no case or lack a reason.
func CheckPending(p *Pending, suites []*Suite) error { return p.check(suites) }
