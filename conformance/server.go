package conformance

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServerTarget says where the servers under test listen: one WebSocket
// URL per profile. Cases of a profile without a URL are reported as not
// run.
type ServerTarget struct {
	// URLs maps a profile (ProfileDefault, ...) to its ws:// URL.
	URLs map[string]string
	// TokenURL is where profile auth mints tokens (POST ?sub=&ttl=). Empty
	// means http://HOST:PORT/token of the auth profile's URL.
	TokenURL string
}

func (t *ServerTarget) tokenURL() string {
	if t.TokenURL != "" {
		return t.TokenURL
	}
	u, err := url.Parse(t.URLs[ProfileAuth])
	if err != nil {
		return ""
	}
	return "http://" + u.Host + "/token"
}

// serverStep takes one step of a server-mode case.
func (r *caseRun) serverStep(s *Step) error {
	name := s.Conn
	if name == "" {
		name = "main"
	}
	if s.Open != nil {
		return r.open(name, s.Open)
	}
	p := r.peers[name]
	if p == nil {
		return fmt.Errorf("connection %q is not open", name)
	}
	if s.ExpectPing {
		deadline := time.Now().Add(s.within())
		for {
			it, err := p.next(r.ctx, deadline)
			if err != nil {
				return fmt.Errorf("no websocket ping: %w", err)
			}
			switch it.ev.kind {
			case eventPing:
				return nil
			case eventClose, eventEnd:
				return fmt.Errorf("the connection closed (%d) before a ping", it.ev.code)
			}
		}
	}
	return r.commonStep(p, s)
}

// open performs a handshake and checks its response.
func (r *caseRun) open(name string, h *Handshake) error {
	rawURL := r.server.URLs[r.c.Profile]
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	r.vars["hostport"] = u.Host
	r.vars["port"] = u.Port()
	r.vars["origin"] = "http://" + u.Host
	if h.Token != nil {
		tok, err := r.mintToken(h.Token)
		if err != nil {
			return err
		}
		as := h.Token.As
		if as == "" {
			as = "token"
		}
		r.vars[as] = tok
	}
	hr := handshakeRequest{url: rawURL, header: http.Header{}, deflate: h.Compression, notWebSocket: h.NotWebSocket}
	if h.Query != "" {
		hr.url += "?" + h.Query
	}
	offered := []string{r.codec.Name()}
	if h.Subprotocols != nil {
		offered = nil
		for _, s := range *h.Subprotocols {
			offered = append(offered, r.expand(s))
		}
	}
	if len(offered) > 0 {
		hr.subprotocols = offered
	}
	for k, v := range h.Headers {
		hr.header.Set(k, r.expand(v))
	}
	if h.Host != "" {
		hr.host = r.expand(h.Host)
	}
	r.log.add("-> handshake %s offering %q headers %v host %q", hr.url, offered, hr.header, hr.host)
	ws, resp, err := dial(hr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	r.log.add("<- HTTP %d subprotocol %q body %q", resp.status, resp.subprotocol, resp.body)
	x := h.Expect
	if x == nil {
		x = &HandshakeExpect{Status: float64(101)}
		if h.Subprotocols == nil {
			x.Subprotocol = r.codec.Name()
		}
	}
	x = &HandshakeExpect{Status: x.Status, Subprotocol: substitute(x.Subprotocol, r.vars, 0), Headers: x.Headers, Body: substitute(x.Body, r.vars, 0)}
	fail := func(err error) error {
		if ws != nil {
			_ = ws.nc.Close()
		}
		return err
	}
	if err := match(normalizeNumber(x.Status), float64(resp.status), r.vars); err != nil {
		return fail(fmt.Errorf("HTTP status: %w (body %q)", err, resp.body))
	}
	if x.Subprotocol != nil {
		var got any
		if resp.header.Get("Sec-WebSocket-Protocol") != "" || len(resp.header.Values("Sec-WebSocket-Protocol")) > 0 {
			got = resp.subprotocol
		}
		if err := match(x.Subprotocol, got, r.vars); err != nil {
			return fail(fmt.Errorf("Sec-WebSocket-Protocol: %w", err))
		}
	}
	for k, want := range x.Headers {
		var got any
		if vs := resp.header.Values(k); len(vs) > 0 {
			got = strings.Join(vs, ", ")
		}
		if err := match(want, got, r.vars); err != nil {
			return fail(fmt.Errorf("header %s: %w", k, err))
		}
	}
	if x.Body != nil {
		if err := match(x.Body, resp.body, r.vars); err != nil {
			return fail(fmt.Errorf("body: %w", err))
		}
	}
	if ws == nil {
		return nil
	}
	if h.ReceiveBuffer > 0 {
		if tc, ok := ws.nc.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(h.ReceiveBuffer)
		}
	}
	if old := r.peers[name]; old != nil {
		old.shutdown()
	}
	autoPong := h.AutoPong == nil || *h.AutoPong
	r.peers[name] = newPeer(ws, r.codec, r.log, autoPong, true)
	return nil
}

