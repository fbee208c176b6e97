package codec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fmt"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
)

// checkSameAsStd fails unless decodeJSONFrame and decodeFrameStd agree on
// frame: both reject it (with the same sentinel, if any), or both accept it
// with equal envelopes and byte-identical payloads.
func checkSameAsStd(t *testing.T, frame []byte) {
	t.Helper()
	got, gotErr := decodeJSONFrame(frame)
	want, wantErr := decodeFrameStd(frame)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("frame %q: error %v, encoding/json error %v", frame, gotErr, wantErr)
	}
	if wantErr != nil {
		for _, sentinel := range []error{errEmptyFrame, ErrTooManyEnvelopes} {
			if errors.Is(gotErr, sentinel) != errors.Is(wantErr, sentinel) {
				t.Fatalf("frame %q: error %v, encoding/json error %v", frame, gotErr, wantErr)
			}
		}
		return
	}
	if len(got) != len(want) {
		t.Fatalf("frame %q: %d envelopes, encoding/json %d", frame, len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) || !bytes.Equal(got[i].Payload, want[i].Payload) ||
			(got[i].Payload == nil) != (want[i].Payload == nil) ||
			(got[i].Metadata == nil) != (want[i].Metadata == nil) {
			t.Fatalf("frame %q envelope %d: %v, encoding/json %v", frame, i, got[i], want[i])
		}
	}
}

