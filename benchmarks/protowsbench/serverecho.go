package protowsbench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/encoding/protowire"
)

// ServerEcho is server-bound echo on protows: the echo scenario's server
// and requests, but the Params.Conns clients are minimal
// (harness.Echoers): each writes one BenchService.Echo REQUEST, encoded
// once, again and again with Params.InFlight in flight, and counts the
// envelopes of the reply frames without decoding them, so that the
// server, not the client, limits the rate.
func ServerEcho() harness.Scenario {
	return harness.Scenario{
		Name: "serverecho", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		NewServer: func(harness.Params) (harness.Server, error) {
			return newServer(hub.Config[*benchv1.Sample]{}, nil)
		},
		Connect: connectServerEcho(false),
	}
}

// ServerEchoKeyed is ServerEcho with an idempotency key on every request,
// each new: the same minimal clients, so that its results beside
// ServerEcho's are what the key and the server's dedupe window cost the
// server alone, without the Go client's outbox (EchoKeyed) on the same 2
// cores.
//
// Its server's window is the in-memory default (dedupe.Memory, its default
// bounds), full from the start (fullWindow): the window of a server that
// has served keyed calls for a while, in which every new key makes the
// oldest go. Its partner is ServerEcho: with -interleave, the two loads
// take turns on this server, so that the unkeyed calls meet the same
// heap, and so the same garbage collections, as the keyed ones (a window
// of 100,000 keys is tens of megabytes of heap, which makes the collector
// run less often; on servers of their own, that alone makes the keyed
// server look cheaper than it is).
func ServerEchoKeyed() harness.Scenario {
	s := ServerEcho()
	s.Impl = Impl + "-keyed"
	s.Partner = ServerEcho().Key()
	s.NewServer = func(p harness.Params) (harness.Server, error) {
		m, err := fullWindow(p.Codec, p.Size)
		if err != nil {
			return nil, err
		}
		return newServer(hub.Config[*benchv1.Sample]{}, nil, func(c *transport.Config) { c.Dedupe = m })
	}
	s.Connect = connectServerEcho(true)
	return s
}

// ServerEchoPaced is ServerEcho on an open-loop schedule (harness.Paced),
// to compare the servers' latency at a rate with the same minimal client
// for both: the Params.Conns connections send Params.Rate requests per
// second in all, each at its due time whatever the replies do, and each
// reply's latency runs from the due time of the oldest request still
// waiting (see harness.DialPacedEchoers: protows may answer out of order
// and several replies in one frame, which the client does not decode). It
// runs only when named (-scenarios serverecho-paced), with -rate or
// -peak-fraction.
func ServerEchoPaced() harness.Scenario {
	s := ServerEcho()
	s.Name, s.Shape, s.Explicit = "serverecho-paced", harness.Paced, true
	s.Connect = func(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
		f, sub, err := serverEchoFrames(p, false)
		if err != nil {
			return nil, err
		}
		return harness.DialPacedEchoers(ctx, url, sub, p, f)
	}
	return s
}

// connectServerEcho returns the Connect of ServerEcho, or of
// ServerEchoKeyed when keyed is set.
func connectServerEcho(keyed bool) func(context.Context, string, harness.Params) (harness.Load, error) {
	return func(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
		f, sub, err := serverEchoFrames(p, keyed)
		if err != nil {
			return nil, err
		}
		return harness.DialEchoers(ctx, url, sub, p.Conns, p.Window(), f)
	}
}

// serverEchoFrames returns the request frame of the minimal echo clients,
// how they count the replies, and the subprotocol to offer; with keyed
// set, every request carries an idempotency key, new each time.
func serverEchoFrames(p harness.Params, keyed bool) (harness.EchoFrames, string, error) {
	c, err := codecOf(p.Codec)
	if err != nil {
		return harness.EchoFrames{}, "", err
	}
	sample := payload.New(p.Size)
	s, err := c.AppendPayload(nil, sample)
	if err != nil {
		return harness.EchoFrames{}, "", err
	}
	req, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: sample})
	if err != nil {
		return harness.EchoFrames{}, "", err
	}
	key := ""
	if keyed {
		key = keyOf(0)
	}
	frame, setID, err := requestFrame(c, benchv1.BenchServiceEchoMethod, req, key)
	if err != nil {
		return harness.EchoFrames{}, "", err
	}
	if keyed {
		if setID, err = withKeys(c, frame, setID); err != nil {
			return harness.EchoFrames{}, "", err
		}
	}
	f := harness.EchoFrames{Frame: frame, SetID: setID, Min: len(s), Size: len(req),
		Type: websocket.BinaryMessage, Count: harness.CountProtoFrame}
	if !c.Binary() {
		f.Type, f.Count = websocket.TextMessage, harness.CountJSONFrame
	}
	return f, c.Name(), nil
}

