package codec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/protows/protows"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestEnvelopeOverhead(t *testing.T) {
	// The overhead budget of the Protobuf codec: at most 16 bytes around a
	// small request, counting the frame's own field tag and length.
	c := codec.Proto()
	for _, size := range []payload.Size{payload.Small, payload.Medium} {
		body, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: payload.New(size)})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint32{1, 1000, 100000} {
			frame, err := codec.MarshalFrame(c, &protowsv1.Envelope{
				Id:       id,
				Kind:     protowsv1.Kind_KIND_REQUEST,
				MethodId: protows.MethodID("/protows.bench.v1.BenchService/Echo"),
				Payload:  body,
			})
			if err != nil {
				t.Fatal(err)
			}
			overhead := len(frame) - len(body)
			t.Logf("proto codec: request id %d, %s payload of %d bytes: frame %d bytes, envelope overhead %d bytes",
				id, size, len(body), len(frame), overhead)
			if size == payload.Small && overhead > 16 {
				t.Errorf("overhead %d bytes around a small request, want at most 16", overhead)
			}
		}
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	tooManyProto := strings.Repeat("\x0a\x00", codec.MaxEnvelopesPerFrame+1)
	tooManyJSON := "[" + strings.Repeat("{},", codec.MaxEnvelopesPerFrame) + "{}]"
	tests := []struct {
		name  string
		codec codec.Codec
		frame string
		is    error // when set, errors.Is must hold
	}{
		{"proto empty", codec.Proto(), "", nil},
		{"proto truncated tag", codec.Proto(), "\x0a", nil},
		{"proto truncated envelope", codec.Proto(), "\x0a\x05\x08\x01", nil},
		{"proto wrong wire type", codec.Proto(), "\x08\x01", nil},
		{"proto length 2^63-1", codec.Proto(), "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x7f", nil},
		{"proto bad envelope field", codec.Proto(), "\x0a\x02\x08\x80", nil},
		{"proto too many envelopes", codec.Proto(), tooManyProto, codec.ErrTooManyEnvelopes},
		{"json empty", codec.JSON(), "  ", nil},
		{"json garbage", codec.JSON(), "{not json", nil},
		{"json truncated", codec.JSON(), `{"id":1,"kind":"req`, nil},
		{"json empty array", codec.JSON(), "[]", nil},
		{"json unknown kind", codec.JSON(), `{"kind":"shout"}`, nil},
		{"json negative id", codec.JSON(), `{"id":-1,"kind":"ping"}`, nil},
		{"json id too large", codec.JSON(), `{"id":4294967296,"kind":"ping"}`, nil},
		{"json bad code", codec.JSON(), `{"kind":"error","error":{"code":"nope"}}`, nil},
		{"json scalar", codec.JSON(), `42`, nil},
		{"json array of scalars", codec.JSON(), `[1,2]`, nil},
		{"json too many envelopes", codec.JSON(), tooManyJSON, codec.ErrTooManyEnvelopes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			envs, err := tt.codec.DecodeFrame([]byte(tt.frame))
			if err == nil {
				t.Fatalf("DecodeFrame(%q) = %v, want an error", tt.frame, envs)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want %v", err, tt.is)
			}
		})
	}
}

func TestDecodeFrameAccepts(t *testing.T) {
	tests := []struct {
		name  string
		codec codec.Codec
		frame string
		want  []*protowsv1.Envelope
	}{
		{"proto unknown frame field skipped", codec.Proto(), "\x10\x05\x0a\x02\x10\x07",
			[]*protowsv1.Envelope{{Kind: protowsv1.Kind_KIND_PING}}},
		{"proto max envelopes", codec.Proto(), strings.Repeat("\x0a\x00", codec.MaxEnvelopesPerFrame), nil},
		{"json surrounding white space", codec.JSON(), " \n{\"id\":7,\"kind\":\"pong\"}\n",
			[]*protowsv1.Envelope{{Id: 7, Kind: protowsv1.Kind_KIND_PONG}}},
		{"json unknown key ignored", codec.JSON(), `{"id":7,"kind":"ping","future":{"x":1}}`,
			[]*protowsv1.Envelope{{Id: 7, Kind: protowsv1.Kind_KIND_PING}}},
		{"json null payload is no payload", codec.JSON(), `{"id":1,"kind":"reply","payload":null}`,
			[]*protowsv1.Envelope{{Id: 1, Kind: protowsv1.Kind_KIND_REPLY}}},
		{"json scalar payload kept", codec.JSON(), `{"id":1,"kind":"reply","payload":"1.5s"}`,
			[]*protowsv1.Envelope{{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: []byte(`"1.5s"`)}}},
		{"json unknown code kept", codec.JSON(), `{"kind":"error","error":{"code":"code_99","message":"m"}}`,
			[]*protowsv1.Envelope{{Kind: protowsv1.Kind_KIND_ERROR, Error: &protowsv1.Error{Code: 99, Message: "m"}}}},
		// An outcome newer than this codec is none it knows, never
		// UNSPECIFIED (a fresh start): clients report it as a loss.
		{"json unknown recovery kept as unknown", codec.JSON(),
			`{"id":3,"kind":"stream_position","position":{"epoch":"e","offset":4,"recovery":"partly_recovered","latest":9}}`,
			[]*protowsv1.Envelope{{Id: 3, Kind: protowsv1.Kind_KIND_STREAM_POSITION,
				Position: &protowsv1.Position{Epoch: "e", Offset: 4, Recovery: protowsv1.Recovery(-1), Latest: 9}}}},
		{"json array of one", codec.JSON(), `[{"id":2,"kind":"cancel"}]`,
			[]*protowsv1.Envelope{{Id: 2, Kind: protowsv1.Kind_KIND_CANCEL}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			envs, err := tt.codec.DecodeFrame([]byte(tt.frame))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				return
			}
			if len(envs) != len(tt.want) {
				t.Fatalf("got %d envelopes, want %d", len(envs), len(tt.want))
			}
			for i := range envs {
				if !proto.Equal(envs[i], tt.want[i]) {
					t.Errorf("envelope %d = %v, want %v", i, envs[i], tt.want[i])
				}
			}
		})
	}
}