// expand replaces $name in a header value or host with a bound string
// variable.
func (r *caseRun) expand(s string) string {
	// Longer names first, so that $ab is not read as $a followed by b.
	names := slices.Collect(maps.Keys(r.vars))
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, k := range names {
		switch v := r.vars[k].(type) {
		case string:
			s = strings.ReplaceAll(s, "$"+k, v)
		case float64:
			s = strings.ReplaceAll(s, "$"+k, strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	return s
}

// mintToken asks the auth profile's server for a token.
func (r *caseRun) mintToken(t *TokenSpec) (string, error) {
	u := r.server.tokenURL() + "?sub=" + url.QueryEscape(t.Sub) + "&ttl=" + url.QueryEscape(t.TTL)
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("minting a token: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("minting a token: HTTP %d %s", resp.StatusCode, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// RunServer runs the server-mode cases of suites against the target and
// returns their results, case by case and codec by codec. Up to
// opts.Parallel cases run at once; a case marked exclusive runs alone.
func RunServer(ctx context.Context, suites []*Suite, target ServerTarget, opts Options) *Report {
	rep := newReport(opts)
	var shared, exclusive []job
	for _, profile := range Profiles {
		for _, s := range suites {
			for _, c := range s.Cases {
				if c.Mode != ModeServer || c.Profile != profile || !opts.selected(c) {
					continue
				}
				for _, cn := range CodecNames {
					if !c.RunsIn(cn) || !opts.codecSelected(cn) {
						continue
					}
					if c.Exclusive {
						exclusive = append(exclusive, job{c, cn})
					} else {
						shared = append(shared, job{c, cn})
					}
				}
			}
		}
	}
	run := func(j job) {
		res := Result{Case: j.c.FullName(), Codec: j.cn, Mode: ModeServer, Profile: j.c.Profile, Sections: j.c.Sections}
		if target.URLs[j.c.Profile] == "" {
			res.Outcome = OutcomeNotRun
			res.Error = fmt.Sprintf("no URL for profile %q", j.c.Profile)
			rep.add(res)
			return
		}
		start := time.Now()
		r := newCaseRun(ctx, j.c, j.cn)
		r.server = &target
		err := r.runServerCase()
		res.Duration = time.Since(start)
		res.Transcript = r.log.text()
		rep.finish(&res, err)
	}
	runJobs(shared, opts.Parallel, run)
	runJobs(exclusive, 1, run)
	return rep
}

// job is a case in a codec.
type job struct {
	c  *Case
	cn string
}

// runJobs runs jobs, up to parallel at once.
func runJobs(jobs []job, parallel int, run func(job)) {
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			run(j)
		})
	}
	wg.Wait()
}

func (r *caseRun) runServerCase() (err error) {
	defer r.cleanup()
	steps := r.c.Steps
	if steps[0].Open == nil || (steps[0].Conn != "" && steps[0].Conn != "main") {
		if err := r.open("main", &Handshake{}); err != nil {
			return fmt.Errorf("opening the connection: %w", err)
		}
	}
	return r.runSteps(steps)
}
