package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	reflectionv1 "github.com/protows/protows/gen/go/protows/reflection/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

const vectorsDir = "../../codec/testdata/vectors"

type vectorFrame struct {
	Name      string            `json:"name"`
	Codec     string            `json:"codec"`
	File      string            `json:"file"`
	Envelopes []json.RawMessage `json:"envelopes"`
}

func readVectors(t *testing.T) []vectorFrame {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		Frames []vectorFrame `json:"frames"`
	}
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Frames) < 30 {
		t.Fatalf("only %d vectors", len(index.Frames))
	}
	return index.Frames
}

// decodedEnvelope is a line of decode's output.
type decodedEnvelope struct {
	ID             uint32            `json:"id"`
	Kind           string            `json:"kind"`
	Method         string            `json:"method"`
	MethodID       uint32            `json:"methodId"`
	Payload        json.RawMessage   `json:"payload"`
	PayloadBase64  []byte            `json:"payloadBase64"`
	Error          *decodedError     `json:"error"`
	Metadata       map[string]string `json:"metadata"`
	Seq            uint64            `json:"seq"`
	IdempotencyKey string            `json:"idempotencyKey"`
	TimeoutMs      uint32            `json:"timeoutMs"`
}

type decodedError struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

// TestDecodeVectors decodes every golden frame of both codecs, written in
// each input form, and checks each envelope against index.json.
func TestDecodeVectors(t *testing.T) {
	ctx := testCtx(t)
	for _, v := range readVectors(t) {
		frame, err := os.ReadFile(filepath.Join(vectorsDir, v.File))
		if err != nil {
			t.Fatal(err)
		}
		inputs := map[string][]string{
			"hex":           {hex.EncodeToString(frame)},
			"hex spaced":    {spaced(hex.EncodeToString(frame))},
			"base64":        {base64.StdEncoding.EncodeToString(frame)},
			"base64url raw": {base64.RawURLEncoding.EncodeToString(frame)},
			"stdin raw":     {"--input", "raw"},
			"stdin base64":  {"-"},
		}
		if v.Codec == "protows.v1.json" {
			inputs["text"] = []string{string(frame)}
		}
		for name, args := range inputs {
			stdin := ""
			switch name {
			case "stdin raw":
				stdin = string(frame)
			case "stdin base64":
				stdin = base64.StdEncoding.EncodeToString(frame) + "\n"
			}
			r := runCLI(ctx, t, stdin, nil, append([]string{"decode"}, args...)...)
			if r.status != exitOK || r.stderr != "" {
				t.Errorf("%s %s (%s): status %d, stderr %q", v.Codec, v.Name, name, r.status, r.stderr)
				continue
			}
			checkDecoded(t, v, name, r.stdout)
		}
	}
}

// spaced writes hex in groups of four digits, as hex dumps do.
func spaced(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h[i:min(i+4, len(h))])
	}
	return b.String()
}

func checkDecoded(t *testing.T, v vectorFrame, input, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(v.Envelopes) {
		t.Errorf("%s %s (%s): %d lines, want %d envelopes", v.Codec, v.Name, input, len(lines), len(v.Envelopes))
		return
	}
	for i, raw := range v.Envelopes {
		var want protowsv1.Envelope
		if err := protojson.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		var got decodedEnvelope
		dec := json.NewDecoder(strings.NewReader(lines[i]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Errorf("%s %s (%s): line %q: %v", v.Codec, v.Name, input, lines[i], err)
			continue
		}
		wantKind := strings.ToLower(strings.TrimPrefix(want.GetKind().String(), "KIND_"))
		ok := got.ID == want.GetId() && got.Kind == wantKind && got.Method == want.GetMethod() &&
			got.MethodID == want.GetMethodId() && got.Seq == want.GetSeq() && len(got.Metadata) == len(want.GetMetadata()) &&
			got.IdempotencyKey == want.GetIdempotencyKey() && got.TimeoutMs == want.GetTimeoutMs()
		for k, val := range want.GetMetadata() {
			ok = ok && got.Metadata[k] == val
		}
		if e := want.GetError(); e != nil {
			ok = ok && got.Error != nil && got.Error.Code == protows.Code(e.GetCode()).String() && got.Error.Message == e.GetMessage() &&
				len(got.Error.Details) == len(e.GetDetails())
			// Details are printed as the protojson objects of their Anys,
			// in both codecs.
			for j, d := range e.GetDetails() {
				wantJSON, err := protojson.Marshal(d)
				if err != nil {
					t.Fatal(err)
				}
				var w, g bytes.Buffer
				_ = json.Compact(&w, wantJSON)
				if ok && json.Compact(&g, got.Error.Details[j]) == nil {
					ok = w.String() == g.String()
				}
			}
		} else {
			ok = ok && got.Error == nil
		}
		switch p := want.GetPayload(); {
		case len(p) == 0:
			ok = ok && got.Payload == nil && got.PayloadBase64 == nil
		case v.Codec == "protows.v1.json":
			// The JSON codec's payload is printed as it was sent.
			ok = ok && string(got.Payload) == string(p) && got.PayloadBase64 == nil
		default:
			// No descriptors: the Protobuf payload is shown as base64.
			ok = ok && bytes.Equal(got.PayloadBase64, p) && got.Payload == nil
		}
		if !ok {
			t.Errorf("%s %s (%s): envelope %d decoded to\n%s\nwant %s", v.Codec, v.Name, input, i, lines[i], raw)
		}
	}
}

// reflectionSet writes the descriptor set of the reflection service.
func reflectionSet(t *testing.T) string {
	return descriptorSet(t, reflectionv1.File_protows_reflection_v1_reflection_proto)
}

// TestDecodeTyped decodes the reflection vectors with descriptors: the
// request's method is named from its id and its payload typed; the reply's
// payload is typed by --method.
func TestDecodeTyped(t *testing.T) {
	set := reflectionSet(t)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(b)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"decode_request", []string{"decode", "--descriptor-set", set, read("reflection_request.proto.bin")}},
		{"decode_request_json", []string{"decode", "--descriptor-set", set, read("reflection_request.json")}},
		{"decode_reply", []string{"decode", "--descriptor-set", set, "--method", "/protows.reflection.v1.ReflectionService/FileContainingSymbol", read("reflection_reply.proto.bin")}},
		{"decode_reply_untyped", []string{"decode", read("reflection_reply.proto.bin")}},
		// The payload is not a ListServicesResponse: shown raw, with why.
		{"decode_reply_bad_payload", []string{"decode", "--descriptor-set", set, "--method", "protows.reflection.v1.ReflectionService.ListServices", badReply(t)}},
		{"decode_not_a_frame", []string{"decode", "0a05ffff"}},
		{"decode_not_hex_nor_base64", []string{"decode", "zz!"}},
		{"decode_bad_json", []string{"decode", `{"id":1,"kind":"nonsense"}`}},
		{"decode_empty", []string{"decode", "-"}},
		{"decode_forced_hex", []string{"decode", "--input", "hex", "CgIIBw=="}},
	}
	ctx := testCtx(t)
	for _, tt := range tests {
		r := runCLI(ctx, t, "", nil, tt.args...)
		golden(t, tt.name, "", tt.args, r)
	}
}

