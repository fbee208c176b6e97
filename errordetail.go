package protows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ErrorDetail is a typed detail of an Error: a Protobuf message that a
// program can act on (a retry delay, the field that was invalid), as in
// gRPC's google.rpc.Status and Connect's error details. A handler adds
// details with Error.AddDetail; a client reads them with Error.Details and
// ErrorDetail.Value.
//
// A detail received in the JSON codec whose type this program does not
// know is kept as it came: Type names it, JSON returns it, and Value and
// Bytes cannot decode it.
type ErrorDetail struct {
	any  *anypb.Any // the Protobuf form; nil for a JSON detail of an unknown type
	typ  string     // the message's full name
	json []byte     // the JSON form as received, when any is nil
}

// typeURLPrefix is the prefix of the type URLs that protows writes, as
// anypb and protojson do.
const typeURLPrefix = "type.googleapis.com/"

// NewErrorDetail returns a detail holding m. An *anypb.Any is used as it
// is (its type need not be known to this program).
func NewErrorDetail(m proto.Message) (*ErrorDetail, error) {
	if a, ok := m.(*anypb.Any); ok {
		return &ErrorDetail{any: a, typ: typeName(a.GetTypeUrl())}, nil
	}
	a := &anypb.Any{}
	// Deterministic, so that equal details encode to equal bytes.
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, fmt.Errorf("protows: error detail: %w", err)
	}
	return &ErrorDetail{any: a, typ: typeName(a.GetTypeUrl())}, nil
}

// typeName returns the message name of a type URL: what follows its last
// slash.
func typeName(url string) string {
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		return url[i+1:]
	}
	return url
}

// Type returns the full name of the detail's message type, such as
// "google.rpc.RetryInfo".
func (d *ErrorDetail) Type() string { return d.typ }

// Bytes returns the Protobuf encoding of the detail's message, or nil for
// a JSON detail of a type this program does not know. The slice must not be
// modified.
func (d *ErrorDetail) Bytes() []byte {
	if d.any == nil {
		return nil
	}
	return d.any.GetValue()
}

// Value decodes the detail into a new message of its type, which must be
// known to this program (linked in, so in protoregistry.GlobalTypes).
func (d *ErrorDetail) Value() (proto.Message, error) {
	if d.any == nil {
		return nil, fmt.Errorf("protows: error detail of unknown type %q", d.typ)
	}
	m, err := d.any.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("protows: error detail of type %q: %w", d.typ, err)
	}
	return m, nil
}

// MarshalJSON implements json.Marshaler with the protojson form of a
// google.protobuf.Any, compact: an object with "@type" and the message's
// fields, such as {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"QUOTA"}.
// The type must be known to this program, unless the detail was received in
// JSON, whose form is returned as it came.
func (d *ErrorDetail) MarshalJSON() ([]byte, error) {
	if d.any == nil {
		return d.json, nil
	}
	b, err := protojson.Marshal(d.any)
	if err != nil {
		return nil, fmt.Errorf("protows: error detail of type %q: %w", d.typ, err)
	}
	var out bytes.Buffer
	// protojson adds random white space on purpose; compact output is
	// stable, which the golden vectors need.
	if err := json.Compact(&out, b); err != nil {
		return nil, fmt.Errorf("protows: error detail of type %q: %w", d.typ, err)
	}
	return out.Bytes(), nil
}

// UnmarshalJSON implements json.Unmarshaler for the form MarshalJSON
// writes. It fails only when b is not a JSON object with a string "@type":
// a detail whose type this program does not know, or whose fields do not
// match its type, is kept as it came (see ErrorDetail).
func (d *ErrorDetail) UnmarshalJSON(b []byte) error {
	// The key is "@type" exactly, as protojson reads it (encoding/json
	// would match it in any case).
	var obj map[string]json.RawMessage
	var typeURL string
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil || json.Unmarshal(obj["@type"], &typeURL) != nil || typeURL == "" {
		return errors.New("protows: an error detail must be a JSON object with a non-empty \"@type\"")
	}
	a := &anypb.Any{}
	// Unknown fields are ignored, as they are in payloads.
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, a); err == nil && a.GetTypeUrl() != "" {
		*d = ErrorDetail{any: a, typ: typeName(a.GetTypeUrl())}
		return nil
	}
	*d = ErrorDetail{typ: typeName(typeURL), json: bytes.Clone(b)}
	return nil
}

// Details returns the error's details, in the order they were added or
// received.
func (e *Error) Details() []*ErrorDetail {
	return e.details
}

// AddDetail appends a detail to the error. It is not safe for concurrent
// use: add details before the error is returned.
func (e *Error) AddDetail(d *ErrorDetail) {
	e.details = append(e.details, d)
}