// TestJSONUnknownRecoveryWritten: a recovery outcome without a JSON name
// (read from a newer peer) is written as "unknown", which reads back as
// the same unknown outcome.
func TestJSONUnknownRecoveryWritten(t *testing.T) {
	for _, r := range []protowsv1.Recovery{-1, 99} {
		b, err := codec.JSON().AppendEnvelope(nil, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_STREAM_POSITION,
			Position: &protowsv1.Position{Offset: 2, Recovery: r}})
		if err != nil {
			t.Fatalf("recovery %d: %v", r, err)
		}
		if want := `{"id":1,"kind":"stream_position","position":{"offset":2,"recovery":"unknown"}}`; string(b) != want {
			t.Errorf("recovery %d written as %s, want %s", r, b, want)
		}
		envs, err := codec.JSON().DecodeFrame(b)
		if err != nil || len(envs) != 1 || envs[0].GetPosition().GetRecovery() != -1 {
			t.Errorf("read back as %v, %v; want recovery -1", envs, err)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, c := range codecs() {
		for _, size := range payload.Sizes {
			in := payload.New(size)
			b, err := c.AppendPayload([]byte("prefix"), in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b[:6]) != "prefix" {
				t.Fatalf("%s: AppendPayload overwrote dst", c.Name())
			}
			out := new(benchv1.Sample)
			if err := c.UnmarshalPayload(b[6:], out); err != nil {
				t.Fatalf("%s/%s: %v", c.Name(), size, err)
			}
			if !proto.Equal(in, out) {
				t.Errorf("%s/%s: round trip changed the message", c.Name(), size)
			}
		}
	}
}

func TestPayloadEmptyIsEmptyMessage(t *testing.T) {
	for _, c := range codecs() {
		m := &benchv1.Sample{Id: "stale"}
		if err := c.UnmarshalPayload(nil, m); err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		if m.Id != "" {
			t.Errorf("%s: empty payload left %q in the message", c.Name(), m.Id)
		}
	}
}

func TestJSONPayloadIsStableAndCompact(t *testing.T) {
	// protojson varies its white space between builds on purpose; the codec
	// must not.
	b, err := codec.JSON().AppendPayload(nil, &protowsv1.AuthenticateResponse{Subject: "a b", ExpiresAt: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"subject":"a b","expiresAt":"3"}`; string(b) != want {
		t.Errorf("payload %s, want %s", b, want)
	}
}

func TestJSONRejectsInvalidPayloadOnEncode(t *testing.T) {
	_, err := codec.JSON().AppendEnvelope(nil, &protowsv1.Envelope{Kind: protowsv1.Kind_KIND_REPLY, Payload: []byte("{oops")})
	if err == nil {
		t.Fatal("AppendEnvelope accepted a payload that is not JSON")
	}
}

func TestProtoAppendEnvelopeMatchesFrameMessage(t *testing.T) {
	// The hand-written frame walk must agree with the schema's Frame.
	envs := []*protowsv1.Envelope{
		{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: []byte{1, 2, 3}},
		{Id: 2, Kind: protowsv1.Kind_KIND_ERROR, Error: &protowsv1.Error{Code: 5, Message: "x"}, Metadata: map[string]string{"b": "2", "a": "1"}},
	}
	got, err := codec.MarshalFrame(codec.Proto(), envs...)
	if err != nil {
		t.Fatal(err)
	}
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&protowsv1.Frame{Envelopes: envs})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("frame %x, proto.Marshal(Frame) %x", got, want)
	}
	var frame protowsv1.Frame
	if err := proto.Unmarshal(got, &frame); err != nil || len(frame.Envelopes) != 2 {
		t.Errorf("proto.Unmarshal(Frame) = %v, %d envelopes", err, len(frame.Envelopes))
	}
	if _, _, n := protowire.ConsumeField(got); n <= 0 {
		t.Errorf("frame does not start with a field")
	}
}

func TestMarshalFrameLimits(t *testing.T) {
	if _, err := codec.MarshalFrame(codec.Proto()); err == nil {
		t.Error("MarshalFrame with no envelope succeeded")
	}
	many := make([]*protowsv1.Envelope, codec.MaxEnvelopesPerFrame+1)
	for i := range many {
		many[i] = &protowsv1.Envelope{Kind: protowsv1.Kind_KIND_PING}
	}
	if _, err := codec.MarshalFrame(codec.JSON(), many...); !errors.Is(err, codec.ErrTooManyEnvelopes) {
		t.Errorf("MarshalFrame of %d envelopes: %v, want ErrTooManyEnvelopes", len(many), err)
	}
}

func TestRegistryNegotiate(t *testing.T) {
	r := codec.DefaultRegistry()
	tests := []struct {
		offered []string
		want    string // "" for an error
	}{
		{nil, codec.ProtoName},
		{[]string{codec.JSONName}, codec.JSONName},
		{[]string{"chat", codec.JSONName, codec.ProtoName}, codec.JSONName},
		{[]string{codec.ProtoName, codec.JSONName}, codec.ProtoName},
		{[]string{"protows.v2.proto"}, ""},
		{[]string{"PROTOWS.V1.JSON"}, ""}, // subprotocols are case-sensitive
	}
	for _, tt := range tests {
		c, err := r.Negotiate(tt.offered)
		switch {
		case tt.want == "" && !errors.Is(err, codec.ErrNoCommonSubprotocol):
			t.Errorf("Negotiate(%q) = %v, %v; want ErrNoCommonSubprotocol", tt.offered, c, err)
		case tt.want == "":
			if !strings.Contains(err.Error(), codec.ProtoName) || !strings.Contains(err.Error(), codec.JSONName) {
				t.Errorf("error %q does not name the supported subprotocols", err)
			}
		case err != nil || c.Name() != tt.want:
			t.Errorf("Negotiate(%q) = %v, %v; want %s", tt.offered, c, err, tt.want)
		}
	}
}

func TestNewRegistry(t *testing.T) {
	r, err := codec.NewRegistry(codec.JSON(), codec.Proto())
	if err != nil {
		t.Fatal(err)
	}
	if r.Default().Name() != codec.JSONName {
		t.Errorf("default %s, want the first codec", r.Default().Name())
	}
	if got := r.Names(); len(got) != 2 || got[0] != codec.JSONName {
		t.Errorf("Names() = %q", got)
	}
	if _, err := codec.NewRegistry(codec.JSON(), codec.JSON()); err == nil {
		t.Error("NewRegistry accepted a subprotocol twice")
	}
	if _, err := codec.NewRegistry(nil); err == nil {
		t.Error("NewRegistry accepted no codec")
	}
}

// TestJSONStringsAsJSONStringify: the JSON codec escapes strings outside
// the payload (methods, error messages, metadata) as JSON.stringify does,
// as it leaves payloads as protojson wrote them: U+2028 and U+2029 as they
// are, which encoding/json alone would escape.
func TestJSONStringsAsJSONStringify(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"a\u2028b\u2029c", "a\u2028b\u2029c"},
		{`a\u2028`, `a\\u2028`},                                         // the text: an escaped backslash
		{"\\\u2028", "\\\\\u2028"},                                      // a backslash, then U+2028
		{`\\u2029`, `\\\\u2029`},                                        // two backslashes, then text
		{"\x01\b\f\n\r\t\x7f<>&\"", `\u0001\b\f\n\r\t` + "\x7f<>&\\\""}, // as JSON.stringify
		{"\u2028", "\u2028"},
		{"x\u202a", "x\u202a"}, // a neighbour, never escaped
	} {
		e := &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_ERROR, Error: &protowsv1.Error{Code: 5, Message: tc.msg},
			Metadata: map[string]string{tc.msg: tc.msg}}
		got, err := codec.JSON().AppendEnvelope([]byte("prefix"), e)
		if err != nil {
			t.Fatal(err)
		}
		want := `prefix{"id":1,"kind":"error","error":{"code":"not_found","message":"` + tc.want + `"},"metadata":{"` + tc.want + `":"` + tc.want + `"}}`
		if string(got) != want {
			t.Errorf("%q:\n got %s\nwant %s", tc.msg, got, want)
		}
		envs, err := codec.JSON().DecodeFrame(got[len("prefix"):])
		if err != nil || envs[0].GetError().GetMessage() != tc.msg || envs[0].GetMetadata()[tc.msg] != tc.msg {
			t.Errorf("%q does not round-trip: %v %v", tc.msg, envs, err)
		}
	}
}