// Call ids of requestFrame's frames: 7 decimal digits, and 3 bytes as a
// varint (2^14 <= id < 2^21), so that every id takes the same bytes.
const (
	firstID = 1_000_000
	lastID  = 1<<21 - 1
)

// requestFrame encodes a REQUEST envelope of method with payload req, as a
// frame of its own (docs/PROTOCOL.md section 2), and returns it with a
// function that writes another call id into it in place: calls in flight
// need ids of their own (section 3.1). The id's bytes are where the
// frames of the first and the last id differ.
func requestFrame(c codec.Codec, method string, req []byte, key string) ([]byte, func([]byte, uint64), error) {
	enc := func(id uint32) ([]byte, error) {
		return c.AppendEnvelope(nil, &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REQUEST, Method: method, Payload: req, IdempotencyKey: key})
	}
	idBytes := func(b []byte, id uint64) []byte {
		if c.Binary() {
			return protowire.AppendVarint(b, id)
		}
		return strconv.AppendUint(b, id, 10)
	}
	a, err := enc(firstID)
	if err != nil {
		return nil, nil, err
	}
	b, err := enc(lastID)
	if err != nil {
		return nil, nil, err
	}
	i, j := 0, len(a)
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	for j > i && len(a) == len(b) && a[j-1] == b[j-1] {
		j--
	}
	if len(a) != len(b) || !bytes.Equal(a[i:j], idBytes(nil, firstID)) || !bytes.Equal(b[i:j], idBytes(nil, lastID)) {
		return nil, nil, fmt.Errorf("protowsbench: the call id of a %s REQUEST is not where expected", c.Name())
	}
	setID := func(frame []byte, seq uint64) {
		// Appending within frame's capacity overwrites the id in place.
		idBytes(frame[i:i], firstID+seq%(lastID-firstID+1))
	}
	return a, setID, nil
}

// keyOf is the idempotency key of the n-th keyed request: every key takes
// the same bytes, so that the next is written over the last in place.
func keyOf(n uint64) string {
	var b [keyLen]byte
	putKey(b[:], n)
	return string(b[:])
}

// keyLen is the length of keyOf's keys: that of the keys the Go and
// TypeScript clients make (128 random bits in base64url), so that a keyed
// request carries the bytes a client's does. The key's bytes are a part
// of its cost: 36-byte keys cost the server 1.17× where 18-byte ones
// cost 1.12× (benchmarks/RESULTS.md).
const keyLen = 22

// putKey writes keyOf(n) into b[:keyLen], without allocating.
func putKey(b []byte, n uint64) {
	const digits = "0123456789abcdef"
	b[0], b[1] = 'k', '-'
	for j := keyLen - 1; j >= 2; j-- {
		b[j] = digits[n&15]
		n >>= 4
	}
}

// withKeys returns setID, which writes a call id into frame, a REQUEST
// made with the key keyOf(0), extended to write a new key as well: the
// keys come from one counter shared by the connections (anonymous callers
// share a scope), so that every request of the run has a key of its own.
func withKeys(c codec.Codec, frame []byte, setID func([]byte, uint64)) (func([]byte, uint64), error) {
	first := keyOf(0)
	i := bytes.Index(frame, []byte(first))
	if i < 0 || bytes.Contains(frame[i+1:], []byte(first)) {
		return nil, fmt.Errorf("protowsbench: the idempotency key of a %s REQUEST is not where expected", c.Name())
	}
	var next atomic.Uint64
	return func(frame []byte, seq uint64) {
		setID(frame, seq)
		putKey(frame[i:], next.Add(1))
	}, nil
}