func TestJSONDecodeFrameSameAsStd(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	frames := []string{
		``, ` `, `null`, ` null `, `[]`, `[null]`, `[null,{}]`, `{}`, `{} x`, `{}}`, `[{}`, `[{},]`, `[,{}]`,
		`5`, `"x"`, `true`, `[5]`, `[{}, 5, {]`, `[{"kind":"nope"}, {]`, `[{"kind":"nope"}, {}]`,
		`{"id":1}`, `{"id":1,"id":null}`, `{"id":-1}`, `{"id":-0}`, `{"id":1.0}`, `{"id":1e2}`, `{"id":4294967295}`,
		`{"id":4294967296}`, `{"id":"1"}`, `{"id":true}`, `{"id":{}}`, `{"id":[]}`, `{"id":01}`, `{"id":1.}`, `{"id":-}`,
		`{"seq":18446744073709551615}`, `{"seq":18446744073709551616}`, `{"seq":9007199254740993}`,
		`{"kind":"credit","credit":16}`, `{"credit":4294967295}`, `{"credit":4294967296}`, `{"credit":-1}`, `{"credit":"1"}`,
		`{"credit":null}`, `{"Credit":2}`, `{"credit":1,"credit":null}`,
		`{"ID":7,"Id":8}`, `{"ſeq":3}`, `{"\u0069d":4}`, `{"Kind":"reply"}`, `{"\u212aind":"reply"}`, `{"methodid":9}`, `{"METHODID":9}`,
		`{"kind":"reply"}`, `{"kind":"Reply"}`, `{"kind":""}`, `{"kind":null}`, `{"kind":"reply","kind":""}`, `{"kind":5}`,
		`{"kind":"stream_message"}`, `{"kind":"r\u0065ply"}`, `{"method":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\ud800x"}`,
		"{\"method\":\"\xff\xfe\"}", "{\"method\":\"a\x01\"}", `{"method":"\x"}`, `{"method":"\u12"}`, `{"method":"abc`,
		`{"payload":{"a":1}}`, `{"payload":null}`, `{"payload":{"a":1},"payload":null}`, `{"payload":null,"payload":[1, 2]}`,
		`{"payload": "x" }`, `{"payload":1e5}`, `{"payload":{"a":[1,{"b":null}],"c":"\u0000"}}`, `{"payload":{"a":}}`, `{"payload":tru}`,
		`{"error":null}`, `{"error":{}}`, `{"error":{"code":"aborted"}}`, `{"error":{"code":"code_77","message":"m"}}`,
		`{"error":{"code":"code_0"}}`, `{"error":{"code":"nope"}}`, `{"error":{"code":5}}`, `{"error":{"code":null}}`,
		`{"error":{"code":"aborted"},"error":{"message":"x"}}`, `{"error":{"code":"aborted"},"error":null,"error":{"message":"x"}}`,
		`{"error":5}`, `{"error":[]}`, `{"error":{"Code":"internal","x":[1]}}`,
		`{"metadata":{}}`, `{"metadata":null}`, `{"metadata":{"a":"1","b":null}}`, `{"metadata":{"a":"1"},"metadata":{"b":"2"}}`,
		`{"metadata":{"a":"1"},"metadata":null}`, `{"metadata":{"a":1}}`, `{"metadata":[]}`, `{"metadata":{"\u00e9":"x","a":"1","a":"2"}}`,
		`{"idempotencyKey":"k-1"}`, `{"idempotencyKey":""}`, `{"idempotencyKey":null}`, `{"idempotencyKey":5}`, `{"IDEMPOTENCYKEY":"a","idempotencykey":"b"}`,
		`{"timeoutMs":1500}`, `{"timeoutMs":4294967295}`, `{"timeoutMs":4294967296}`, `{"timeoutMs":-1}`, `{"timeoutMs":1.5}`, `{"timeoutMs":"1"}`, `{"timeoutMs":null}`,
		`{"error":{"details":[]}}`, `{"error":{"details":null}}`, `{"error":{"details":{}}}`, `{"error":{"details":[null]}}`, `{"error":{"details":[5]}}`,
		`{"error":{"details":[{}]}}`, `{"error":{"details":[{"@type":""}]}}`, `{"error":{"details":[{"@type":null}]}}`, `{"error":{"details":[{"@type":7}]}}`,
		`{"error":{"details":[{"@type":"type.googleapis.com/a.B","x":[1,{"y":null}]}]}}`, `{"error":{"details":[ { "@TYPE" : "u/a.B" , "z":1 } ]}}`,
		`{"error":{"details":[{"@type":"u/a.B","@type":"u/c.D"}]}}`, `{"error":{"details":[{"@type":"u/a.B","@type":null}]}}`,
		`{"error":{"details":[{"@type":"u/a.B"}]},"error":{"code":"aborted"}}`, `{"error":{"details":[{"@type":"u/a.B"}],"details":[{"@type":"u/c.D"}]}}`,
		`{"error":{"details":[{"@type":"u/a.B"}]},"error":null,"error":{"message":"m"}}`, `{"error":{"details":[{"@type":"u/a.B"},]}}`, `{"error":{"details":[{"@type":"u/a.B"}}}`,
		`{"resume":{}}`, `{"resume":null}`, `{"resume":{"epoch":"e","offset":7,"history":50}}`, `{"resume":5}`, `{"resume":[]}`,
		`{"resume":{"epoch":"e"},"resume":{"offset":3}}`, `{"resume":{"epoch":"e"},"resume":null,"resume":{"offset":3}}`,
		`{"resume":{"history":4294967296}}`, `{"resume":{"history":-1}}`, `{"resume":{"offset":"1"}}`, `{"resume":{"epoch":1}}`,
		`{"resume":{"Epoch":"e","HISTORY":2,"x":[1]}}`, `{"resume":{"epoch":null,"offset":null,"history":null}}`,
		`{"position":{}}`, `{"position":null}`, `{"position":{"epoch":"e","offset":1,"recovery":"too_old","latest":9}}`,
		`{"position":{"recovery":"recovered"}}`, `{"position":{"recovery":"nope"}}`, `{"position":{"recovery":""}}`,
		`{"position":{"recovery":1}}`, `{"position":{"recovery":null}}`, `{"position":{"recovery":"nope"},"position":{"recovery":"unavailable"}}`,
		`{"position":{"recovery":"epoch_changed"},"position":null}`, `{"position":{"recovery":"Recovered"}}`,
		`{"position":5}`, `{"position":{"latest":18446744073709551616}}`, `{"kind":"nope","position":{"recovery":"nope"}}`,
		`{"kind":"stream_position","position":{"epoch":"e"}}`,
		`{"unknown":{"deep":[1,2,{"x":null}]},"id":3}`, `{"unknown":}`, `{"a" 1}`, `{"a":1 "b":2}`, `{1:2}`,
		`[` + deep(9998) + `]`, `[` + deep(9999) + `]`, `[` + deep(10000) + `]`,
		`{"payload":` + deep(9998) + `}`, `{"payload":` + deep(9999) + `}`, `{"payload":` + deep(10000) + `}`,
		"\t\r\n {\"id\":1} \n", "\x00", "{\"id\":1}\x00",
		`[` + strings.Repeat(`{},`, MaxEnvelopesPerFrame-1) + `{}]`,
		`[` + strings.Repeat(`{},`, MaxEnvelopesPerFrame) + `{}]`,
		`[` + strings.Repeat(`{},`, MaxEnvelopesPerFrame) + `{]`,
		`[` + strings.Repeat(`{"kind":"x"},`, MaxEnvelopesPerFrame) + `{}]`,
	}
	for _, f := range frames {
		checkSameAsStd(t, []byte(f))
	}
	paths, err := filepath.Glob(filepath.Join("testdata", "vectors", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		checkSameAsStd(t, b)
	}
}

// The decoded payload aliases the frame, as the Codec contract allows,
// rather than being copied.
func TestJSONDecodeFramePayloadAliases(t *testing.T) {
	frame := []byte(`{"kind":"stream_message","payload":{"a":1}}`)
	envs, err := decodeJSONFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	p := envs[0].GetPayload()
	if string(p) != `{"a":1}` || &p[0] != &frame[bytes.Index(frame, []byte(`{"a"`))] {
		t.Fatalf("payload %q does not alias the frame", p)
	}
	if cap(p) != len(p) {
		t.Fatalf("payload cap %d > len %d: an append could overwrite the frame", cap(p), len(p))
	}
}

func FuzzJSONDecodeFrameSameAsStd(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "vectors", "*.json"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`[{"ID":1,"error":{"code":"aborted"},"metadata":{"a":null}},null]`))
	f.Add([]byte(`{"id":2,"kind":"request","method":"/a.B/C","idempotencyKey":"k","timeoutMs":9,"error":{"details":[{"@type":"u/a.B","x":1},{"@type":"u/c.D"}]}}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkSameAsStd(t, frame)
	})
}

// BenchmarkJSONDecodeFrame measures the envelope pass alone (no protojson),
// against the encoding/json decoder it replaced, on a batch of 8 stream
// messages as the hub sends them to a room member.
//
//	go test ./codec -run '^$' -bench JSONDecodeFrame -benchmem
func BenchmarkJSONDecodeFrame(b *testing.B) {
	// The payload's shape, not its meaning, matters here: a string plus an
	// array of numbers, n bytes or so. (The bench protos cannot be imported:
	// their package imports this one.)
	for _, n := range []int{100, 1000, 15000} {
		size := fmt.Sprintf("%dB", n)
		body := fmt.Appendf(nil, `{"text":%q,"values":[`, strings.Repeat("x", n/2))
		for i := 0; len(body) < n; i++ {
			body = fmt.Appendf(body, "%d,", i*7919)
		}
		body = append(body, `0]}`...)
		var elems [][]byte
		for i := range 8 {
			el, err := JSON().AppendEnvelope(nil, &protowsv1.Envelope{
				Id: 7, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: body, Seq: uint64(i + 1),
			})
			if err != nil {
				b.Fatal(err)
			}
			elems = append(elems, el)
		}
		frame := AppendFrame(JSON(), nil, elems...)
		for _, d := range []struct {
			name   string
			decode func([]byte) ([]*protowsv1.Envelope, error)
		}{{"encoding-json", decodeFrameStd}, {"scan", decodeJSONFrame}} {
			b.Run(size+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					if envs, err := d.decode(frame); err != nil || len(envs) != 8 {
						b.Fatal(len(envs), err)
					}
				}
			})
		}
	}
}

// BenchmarkJSONDecodeRequest measures the envelope pass of one REQUEST
// with and without the members that come late in the envelope's list of
// fields (an idempotency key and a timeout), whose keys are compared with
// every name before theirs.
//
//	go test ./codec -run '^$' -bench JSONDecodeRequest -benchmem
func BenchmarkJSONDecodeRequest(b *testing.B) {
	for _, c := range []struct {
		name string
		env  *protowsv1.Envelope
	}{
		{"plain", &protowsv1.Envelope{Id: 1000001, Kind: protowsv1.Kind_KIND_REQUEST, Method: "/protows.bench.v1.BenchService/Echo", Payload: []byte(`{"sample":{"text":"hello"}}`)}},
		{"keyed", &protowsv1.Envelope{Id: 1000001, Kind: protowsv1.Kind_KIND_REQUEST, Method: "/protows.bench.v1.BenchService/Echo", Payload: []byte(`{"sample":{"text":"hello"}}`),
			IdempotencyKey: "k-00000000000004d2", TimeoutMs: 30000}},
	} {
		frame, err := JSON().AppendEnvelope(nil, c.env)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if envs, err := decodeJSONFrame(frame); err != nil || len(envs) != 1 {
					b.Fatal(len(envs), err)
				}
			}
		})
	}
}

// TestSkipStringStopsAnywhere puts each kind of byte a string scan must
// see (the closing quote, an escape, a control character, a rune outside
// ASCII) at every place of strings longer and shorter than the eight
// bytes skipString tests at a time, and holds the scan to encoding/json:
// the same bytes accepted, the same string read, and the key plain only
// when it is its bytes as they are.
func TestSkipStringStopsAnywhere(t *testing.T) {
	for _, odd := range []string{`"`, `\n`, `\u00e9`, `\"`, "\x01", "\x1f", "\x7f", "é", "\xff", " "} {
		for n := range 20 {
			for at := 0; at <= n; at++ {
				body := strings.Repeat("a", at) + odd + strings.Repeat("b", n-at)
				frame := []byte(`{"id":1,"kind":"request","method":"` + body + `"}`)
				checkSameAsStd(t, frame)
				s := &jsonScanner{src: []byte(`"` + body + `"`)}
				raw, plain, err := s.skipString()
				if err != nil {
					continue // not a string: checkSameAsStd held the frame's error to encoding/json's
				}
				wantPlain := !strings.ContainsAny(string(raw), "\\") && isASCII(raw)
				if plain != wantPlain {
					t.Fatalf("%q: plain %v, want %v", body, plain, wantPlain)
				}
				if plain && string(raw) != unquoteJSON(raw) {
					t.Fatalf("%q: plain, but unquotes to %q", body, unquoteJSON(raw))
				}
			}
		}
	}
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// TestEnvelopeMemberFolds holds envelopeMember's switch of exact names to
// the folding it passes over: every name, in exact and in other cases,
// finds its member, and the names that fold to no member none.
func TestEnvelopeMemberFolds(t *testing.T) {
	for i, name := range envelopeMembers {
		for _, key := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			if got := envelopeMember(objectKey{raw: []byte(key), plain: true}); got != i {
				t.Errorf("%q: member %d, want %d (%s)", key, got, i, name)
			}
		}
		// An escaped key folds too, as encoding/json reads it.
		esc := `\u` + fmt.Sprintf("%04x", name[0]) + name[1:]
		if got := envelopeMember(objectKey{raw: []byte(esc)}); got != i {
			t.Errorf("%q: member %d, want %d (%s)", esc, got, i, name)
		}
	}
	for _, key := range []string{"", "i", "ids", "payloads", "idempotency_key"} {
		if got := envelopeMember(objectKey{raw: []byte(key), plain: true}); got != -1 {
			t.Errorf("%q: member %d, want none", key, got)
		}
	}
}
