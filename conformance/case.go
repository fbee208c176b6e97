package conformance

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// Suite is one file of cases (cases/*.json): the cases of one part of the
// protocol.
type Suite struct {
	// Suite names the suite; case names are "suite/case".
	Suite string `json:"suite"`
	// Description says what the suite covers.
	Description string `json:"description,omitempty"`
	// Cases are the suite's cases, run in order.
	Cases []*Case `json:"cases"`
}

// The two modes of a case.
const (
	// ModeServer: the runner is the client and checks a server under test.
	ModeServer = "server"
	// ModeClient: the runner is a scripted server and drives a client under
	// test through its driver (docs/CONFORMANCE.md, "The driver protocol").
	ModeClient = "client"
)

// The server configurations the server-mode cases need
// (docs/CONFORMANCE.md, "Profiles").
const (
	// ProfileDefault: the zero configuration (PROTOCOL.md section 11).
	ProfileDefault = "default"
	// ProfileAuth: JWT authentication, a 1 s authentication deadline and
	// POST /token to mint tokens.
	ProfileAuth = "auth"
	// ProfileTuned: short heartbeat, a small server-wide call limit, an
	// Origin allowlist, compression and server reflection.
	ProfileTuned = "tuned"
)

// Profiles lists the profiles in the order their cases run.
var Profiles = []string{ProfileDefault, ProfileAuth, ProfileTuned}

// Case is one conformance case: steps the runner takes and checks, in one
// or both codecs.
type Case struct {
	// Name is unique within the suite.
	Name string `json:"name"`
	// Sections are the sections of docs/PROTOCOL.md the case checks.
	Sections []string `json:"sections"`
	// Description says what the case proves.
	Description string `json:"description,omitempty"`
	// Mode is ModeServer or ModeClient.
	Mode string `json:"mode"`
	// Profile is the server configuration a server-mode case needs.
	// Empty means ProfileDefault.
	Profile string `json:"profile,omitempty"`
	// Codecs are the codecs the case runs in ("proto", "json"); empty means
	// both.
	Codecs []string `json:"codecs,omitempty"`
	// Exclusive runs the case alone: it needs the whole server (its
	// server-wide call limit, say).
	Exclusive bool `json:"exclusive,omitempty"`
	// Steps are taken in order; the case fails at the first that fails.
	Steps []*Step `json:"steps"`

	suite string
}

// FullName is "suite/name".
func (c *Case) FullName() string { return c.suite + "/" + c.Name }

// RunsIn reports whether the case runs in the codec ("proto" or "json").
func (c *Case) RunsIn(codecName string) bool {
	return len(c.Codecs) == 0 || slices.Contains(c.Codecs, codecName)
}

// Step is one thing the runner does or checks. Exactly one of its action
// fields is set; Conn and Within qualify it.
type Step struct {
	// Conn names the connection the step acts on (server mode); empty
	// means "main", which the runner opens before the first step unless
	// the first step opens it.
	Conn string `json:"conn,omitempty"`
	// Within bounds how long an expectation waits. Zero means 5 s.
	Within Duration `json:"within,omitempty"`

	// Open performs an opening handshake (server mode).
	Open *Handshake `json:"open,omitempty"`
	// Send sends envelopes, encoded with the case's codec, as frames.
	Send *Send `json:"send,omitempty"`
	// SendRaw sends bytes as a WebSocket message or as they are on the TCP
	// connection.
	SendRaw *Raw `json:"sendRaw,omitempty"`
	// Expect receives envelopes and matches them.
	Expect *Expect `json:"expect,omitempty"`
	// ExpectRaw receives the next message and checks its bytes.
	ExpectRaw *ExpectRaw `json:"expectRaw,omitempty"`
	// ExpectClose waits for the peer to close the connection.
	ExpectClose *ExpectClose `json:"expectClose,omitempty"`
	// ExpectSilence checks that no envelope arrives for this long.
	ExpectSilence Duration `json:"expectSilence,omitempty"`
	// ExpectPing waits for a WebSocket ping control frame.
	ExpectPing bool `json:"expectPing,omitempty"`
	// Close sends a close frame.
	Close *CloseFrame `json:"close,omitempty"`
	// Cut closes the TCP connection without a close frame.
	Cut bool `json:"cut,omitempty"`
	// Wait pauses.
	Wait Duration `json:"wait,omitempty"`
	// Stall stops reading from the connection for this long, so that the
	// peer's writes back up.
	Stall Duration `json:"stall,omitempty"`

	// Do sends a command to the client under test (client mode).
	Do Command `json:"do,omitempty"`
	// Accept waits for the client's next handshake and answers it (client
	// mode).
	Accept *Accept `json:"accept,omitempty"`
	// Result waits for the driver's next event of a call and matches it
	// (client mode).
	Result map[string]any `json:"result,omitempty"`
	// ExpectNoConnection checks that the client opens no connection for
	// this long (client mode).
	ExpectNoConnection Duration `json:"expectNoConnection,omitempty"`
}

