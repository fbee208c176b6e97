package codec_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/codec"
	reflectionv1 "github.com/protows/protows/gen/go/protows/reflection/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/vectors")

const vectorsDir = "testdata/vectors"

// The vectors are language-neutral: index.json describes each frame as a
// list of envelopes in protojson form, and a file beside it holds the exact
// bytes of the frame. The TypeScript runtime reads the same files.
type vectorIndex struct {
	Comment string        `json:"comment"`
	Frames  []frameVector `json:"frames"`
}

type frameVector struct {
	Name      string            `json:"name"`
	Codec     string            `json:"codec"`
	File      string            `json:"file"`
	Envelopes []json.RawMessage `json:"envelopes"`
}

// Methods of the vectors: a unary method, a server stream, a bidirectional
// and a client-streaming method.
const (
	sendMethod   = "/chat.v1.ChatService/Send"
	watchMethod  = "/chat.v1.ChatService/Watch"
	chatMethod   = "/chat.v1.ChatService/Chat"
	uploadMethod = "/chat.v1.ChatService/Upload"
)

// vectorCases builds the logical frames, each encoded with both codecs.
// payload is how the case's message is encoded by the codec at hand.
func vectorCases(t *testing.T, c codec.Codec) map[string][]*protowsv1.Envelope {
	t.Helper()
	payload := func(m proto.Message) []byte {
		b, err := c.AppendPayload(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	requestTo := func(method string, id uint32, m proto.Message) *protowsv1.Envelope {
		e := &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REQUEST, Payload: payload(m)}
		// The Protobuf codec names methods by id, the JSON codec by name.
		if c.Binary() {
			e.MethodId = protows.MethodID(method)
		} else {
			e.Method = method
		}
		return e
	}
	request := func(id uint32, m proto.Message) *protowsv1.Envelope {
		return requestTo(sendMethod, id, m)
	}
	token := &protowsv1.AuthenticateRequest{Token: "eyJhbGciOiJFUzI1NiJ9.e30.sig"}
	reply := &protowsv1.AuthenticateResponse{Subject: "alice", ExpiresAt: 1795000000}
	unicode := &protowsv1.AuthenticateResponse{Subject: "zoë «café» 🚀 \"quoted\" <tag> & \\ \n"}
	large := &protowsv1.AuthenticateRequest{Token: strings.Repeat("0123456789abcdef", 4096)}
	withErr := func(id uint32, k protowsv1.Kind, code protowsv1.Code, msg string) *protowsv1.Envelope {
		return &protowsv1.Envelope{Id: id, Kind: k, Error: &protowsv1.Error{Code: code, Message: msg}}
	}
	// An error detail is held in the codec's encoding, as a payload is:
	// Protobuf bytes in an Any, or the Any's protojson object.
	detail := func(m proto.Message) *anypb.Any {
		a := &anypb.Any{}
		if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
			t.Fatal(err)
		}
		if c.Binary() {
			return a
		}
		return &anypb.Any{TypeUrl: a.GetTypeUrl(), Value: payload(a)}
	}
	return map[string][]*protowsv1.Envelope{
		"request":       {request(1, token)},
		"request_empty": {request(2, &protowsv1.AuthenticateRequest{})},
		"request_metadata": {func() *protowsv1.Envelope {
			e := request(3, token)
			e.Metadata = map[string]string{"x-trace": "abc", "accept-language": "fr", "b": ""}
			return e
		}()},
		"request_large": {request(4, large)},
		// A call that may be sent more than once (docs/PROTOCOL.md,
		// section 3.7) and must end within 1.5 s (section 3.8).
		"request_idempotent": {func() *protowsv1.Envelope {
			e := request(11, token)
			e.IdempotencyKey = "4f8e2c1a-9b3d-4e6f-a1c2-7d5e9f0b3a68"
			e.TimeoutMs = 1500
			return e
		}()},
		// An error with typed details (section 8.1): a well-known type,
		// whose JSON form in an Any is {"@type":...,"value":...}, and an
		// ordinary message.
		"error_details": {func() *protowsv1.Envelope {
			e := withErr(12, protowsv1.Kind_KIND_ERROR, protowsv1.Code_CODE_RESOURCE_EXHAUSTED, "quota « salon » exceeded")
			e.Error.Details = []*anypb.Any{
				detail(durationpb.New(1500 * time.Millisecond)),
				detail(&protowsv1.AuthenticateResponse{Subject: "alice", ExpiresAt: 1795000000}),
			}
			return e
		}()},
		"reply":              {{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: payload(reply)}},
		"reply_unicode":      {{Id: 5, Kind: protowsv1.Kind_KIND_REPLY, Payload: payload(unicode)}},
		"stream_message":     {{Id: 9, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload(reply)}},
		"stream_message_seq": {{Id: 9, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload(reply), Seq: 1 << 40}},
		"stream_end":         {{Id: 9, Kind: protowsv1.Kind_KIND_STREAM_END}},
		"stream_end_error": {withErr(9, protowsv1.Kind_KIND_STREAM_END,
			protowsv1.Code_CODE_UNAVAILABLE, "server shutting down")},
		"cancel": {{Id: 9, Kind: protowsv1.Kind_KIND_CANCEL}},
		"error": {withErr(6, protowsv1.Kind_KIND_ERROR,
			protowsv1.Code_CODE_NOT_FOUND, "salle « café » introuvable 🚫")},
		// ERROR id 0 is about the connection, not a call (PROTOCOL.md
		// section 4.4): the authentication deadline passed.
		"error_connection": {withErr(0, protowsv1.Kind_KIND_ERROR,
			protowsv1.Code_CODE_UNAUTHENTICATED, "no authentication within 10s")},
		// U+2028 and U+2029 go out as they are in every string, as
		// JSON.stringify writes them (PROTOCOL.md section 5), while a
		// backslash followed by u2028 stays an escaped backslash.
		"line_separators": {
			{Id: 5, Kind: protowsv1.Kind_KIND_REPLY, Payload: payload(&protowsv1.AuthenticateResponse{Subject: "a\u2028b\u2029c"}),
				Metadata: map[string]string{"note": "x\u2028y \\u2028"}},
			withErr(6, protowsv1.Kind_KIND_ERROR, protowsv1.Code_CODE_NOT_FOUND, "line\u2028para\u2029end"),
		},
		// Server reflection (docs/PROTOCOL.md, section 13): a request for
		// the file of a service, and a reply with a (small) file.
		"reflection_request": {requestTo(reflectionv1.ReflectionServiceFileContainingSymbolMethod, 10,
			&reflectionv1.FileContainingSymbolRequest{Symbol: "chat.v1.ChatService"})},
		"reflection_reply": {{Id: 10, Kind: protowsv1.Kind_KIND_REPLY, Payload: payload(
			&reflectionv1.FileContainingSymbolResponse{FileDescriptorProtos: [][]byte{chatFile(t)}})}},
		// Flow-controlled streams (docs/PROTOCOL.md, sections 4.4 to 4.6): a
		// server stream opened with an initial window; a bidirectional call
		// (REQUEST without payload, with a window for the server's
		// messages); the server's first CREDIT; a frame from the client
		// with two stream messages, a CREDIT for the server's messages and
		// the half-close.
		"request_credit": {func() *protowsv1.Envelope {
			e := requestTo(watchMethod, 11, token)
			e.Credit = 256
			return e
		}()},
		"request_bidi": {func() *protowsv1.Envelope {
			e := requestTo(chatMethod, 12, &protowsv1.AuthenticateRequest{})
			e.Payload, e.Credit = nil, 256
			return e
		}()},
		"request_client_stream": {func() *protowsv1.Envelope {
			e := requestTo(uploadMethod, 13, &protowsv1.AuthenticateRequest{})
			e.Payload = nil
			return e
		}()},
		"credit": {{Id: 12, Kind: protowsv1.Kind_KIND_CREDIT, Credit: 16}},
		"client_stream": {
			{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload(token)},
			{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload(&protowsv1.AuthenticateRequest{})},
			{Id: 12, Kind: protowsv1.Kind_KIND_CREDIT, Credit: 128},
			{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_END},
		},
		"half_close": {{Id: 13, Kind: protowsv1.Kind_KIND_STREAM_END}},
		// Resumable room streams (docs/PROTOCOL.md, section 14): a first
		// join that asks for the latest 50 messages, a resume after a
		// reconnection, and the server's answers.
		"request_history": {func() *protowsv1.Envelope {
			e := request(11, token)
			e.Resume = &protowsv1.Resume{History: 50}
			return e
		}()},
		// A stream REQUEST of a client that understands STREAM_POSITION
		// and wants no history: resume is there, empty.
		"request_resume_empty": {func() *protowsv1.Envelope {
			e := request(13, token)
			e.Resume = &protowsv1.Resume{}
			return e
		}()},
		"request_resume": {func() *protowsv1.Envelope {
			e := request(12, token)
			e.Resume = &protowsv1.Resume{Epoch: "m-6f1d2c3b4a5e", Offset: 1041, History: 50}
			return e
		}()},
		"stream_position": {{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_POSITION, Position: &protowsv1.Position{
			Epoch: "m-6f1d2c3b4a5e", Offset: 1041, Recovery: protowsv1.Recovery_RECOVERY_RECOVERED, Latest: 1043}}},
		"stream_position_gap": {{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_POSITION, Position: &protowsv1.Position{
			Epoch: "m-0a9b8c7d6e5f", Offset: 10, Recovery: protowsv1.Recovery_RECOVERY_EPOCH_CHANGED, Latest: 12}}},
		"stream_position_fresh": {{Id: 11, Kind: protowsv1.Kind_KIND_STREAM_POSITION, Position: &protowsv1.Position{
			Epoch: "m-6f1d2c3b4a5e"}}},
		// An outcome this version does not name (docs/PROTOCOL.md, sections
		// 5 and 14.3): in Protobuf a number a later version may add, kept
		// as it came; in JSON the name "unknown", which the codecs read as
		// -1 and write for any number without a name.
		"stream_position_unknown_recovery": {func() *protowsv1.Envelope {
			r := protowsv1.Recovery(9)
			if !c.Binary() {
				r = -1
			}
			return &protowsv1.Envelope{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_POSITION, Position: &protowsv1.Position{
				Epoch: "m-6f1d2c3b4a5e", Offset: 1041, Recovery: r, Latest: 1043}}
		}()},
		// A resume as it reaches the client: the position, the two
		// missed messages (replayed), then a live one.
		"batch_resume": {
			{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_POSITION, Position: &protowsv1.Position{
				Epoch: "m-6f1d2c3b4a5e", Offset: 1041, Recovery: protowsv1.Recovery_RECOVERY_RECOVERED, Latest: 1043}},
			{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload(reply), Seq: 1042},
			{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload(reply), Seq: 1043},
			{Id: 12, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload(reply), Seq: 1044},
		},
		"ping": {{Id: 7, Kind: protowsv1.Kind_KIND_PING}},
		"pong": {{Id: 7, Kind: protowsv1.Kind_KIND_PONG}},
		"batch": {
			{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: payload(reply)},
			{Id: 9, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload(reply)},
			{Id: 3, Kind: protowsv1.Kind_KIND_PONG},
		},
	}
}

