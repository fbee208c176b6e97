package codec

import (
	"fmt"
	"slices"
	"strconv"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MessageEnvelopeCodec is a Codec that writes the element of an envelope
// together with the encoding of its message, in one buffer and one pass:
// the fast path of AppendMessageEnvelope, which the server takes for the
// REPLY of every unary call. Both built-in codecs implement it.
//
// A codec that wraps another by embedding a Codec hides this method; one
// that writes the same envelopes keeps the fast path by forwarding it (see
// StreamMessageCodec).
type MessageEnvelopeCodec interface {
	Codec
	// AppendMessageEnvelope appends to dst the element that AppendEnvelope
	// writes for Envelope{Id: id, Kind: kind, Payload: p}, where p is what
	// AppendPayload writes for m, byte for byte (but for what the codec
	// leaves unspecified, such as the order of map entries in Protobuf),
	// without encoding m into a buffer of its own first. When m does not
	// encode it returns dst as it was and AppendPayload's error.
	AppendMessageEnvelope(dst []byte, id uint32, kind protowsv1.Kind, m proto.Message) ([]byte, error)
}

// AppendMessageEnvelope appends to dst the element of the envelope with the
// given call id and kind whose payload is m in c's encoding: c's own
// AppendMessageEnvelope when c is a MessageEnvelopeCodec, AppendPayload then
// AppendEnvelope otherwise, with the same bytes either way. On an error dst
// is returned as it was; an error of encoding m is AppendPayload's, as it
// is, and one of encoding the envelope is wrapped in an *EnvelopeError, so
// that a caller tells a message that does not encode from a broken codec.
func AppendMessageEnvelope(c Codec, dst []byte, id uint32, kind protowsv1.Kind, m proto.Message) ([]byte, error) {
	if mc, ok := c.(MessageEnvelopeCodec); ok {
		return mc.AppendMessageEnvelope(dst, id, kind, m)
	}
	payload, err := c.AppendPayload(nil, m)
	if err != nil {
		return dst, err
	}
	out, err := c.AppendEnvelope(dst, &protowsv1.Envelope{Id: id, Kind: kind, Payload: payload})
	if err != nil {
		return dst, &EnvelopeError{Err: err}
	}
	return out, nil
}

// EnvelopeError is returned by AppendMessageEnvelope when the message
// encoded but the envelope around it did not.
type EnvelopeError struct {
	Err error
}

func (e *EnvelopeError) Error() string { return "codec: encode envelope: " + e.Err.Error() }

// Unwrap returns the codec's error.
func (e *EnvelopeError) Unwrap() error { return e.Err }

// AppendMessageEnvelope writes what AppendEnvelope would, by hand, with the
// message marshaled straight into the element: AppendPayload and then
// AppendEnvelope would marshal it into a buffer of its own, size the
// envelope around it, and copy it.
func (c *protoCodec) AppendMessageEnvelope(dst []byte, id uint32, kind protowsv1.Kind, m proto.Message) ([]byte, error) {
	n, vt := c.payloadSize(m)
	// Deterministic Protobuf writes fields in number order and omits zero
	// values (an empty payload, too); so does this. Every tag takes one
	// byte: the field numbers are below 16.
	size := 0
	if id != 0 {
		size += 1 + protowire.SizeVarint(uint64(id))
	}
	if kind != protowsv1.Kind_KIND_UNSPECIFIED {
		size += 1 + protowire.SizeVarint(uint64(kind))
	}
	if n > 0 {
		size += 1 + protowire.SizeBytes(n)
	}
	start := len(dst)
	// One allocation at most, of the element's exact size.
	dst = slices.Grow(dst, 1+protowire.SizeVarint(uint64(size))+size)
	dst = protowire.AppendTag(dst, envelopesField, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	if id != 0 {
		dst = protowire.AppendTag(dst, envIDField, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(id))
	}
	if kind != protowsv1.Kind_KIND_UNSPECIFIED {
		dst = protowire.AppendTag(dst, envKindField, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(kind))
	}
	if n == 0 {
		return dst, nil
	}
	dst = protowire.AppendTag(dst, envPayloadField, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	at := len(dst)
	out, err := c.appendSizedPayload(dst, m, n, vt)
	if err != nil {
		return dst[:start], err
	}
	if len(out)-at != n {
		// Only a message changed while it was being encoded gets here.
		return dst[:start], fmt.Errorf("codec: message of %d bytes encoded to %d", n, len(out)-at)
	}
	return out, nil
}

// AppendMessageEnvelope writes what AppendEnvelope would, by hand, with the
// keys of jsonEnvelope in its order, and the compact protojson of m in
// place: AppendEnvelope would have encoding/json validate and copy the
// payload once more.
func (*jsonCodec) AppendMessageEnvelope(dst []byte, id uint32, kind protowsv1.Kind, m proto.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, '{')
	if id != 0 {
		dst = append(dst, `"id":`...)
		dst = strconv.AppendUint(dst, uint64(id), 10)
	}
	if kind != protowsv1.Kind_KIND_UNSPECIFIED {
		name, ok := kindNames[kind]
		if !ok {
			return dst[:start], &EnvelopeError{Err: fmt.Errorf("kind %d has no JSON name", kind)}
		}
		if len(dst) > start+1 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"kind":"`...)
		dst = append(dst, name...)
		dst = append(dst, '"')
	}
	if len(dst) > start+1 {
		dst = append(dst, ',')
	}
	dst = append(dst, `"payload":`...)
	out, err := appendJSONPayload(dst, m)
	if err != nil {
		return dst[:start], err
	}
	// protojson writes no escaped U+2028 or U+2029 (AppendEnvelope's
	// unescapeLineSeparators has nothing to do) and never an empty
	// message (the payload key is always there).
	return append(out, '}'), nil
}
