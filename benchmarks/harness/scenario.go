package harness

import (
	"context"
	"net/http"
	"time"

	"github.com/protows/protows/benchmarks/payload"
)

// Codec names, as they appear in results: the protows codecs, and the same
// payload encodings for implementations that have no envelope of their own.
const (
	// CodecProto is the Protobuf binary encoding, in binary WebSocket messages.
	CodecProto = "proto"
	// CodecJSON is the protojson encoding, in text WebSocket messages.
	CodecJSON = "json"
)

// Params says what one repetition of a scenario does.
type Params struct {
	// Codec is CodecProto or CodecJSON.
	Codec string `json:"codec"`
	// Size is the payload size.
	Size payload.Size `json:"size"`
	// Conns is the number of client connections (room members, for a
	// broadcast; the publisher's connection comes on top).
	Conns int `json:"conns"`
	// InFlight is the calls each connection keeps in flight (echo), or the
	// publishes the publisher may be ahead of the slowest delivery
	// (broadcast). Zero means 1.
	InFlight int `json:"inFlight"`
	// Burst is the messages per stream, for Stream scenarios: each
	// connection runs streams of Burst messages back to back. Zero means
	// DefaultBurst.
	Burst int `json:"burst,omitempty"`
	// Rate is the publishes per second of a Fanout scenario (zero: as
	// fast as the window allows), or the calls per second over all
	// connections of a Paced scenario (open loop, see Schedule).
	Rate float64 `json:"rate,omitempty"`
	// Messages bounds the repetition by count: it stops once this many
	// messages were delivered, over all connections. Zero means no count
	// bound.
	Messages int64 `json:"messages"`
	// Duration bounds the repetition by time. Zero means no time bound; a
	// repetition needs at least one of the two bounds.
	Duration time.Duration `json:"duration"`
}

// DefaultBurst is the messages per stream when Params.Burst is zero: the
// window of the protows client (256), so that a burst is one window.
const DefaultBurst = 256

// StreamBurst returns Burst, or DefaultBurst when it is zero.
func (p Params) StreamBurst() int {
	if p.Burst <= 0 {
		return DefaultBurst
	}
	return p.Burst
}

// Window returns InFlight, or 1 when it is zero.
func (p Params) Window() int { return max(p.InFlight, 1) }

// PerConn returns Messages split over n senders, rounded up: how many each
// must send for the count bound to be reachable. With no count bound it
// returns a number no run reaches.
func (p Params) PerConn(n int) int64 {
	if p.Messages <= 0 {
		return 1 << 40
	}
	n = max(n, 1)
	return (p.Messages + int64(n) - 1) / int64(n)
}

// Scenario is one benchmark, as one implementation does it: a server side
// and a client side. The harness serves the server side on loopback (in this
// process or in a child process), connects the client side, and measures.
type Scenario struct {
	// Name is what the scenario does: "echo", "push", "broadcast".
	Name string
	// Impl is who does it: "protows", "gorilla", "centrifuge".
	Impl string
	// Codecs lists the codecs the implementation runs the scenario in.
	Codecs []string
	// Shape says what Params.Conns and Params.InFlight mean, and so which
	// command-line flags set them.
	Shape Shape
	// Explicit scenarios run only when -scenarios names their key or impl
	// exactly (a variant of another scenario), not when it is empty or
	// names their scenario name.
	Explicit bool
	// Partner is the key of another scenario whose load this one's server
	// also serves (the same handlers): with Config.Interleave, a job of
	// this scenario and one of Partner with the same codec and size run
	// together, on this scenario's server, their loads taking turns (see
	// pair.go), so that their figures differ by their loads alone.
	Partner string
	// NewServer returns the server side for p. The harness serves it at
	// Path on a loopback listener and closes it after the repetition.
	NewServer func(p Params) (Server, error)
	// Connect opens the client side's connections to url (a ws:// URL) and
	// returns once they are established, before any load is sent: the
	// harness measures the memory per connection at that point.
	Connect func(ctx context.Context, url string, p Params) (Load, error)
}

// Shape is the form of a scenario's load.
type Shape int

const (
	// Calls: Conns connections, each with InFlight calls in flight
	// (-conns, -inflight).
	Calls Shape = iota
	// Stream: Conns connections, each running streams of Burst messages
	// back to back (-conns, -burst; InFlight is unused and 0).
	Stream
	// Fanout: Conns room members and one publisher that may be InFlight
	// publishes ahead of the deliveries (-members, -window).
	Fanout
	// Idle: many connections (-idle-conns) that make one call each; what
	// matters is the memory per connection, measured before the calls.
	Idle
	// Paced: Conns connections sending calls at Rate per second in all,
	// each on an open-loop Schedule, whatever the replies do (-conns,
	// -rate or -peak-fraction); latency runs from the time a call was due.
	Paced
)

// IdleOf returns the "idle" scenario of an echo scenario: the same server
// and client, run with Shape Idle, so that its server B/conn column is the
// memory of an idle connection. It runs in the Protobuf codec only, since
// an idle connection's memory does not depend on the codec.
func IdleOf(echo Scenario) Scenario {
	s := echo
	s.Name = "idle"
	s.Shape = Idle
	s.Codecs = []string{CodecProto}
	return s
}

// Key returns "name/impl", the scenario's identifier on the command line.
func (s Scenario) Key() string { return s.Name + "/" + s.Impl }

// Path is where the harness mounts a scenario's server.
const Path = "/ws"

// Server is a scenario's server side.
type Server interface {
	http.Handler
	// Close stops the server's background work. The harness closes the
	// HTTP server (and so the connections) first.
	Close() error
}

// Counting is implemented by a Server that counts events of its own (the
// protows broadcast server counts payload marshals). The harness reads the
// counters before and after the load, and the repetition keeps the
// difference (Rep.Counters).
type Counting interface {
	// Counters returns the counts so far, by name. Safe for concurrent use.
	Counters() map[string]int64
}

// CounterMarshals is the counter of payload marshals of broadcast messages:
// with encode-once, one per publish and codec in use.
const CounterMarshals = "marshals"

// Load is a scenario's client side, connected.
type Load interface {
	// Run sends load and records each delivered message with rec until ctx
	// is done (the harness cancels it when the count or time bound is
	// reached), then waits for what is in flight and returns.
	Run(ctx context.Context, rec *Recorder) error
	// Close closes the connections.
	Close() error
}

// ServerFunc adapts a handler and a close function to Server.
type ServerFunc struct {
	http.Handler
	// CloseFunc is called by Close; nil means nothing to do.
	CloseFunc func() error
}

// Close calls CloseFunc.
func (s ServerFunc) Close() error {
	if s.CloseFunc == nil {
		return nil
	}
	return s.CloseFunc()
}