// Handshake is an opening handshake (server mode).
type Handshake struct {
	// Subprotocols offered; nil means the case's codec's subprotocol, an
	// empty list offers none (no header).
	Subprotocols *[]string `json:"subprotocols,omitempty"`
	// Headers are added to the request; "$origin" (the server's own
	// origin), "$hostport" and "$token" (see Token) are replaced.
	Headers map[string]string `json:"headers,omitempty"`
	// Host replaces the Host header; "$port" is the server's port.
	Host string `json:"host,omitempty"`
	// Query is appended to the URL ("access_token=x").
	Query string `json:"query,omitempty"`
	// Token mints a token before the handshake (profile auth): $token.
	Token *TokenSpec `json:"token,omitempty"`
	// ReceiveBuffer sets the TCP receive buffer of the connection, in
	// bytes (small, for a slow consumer); zero leaves the system's.
	ReceiveBuffer int `json:"receiveBuffer,omitempty"`
	// Compression offers permessage-deflate.
	Compression bool `json:"compression,omitempty"`
	// NotWebSocket sends a plain GET.
	NotWebSocket bool `json:"notWebSocket,omitempty"`
	// AutoPong answers the server's WebSocket pings; nil means true.
	AutoPong *bool `json:"autoPong,omitempty"`
	// Expect matches the response; nil means status 101 with the offered
	// subprotocol.
	Expect *HandshakeExpect `json:"expect,omitempty"`
}

// TokenSpec asks the server under test for a token (POST /token).
type TokenSpec struct {
	// Sub is the subject.
	Sub string `json:"sub"`
	// TTL is the lifetime, a Go duration ("1h", "2s").
	TTL string `json:"ttl"`
	// As names the variable that holds it; empty means "token".
	As string `json:"as,omitempty"`
}

// HandshakeExpect matches a handshake's response.
type HandshakeExpect struct {
	// Status is the HTTP status (a number or {"$oneOf": [...]}).
	Status any `json:"status"`
	// Subprotocol is the Sec-WebSocket-Protocol response header; null
	// means absent.
	Subprotocol any `json:"subprotocol,omitempty"`
	// Headers match response headers (null: absent).
	Headers map[string]any `json:"headers,omitempty"`
	// Body matches the body of a refusal.
	Body any `json:"body,omitempty"`
}

// Send is one or more frames of envelopes.
type Send struct {
	// Envelopes go in one frame, in the case's JSON form.
	Envelopes []map[string]any `json:"envelopes,omitempty"`
	// Repeat sends Count copies of Envelope, "$i" in it replaced by 1..Count.
	Repeat *Repeat `json:"repeat,omitempty"`
	// Compress sends each frame deflated (permessage-deflate).
	Compress bool `json:"compress,omitempty"`
}