// TestDecodeReflectionReplyRoundTrip: the file descriptor in the decoded
// reply is the one encoded in the vector.
func TestDecodeReflectionReplyRoundTrip(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(vectorsDir, "reflection_reply.proto.bin"))
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(testCtx(t), t, "", nil, "decode", "--descriptor-set", reflectionSet(t),
		"--method", "/protows.reflection.v1.ReflectionService/FileContainingSymbol", base64.StdEncoding.EncodeToString(b))
	var line struct {
		Payload struct {
			FileDescriptorProtos [][]byte `json:"fileDescriptorProtos"`
		} `json:"payload"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &line); err != nil || len(line.Payload.FileDescriptorProtos) != 1 {
		t.Fatalf("%q: %v", r.stdout, err)
	}
	var fdp descriptorpb.FileDescriptorProto
	if err := proto.Unmarshal(line.Payload.FileDescriptorProtos[0], &fdp); err != nil {
		t.Fatal(err)
	}
	f, err := protodesc.NewFile(&fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Services().Len() != 1 || f.Services().Get(0).FullName() != "chat.v1.ChatService" {
		t.Errorf("decoded file %v", f)
	}
}

// badReply is a frame with a REPLY whose payload is truncated Protobuf.
func badReply(t *testing.T) string {
	t.Helper()
	frame, err := codec.MarshalFrame(codec.Proto(), &protowsv1.Envelope{
		Id: 4, Kind: protowsv1.Kind_KIND_REPLY, Payload: []byte{0x0a, 0x05, 'a', 'b'},
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(frame)
}

// FuzzDecode: whatever text is pasted, decode returns an error or JSON
// lines, and never panics. Seeds: the golden vectors, as hex and as they
// are.
func FuzzDecode(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(vectorsDir, "*.*"))
	if err != nil || len(paths) < 30 {
		f.Fatalf("seed vectors: %d, %v", len(paths), err)
	}
	for _, p := range paths {
		if filepath.Base(p) == "index.json" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(hex.EncodeToString(b))
		f.Add(string(b))
	}
	files, err := newFiles([]*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(reflectionv1.File_protows_reflection_v1_reflection_proto),
	})
	if err != nil {
		f.Fatal(err)
	}
	s := &fileSchema{files: files, all: dynamicpb.NewTypes(files)}
	md, err := findMethod(context.Background(), s, reflectionv1.ReflectionServiceFileContainingSymbolMethod)
	if err != nil {
		f.Fatal(err)
	}
	d := &decoder{schema: s, method: md}
	f.Fuzz(func(t *testing.T, text string) {
		frame, err := frameBytes([]byte(text), "auto")
		if err != nil {
			return
		}
		out, err := d.decode(frame, "auto")
		if err != nil {
			return
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			if !json.Valid([]byte(line)) {
				t.Fatalf("decode(%q) printed invalid JSON %q", text, line)
			}
		}
	})
}
