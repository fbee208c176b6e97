package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// JSON returns the JSON codec ("protows.v1.json", text frames), made for
// people reading traffic in browser devtools.
//
// A frame holding one envelope is a JSON object; a frame holding several is a
// JSON array of them. Payloads are protojson, inlined as JSON values (never
// base64), without insignificant white space; kinds and codes are lower snake
// case names; methods are spelled out. Unknown object keys are ignored, for
// forward compatibility, as the Protobuf codec ignores unknown fields.
func JSON() Codec {
	return &jsonCodec{}
}

var (
	_ StreamMessageCodec   = (*jsonCodec)(nil)
	_ MessageEnvelopeCodec = (*jsonCodec)(nil)
)

type jsonCodec struct{}

var (
	protojsonMarshal = protojson.MarshalOptions{}
	// DiscardUnknown mirrors the Protobuf codec, where a field added by a
	// newer peer is skipped rather than fatal.
	protojsonUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

func (*jsonCodec) Name() string { return JSONName }

func (*jsonCodec) Binary() bool { return false }

func (*jsonCodec) AppendPayload(dst []byte, m proto.Message) ([]byte, error) {
	return appendJSONPayload(dst, m)
}

// appendJSONPayload appends the compact protojson of m to dst.
func appendJSONPayload(dst []byte, m proto.Message) ([]byte, error) {
	start := len(dst)
	out, err := protojsonMarshal.MarshalAppend(dst, m)
	if err != nil {
		return dst, err
	}
	// protojson adds random white space on purpose, to keep people from
	// depending on its bytes. Compacting makes the output stable, so that
	// golden vectors hold across builds and across languages. It runs in
	// place: it never writes past what it has read.
	return appendCompact(out[:start], out[start:]), nil
}

func (*jsonCodec) UnmarshalPayload(src []byte, m proto.Message) error {
	if len(src) == 0 {
		proto.Reset(m)
		return nil
	}
	return protojsonUnmarshal.Unmarshal(src, m)
}

// jsonEnvelope is the JSON form of an Envelope; the field order here is the
// order on the wire.
type jsonEnvelope struct {
	ID       uint32            `json:"id,omitempty"`
	Kind     string            `json:"kind,omitempty"`
	Method   string            `json:"method,omitempty"`
	MethodID uint32            `json:"methodId,omitempty"`
	Payload  json.RawMessage   `json:"payload,omitempty"`
	Error    *jsonError        `json:"error,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Seq is a JSON number: servers keep it below 2^53, where JavaScript
	// numbers are exact.
	Seq uint64 `json:"seq,omitempty"`
	// Credit is flow control's window or grant (REQUEST, CREDIT).
	Credit         uint32 `json:"credit,omitempty"`
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	TimeoutMs      uint32 `json:"timeoutMs,omitempty"`
	// Resume is written whenever the envelope has one, even empty: its
	// presence is what tells a server that the client understands
	// STREAM_POSITION.
	Resume   *jsonResume   `json:"resume,omitempty"`
	Position *jsonPosition `json:"position,omitempty"`
}

type jsonResume struct {
	Epoch   string `json:"epoch,omitempty"`
	Offset  uint64 `json:"offset,omitempty"`
	History uint32 `json:"history,omitempty"`
}

type jsonPosition struct {
	Epoch    string `json:"epoch,omitempty"`
	Offset   uint64 `json:"offset,omitempty"`
	Recovery string `json:"recovery,omitempty"`
	Latest   uint64 `json:"latest,omitempty"`
}

type jsonError struct {
	Code    protows.Code `json:"code,omitempty"`
	Message string       `json:"message,omitempty"`
	// Details are the protojson forms of google.protobuf.Any, held in
	// each Any's value (see AppendEnvelope).
	Details []json.RawMessage `json:"details,omitempty"`
}

func (*jsonCodec) AppendEnvelope(dst []byte, e *protowsv1.Envelope) ([]byte, error) {
	je := jsonEnvelope{
		ID:       e.GetId(),
		Method:   e.GetMethod(),
		MethodID: e.GetMethodId(),
		Payload:  e.GetPayload(),
		Metadata: e.GetMetadata(),
		Seq:      e.GetSeq(),
		Credit:   e.GetCredit(),

		IdempotencyKey: e.GetIdempotencyKey(),
		TimeoutMs:      e.GetTimeoutMs(),
	}
	if k := e.GetKind(); k != protowsv1.Kind_KIND_UNSPECIFIED {
		name, ok := kindNames[k]
		if !ok {
			return dst, fmt.Errorf("codec: kind %d has no JSON name", k)
		}
		je.Kind = name
	}
	if w := e.GetError(); w != nil {
		je.Error = &jsonError{Code: protows.Code(w.GetCode()), Message: w.GetMessage()}
		for i, d := range w.GetDetails() {
			// A detail is held as a payload is, in the codec's encoding:
			// its value is the JSON object, "@type" included, that goes
			// on the wire.
			if v := bytes.TrimLeft(d.GetValue(), " \t\r\n"); len(v) == 0 || v[0] != '{' {
				return dst, fmt.Errorf("codec: error detail %d is not a JSON object", i)
			}
			je.Error.Details = append(je.Error.Details, d.GetValue())
		}
	}
	if r := e.GetResume(); r != nil {
		je.Resume = &jsonResume{Epoch: r.GetEpoch(), Offset: r.GetOffset(), History: r.GetHistory()}
	}
	if p := e.GetPosition(); p != nil {
		je.Position = &jsonPosition{Epoch: p.GetEpoch(), Offset: p.GetOffset(), Latest: p.GetLatest()}
		if rec := p.GetRecovery(); rec != protowsv1.Recovery_RECOVERY_UNSPECIFIED {
			name, ok := recoveryNames[rec]
			if !ok {
				name = recoveryUnknownName
			}
			je.Position.Recovery = name
		}
	}
	start := len(dst)
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	// Browsers' JSON.stringify does not escape <, > and &; neither do we, so
	// both write the same bytes.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&je); err != nil {
		return dst, fmt.Errorf("codec: encode envelope: %w", err)
	}
	out := buf.Bytes()
	out = out[:len(out)-1] // Encode ends with a newline
	return append(out[:start], unescapeLineSeparators(out[start:])...), nil
}

// unescapeLineSeparators turns the escapes \u2028 and \u2029 in b, valid
// JSON, back into the characters U+2028 and U+2029, in place. encoding/json
// escapes them in every string, whatever SetEscapeHTML says, while
// JSON.stringify (and protojson, in payloads) writes them as they are; the
// protocol writes them as they are everywhere (PROTOCOL.md section 5), so
// that Go and JavaScript write the same bytes. Other escapes are copied
// whole, so that the escaped backslash of \\u2028 (the text "\u2028") is
// not taken for the start of one.
func unescapeLineSeparators(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u202`)) {
		return b
	}
	out := b[:0]
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c != '\\' || i+1 == len(b):
			out = append(out, c)
			i++
		case i+5 < len(b) && string(b[i+1:i+5]) == "u202" && (b[i+5] == '8' || b[i+5] == '9'):
			out = append(out, 0xe2, 0x80, 0xa8+b[i+5]-'8') // UTF-8 of U+2028, U+2029
			i += 6
		default:
			out = append(out, c, b[i+1])
			i += 2
		}
	}
	return out
}