// chatFile is the serialized descriptor of a small file, as a reflection
// reply carries it:
//
//	syntax = "proto3";
//	package chat.v1;
//	message SendRequest { string room = 1; string text = 2; }
//	message SendResponse {}
//	service ChatService { rpc Send(SendRequest) returns (SendResponse); }
func chatFile(t *testing.T) []byte {
	t.Helper()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	f := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("chat/v1/chat.proto"),
		Package: proto.String("chat.v1"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("SendRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("room"), Number: proto.Int32(1), Label: opt, Type: str, JsonName: proto.String("room")},
				{Name: proto.String("text"), Number: proto.Int32(2), Label: opt, Type: str, JsonName: proto.String("text")},
			}},
			{Name: proto.String("SendResponse")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("ChatService"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name:       proto.String("Send"),
				InputType:  proto.String(".chat.v1.SendRequest"),
				OutputType: proto.String(".chat.v1.SendResponse"),
			}},
		}},
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func codecs() []codec.Codec { return []codec.Codec{codec.Proto(), codec.JSON()} }

func fileName(name string, c codec.Codec) string {
	if c.Binary() {
		return name + ".proto.bin"
	}
	return name + ".json"
}

func TestGoldenVectors(t *testing.T) {
	index := vectorIndex{
		Comment: "Generated by `go test ./codec -run TestGoldenVectors -update`. " +
			"Each frame's file holds its exact bytes; envelopes are protows.v1.Envelope in protojson form " +
			"(payload is base64 of the codec's payload bytes).",
	}
	for _, c := range codecs() {
		cases := vectorCases(t, c)
		for _, name := range sortedKeys(cases) {
			envs := cases[name]
			frame, err := codec.MarshalFrame(c, envs...)
			if err != nil {
				t.Fatalf("%s/%s: %v", c.Name(), name, err)
			}
			fv := frameVector{Name: name, Codec: c.Name(), File: fileName(name, c)}
			for _, e := range envs {
				b, err := protojson.MarshalOptions{}.Marshal(neutral(t, c, e))
				if err != nil {
					t.Fatal(err)
				}
				fv.Envelopes = append(fv.Envelopes, compactJSON(t, b))
			}
			index.Frames = append(index.Frames, fv)
			path := filepath.Join(vectorsDir, fv.File)
			if *update {
				writeFile(t, path, frame)
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create the vectors)", err)
			}
			if !bytes.Equal(frame, want) {
				t.Errorf("%s/%s: encoding differs from %s:\n got %q\nwant %q", c.Name(), name, path, frame, want)
			}
			got, err := c.DecodeFrame(want)
			if err != nil {
				t.Fatalf("%s/%s: decode: %v", c.Name(), name, err)
			}
			if len(got) != len(envs) {
				t.Fatalf("%s/%s: decoded %d envelopes, want %d", c.Name(), name, len(got), len(envs))
			}
			for i := range envs {
				if !proto.Equal(got[i], envs[i]) {
					t.Errorf("%s/%s: envelope %d decodes to %v, want %v", c.Name(), name, i, got[i], envs[i])
				}
			}
		}
	}
	indexJSON, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	indexJSON = append(indexJSON, '\n')
	indexPath := filepath.Join(vectorsDir, "index.json")
	if *update {
		writeFile(t, indexPath, indexJSON)
		return
	}
	want, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(indexJSON, want) {
		t.Errorf("%s is stale: run go test ./codec -run TestGoldenVectors -update", indexPath)
	}
}

// neutral returns e as index.json describes it, independent of the codec:
// error details in their Protobuf form, which protojson writes as the
// protojson form of an Any.
func neutral(t *testing.T, c codec.Codec, e *protowsv1.Envelope) *protowsv1.Envelope {
	t.Helper()
	if c.Binary() || len(e.GetError().GetDetails()) == 0 {
		return e
	}
	e = proto.Clone(e).(*protowsv1.Envelope)
	for i, d := range e.Error.Details {
		a := &anypb.Any{}
		if err := protojson.Unmarshal(d.GetValue(), a); err != nil {
			t.Fatal(err)
		}
		e.Error.Details[i] = a
	}
	return e
}

func compactJSON(t *testing.T, b []byte) json.RawMessage {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