// UnmarshalJSON accepts a list of envelopes as a shorthand.
func (s *Send) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		return strictUnmarshal(b, &s.Envelopes)
	}
	type plain Send
	return strictUnmarshal(b, (*plain)(s))
}

// Repeat repeats an envelope.
type Repeat struct {
	// Count is the number of copies.
	Count int `json:"count"`
	// PerFrame is the most copies in one frame; zero means all in one.
	PerFrame int `json:"perFrame,omitempty"`
	// Envelope is the template.
	Envelope map[string]any `json:"envelope"`
}

// Raw is bytes to send.
type Raw struct {
	// Hex or Text is the data.
	Hex  string `json:"hex,omitempty"`
	Text string `json:"text,omitempty"`
	// Fill appends Count copies of the byte Byte (hex) to the data.
	Fill *Fill `json:"fill,omitempty"`
	// Opcode is "text", "binary", "codec" (the case's codec's; the
	// default), "ping", "pong", or a number.
	Opcode any `json:"opcode,omitempty"`
	// Wire writes the data as it is on the TCP connection: no framing.
	Wire bool `json:"wire,omitempty"`
	// Fragments splits the message into this many frames.
	Fragments int `json:"fragments,omitempty"`
	// PingBetween sends a ping control frame between fragments.
	PingBetween bool `json:"pingBetween,omitempty"`
	// Compress sends the message deflated (RSV1).
	Compress bool `json:"compress,omitempty"`
	// Repeat sends the frame this many times, in one write.
	Repeat int `json:"repeat,omitempty"`
	// Background writes from another goroutine, so that the next steps run
	// while a large write is under way.
	Background bool `json:"background,omitempty"`
}

// Fill is a run of one byte.
type Fill struct {
	// Byte is the byte in hex ("20").
	Byte string `json:"byte"`
	// Count is how many.
	Count int `json:"count"`
}

// Expect matches received envelopes.
type Expect struct {
	// Envelopes are matched in order (or in any order with Unordered).
	Envelopes []map[string]any `json:"envelopes,omitempty"`
	// Repeat expects Count envelopes matching Envelope, "$i" replaced by
	// 1..Count, in order.
	Repeat *Repeat `json:"repeat,omitempty"`
	// Unordered accepts Envelopes in any order.
	Unordered bool `json:"unordered,omitempty"`
	// Skip lists envelopes that may arrive meanwhile and are ignored.
	Skip []map[string]any `json:"skip,omitempty"`
}

// UnmarshalJSON accepts a list of envelopes as a shorthand.
func (e *Expect) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		return strictUnmarshal(b, &e.Envelopes)
	}
	type plain Expect
	return strictUnmarshal(b, (*plain)(e))
}

// ExpectRaw checks the bytes of the next message.
type ExpectRaw struct {
	// Equals is the whole message, as text.
	Equals *string `json:"equals,omitempty"`
	// Contains and NotContains are substrings.
	Contains    []string `json:"contains,omitempty"`
	NotContains []string `json:"notContains,omitempty"`
}

// ExpectClose waits for the end of the connection.
type ExpectClose struct {
	// Code is the close code (a number or {"$oneOf": [...]}); 1006 means
	// the TCP connection ended without a close frame.
	Code any `json:"code"`
	// Reason matches the close reason.
	Reason any `json:"reason,omitempty"`
	// NoReply does not answer the close frame, and expects the peer to end
	// the TCP connection by itself within EOFWithin.
	NoReply bool `json:"noReply,omitempty"`
	// EOFWithin bounds the time from the close frame to the end of the TCP
	// connection; zero means 5 s.
	EOFWithin Duration `json:"eofWithin,omitempty"`
	// Min bounds the time the close took, from the step's start, from
	// below.
	Min Duration `json:"min,omitempty"`
}

// CloseFrame is a close frame to send.
type CloseFrame struct {
	// Code is the close code; 1005 sends a close frame without one.
	Code int `json:"code"`
	// Reason is the close reason.
	Reason string `json:"reason,omitempty"`
}