// AppendFrameParts writes one element as it is and several as a JSON array.
func (*jsonCodec) AppendFrameParts(dst []byte, elems []Parts) []byte {
	switch len(elems) {
	case 0:
		panic("codec: AppendFrameParts with no envelope")
	case 1:
		return elems[0].AppendTo(dst)
	}
	dst = append(dst, '[')
	for i, p := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = p.AppendTo(dst)
	}
	return append(dst, ']')
}

// AppendStreamMessage writes what AppendEnvelope would, but for the payload
// bytes, by hand, with the keys of jsonEnvelope in its order: it runs once
// per member of a room broadcast, where encoding/json would cost
// allocations and reflection. The payload, compact protojson from
// AppendPayload, is what AppendEnvelope would inline.
func (*jsonCodec) AppendStreamMessage(dst []byte, id uint32, payload []byte, seq uint64) ([]byte, int, error) {
	dst = append(dst, '{')
	if id != 0 {
		dst = append(dst, `"id":`...)
		dst = strconv.AppendUint(dst, uint64(id), 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"kind":"stream_message"`...)
	if len(payload) > 0 {
		dst = append(dst, `,"payload":`...)
	}
	at := len(dst)
	if seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	return append(dst, '}'), at, nil
}

// DecodeFrame is a single hand-written pass (jsonscan.go) that accepts and
// rejects exactly what encoding/json did.
func (*jsonCodec) DecodeFrame(src []byte) ([]*protowsv1.Envelope, error) {
	return decodeJSONFrame(src)
}

// kindNames and kindValues map kinds to their JSON names: the enum value
// name without its KIND_ prefix, in lower case ("stream_message").
var kindNames, kindValues = func() (map[protowsv1.Kind]string, map[string]protowsv1.Kind) {
	names := make(map[protowsv1.Kind]string)
	values := make(map[string]protowsv1.Kind)
	for n, full := range protowsv1.Kind_name {
		k := protowsv1.Kind(n)
		if k == protowsv1.Kind_KIND_UNSPECIFIED {
			continue
		}
		name := strings.ToLower(strings.TrimPrefix(full, "KIND_"))
		names[k] = name
		values[name] = k
	}
	return names, values
}()

// recoveryUnknown is what the JSON codec reads a recovery name it does not
// know as: an outcome newer than this codec (docs/PROTOCOL.md, section 5).
// It is no outcome's number, so that a client reports an outcome it does
// not know, an unrecoverable one, as it does an unknown number read by the
// Protobuf codec; protojson's DiscardUnknown would leave the field at
// RECOVERY_UNSPECIFIED, a fresh start, and hide the loss. It, and any
// number without a name, is written as recoveryUnknownName.
const (
	recoveryUnknown     = protowsv1.Recovery(-1)
	recoveryUnknownName = "unknown"
)

// recoveryNames and recoveryValues map recovery outcomes to their JSON
// names: the enum value name without its RECOVERY_ prefix, in lower case
// ("epoch_changed").
var recoveryNames, recoveryValues = func() (map[protowsv1.Recovery]string, map[string]protowsv1.Recovery) {
	names := make(map[protowsv1.Recovery]string)
	values := make(map[string]protowsv1.Recovery)
	for n, full := range protowsv1.Recovery_name {
		r := protowsv1.Recovery(n)
		if r == protowsv1.Recovery_RECOVERY_UNSPECIFIED {
			continue
		}
		name := strings.ToLower(strings.TrimPrefix(full, "RECOVERY_"))
		names[r] = name
		values[name] = r
	}
	return names, values
}()

// appendCompact appends src, valid JSON, without white space outside
// strings.
func appendCompact(dst, src []byte) []byte {
	inString, escaped := false, false
	for _, c := range src {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