// Command is a driver command (client mode): see docs/CONFORMANCE.md.
type Command map[string]any

// Accept answers a client's handshake (client mode).
type Accept struct {
	// Status is the answer; zero means 101.
	Status int `json:"status,omitempty"`
	// Headers are response headers of a refusal.
	Headers map[string]string `json:"headers,omitempty"`
	// AnswerPings answers the client's PING envelopes with PONG without
	// the case seeing them; nil means true.
	AnswerPings *bool `json:"answerPings,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("1.5s").
type Duration time.Duration

// UnmarshalJSON parses a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"1.5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	return dec.Decode(v)
}

//go:embed cases/*.json
var casesFS embed.FS

// Load returns the suites of the cases embedded in the package.
func Load() ([]*Suite, error) {
	return LoadFS(casesFS, "cases")
}

// LoadFS reads every *.json file of dir in fsys as a Suite, in name order,
// and checks the cases.
func LoadFS(fsys fs.FS, dir string) ([]*Suite, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var suites []*Suite
	seen := map[string]bool{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		var s Suite
		if err := strictUnmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, c := range s.Cases {
			c.suite = s.Suite
			if seen[c.FullName()] {
				return nil, fmt.Errorf("%s: case %s defined twice", name, c.FullName())
			}
			seen[c.FullName()] = true
			if err := c.check(); err != nil {
				return nil, fmt.Errorf("%s: case %s: %w", name, c.FullName(), err)
			}
		}
		suites = append(suites, &s)
	}
	if len(suites) == 0 {
		return nil, fmt.Errorf("no case files in %s", dir)
	}
	return suites, nil
}

// check validates a case's shape.
func (c *Case) check() error {
	if c.Name == "" || strings.ContainsAny(c.Name, " /[]") {
		return fmt.Errorf("bad name %q", c.Name)
	}
	if len(c.Sections) == 0 {
		return errors.New("no sections")
	}
	switch c.Mode {
	case ModeServer:
		if c.Profile == "" {
			c.Profile = ProfileDefault
		}
		if !slices.Contains(Profiles, c.Profile) {
			return fmt.Errorf("unknown profile %q", c.Profile)
		}
	case ModeClient:
		if c.Profile != "" {
			return errors.New("client cases have no profile")
		}
	default:
		return fmt.Errorf("mode must be server or client, not %q", c.Mode)
	}
	for _, cn := range c.Codecs {
		if cn != "proto" && cn != "json" {
			return fmt.Errorf("unknown codec %q", cn)
		}
	}
	if len(c.Steps) == 0 {
		return errors.New("no steps")
	}
	for i, s := range c.Steps {
		if n := s.actions(); n != 1 {
			return fmt.Errorf("step %d has %d actions, want 1", i+1, n)
		}
		server := s.Open != nil || s.ExpectPing
		client := s.Do != nil || s.Accept != nil || s.Result != nil || s.ExpectNoConnection != 0
		if c.Mode == ModeServer && client || c.Mode == ModeClient && (server || s.Conn != "") {
			return fmt.Errorf("step %d does not belong in a %s case", i+1, c.Mode)
		}
	}
	return nil
}

func (s *Step) actions() int {
	n := 0
	for _, set := range []bool{
		s.Open != nil, s.Send != nil, s.SendRaw != nil, s.Expect != nil, s.ExpectRaw != nil,
		s.ExpectClose != nil, s.ExpectSilence != 0, s.ExpectPing, s.Close != nil, s.Cut, s.Wait != 0, s.Stall != 0,
		s.Do != nil, s.Accept != nil, s.Result != nil, s.ExpectNoConnection != 0,
	} {
		if set {
			n++
		}
	}
	return n
}

// within returns the step's time bound.
func (s *Step) within() time.Duration {
	if s.Within != 0 {
		return time.Duration(s.Within)
	}
	return 5 * time.Second
}
