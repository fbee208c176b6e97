// Package codec encodes the protows wire protocol: envelopes into WebSocket
// frames and application messages into envelope payloads. It is the one
// package that knows the bytes on the wire.
//
// Two codecs exist, each named by the WebSocket subprotocol that selects it:
//
//   - Proto ("protows.v1.proto"): binary frames, Protobuf encoding. The
//     default: compact and fast.
//   - JSON ("protows.v1.json"): text frames, one JSON value per frame, with
//     payloads inlined as protojson. For humans reading traffic in browser
//     devtools.
//
// A frame carries one or more envelopes (batching). Writers encode each
// envelope once with AppendEnvelope and join encoded envelopes into frames
// with AppendFrame, so one encoding of a broadcast serves every receiver:
//
//	c := codec.Proto()
//	payload, _ := c.AppendPayload(nil, msg)
//	elem, _ := c.AppendEnvelope(nil, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: payload})
//	frame := codec.AppendFrame(c, nil, elem)
//	envs, err := c.DecodeFrame(frame)
//
// Writers that keep a queue of envelopes hold them as Parts and call the
// codec's AppendFrameParts, which AppendFrame and MarshalFrame are built on.
// AppendStreamMessage writes the element of one stream message around a
// payload it shares rather than copies, as a room broadcast needs.
//
// AppendMessageEnvelope writes an envelope and its message in one pass, the
// way a server writes each REPLY.
//
// The Protobuf codec encodes and decodes messages with the methods of
// vtprotobuf's protoc-gen-go-vtproto (SizeVT, MarshalToSizedBufferVT,
// UnmarshalVT) when a type has them and they give the same bytes (but for
// the order of map entries) and results as proto.Marshal and
// proto.Unmarshal; see Proto. Generating them is all it takes
// (docs/CODEGEN.md); WithoutVTProto turns them off, and
// WithDeterministicPayloads keeps map entries in key order.
//
// A Registry maps subprotocols to codecs for the handshake.
//
// Codecs are stateless and safe for concurrent use.
package codec

import (
	"errors"
	"fmt"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
)

// The subprotocols of version 1 of the wire protocol.
const (
	// ProtoName is the subprotocol of the Protobuf codec.
	ProtoName = "protows.v1.proto"
	// JSONName is the subprotocol of the JSON codec.
	JSONName = "protows.v1.json"
)

// MaxEnvelopesPerFrame is the most envelopes one frame may carry. DecodeFrame
// rejects a frame with more, before decoding any of them, so that a small
// frame of many empty envelopes cannot make a receiver allocate without bound.
// Writers must not batch more than this into one frame.
const MaxEnvelopesPerFrame = 1024

// ErrTooManyEnvelopes is returned (wrapped) by DecodeFrame for a frame that
// holds more than MaxEnvelopesPerFrame envelopes.
var ErrTooManyEnvelopes = errors.New("codec: too many envelopes in one frame")

// Codec is one encoding of the wire protocol: what every codec must do.
//
// A codec may also implement StreamMessageCodec, a faster way to write the
// element of a stream message; AppendStreamMessage uses it when it is there
// and AppendEnvelope when not. A codec that wraps another by embedding a
// Codec hides the wrapped codec's optional methods, and so loses the fast
// path unless it forwards them (see StreamMessageCodec).
type Codec interface {
	// Name returns the WebSocket subprotocol that selects the codec.
	Name() string
	// Binary reports whether the codec's frames are binary WebSocket
	// messages (true) or text messages (false). It is part of every codec,
	// not an optional method with a default, because a wrapper that lost it
	// would write frames of the wrong kind for its subprotocol.
	Binary() bool
	// AppendPayload appends the encoding of m, as it goes into an
	// envelope's payload, to dst.
	AppendPayload(dst []byte, m proto.Message) ([]byte, error)
	// UnmarshalPayload decodes an envelope's payload into m. An empty
	// payload is the empty message.
	UnmarshalPayload(src []byte, m proto.Message) error
	// AppendEnvelope appends the encoding of e as one element of a frame to
	// dst. e.Payload must already be in this codec's encoding, and so must
	// the value of each of e.Error.Details: the message's Protobuf bytes
	// for a binary codec, the protojson object of the whole Any ("@type"
	// included) for the JSON codec.
	AppendEnvelope(dst []byte, e *protowsv1.Envelope) ([]byte, error)
	// AppendFrameParts appends a frame made of the given envelopes, each
	// encoded (by AppendEnvelope or AppendStreamMessage) and held in parts
	// (see Parts), to dst. How the parts are cut does not change the frame.
	// It panics when given no envelope.
	AppendFrameParts(dst []byte, elems []Parts) []byte
	// DecodeFrame decodes a frame into its envelopes, in order. Envelope
	// payloads and error details stay in this codec's encoding (see
	// AppendEnvelope) and may alias src; no detail's type is resolved. It
	// returns an error, never a panic, for malformed input.
	DecodeFrame(src []byte) ([]*protowsv1.Envelope, error)
}

// AppendFrame appends the frame of c made of the given encoded envelopes
// (from AppendEnvelope) to dst. It panics when given no envelope.
//
// It allocates the Parts it hands to c.AppendFrameParts; a writer that
// frames envelopes over and over keeps its queue as Parts and calls
// AppendFrameParts itself.
func AppendFrame(c Codec, dst []byte, encoded ...[]byte) []byte {
	elems := make([]Parts, len(encoded))
	for i, b := range encoded {
		elems[i].Body = b
	}
	return c.AppendFrameParts(dst, elems)
}

// MarshalFrame encodes envs as one frame of c: AppendEnvelope for each, then
// AppendFrameParts. It is the simple way to write a frame when no encoding
// is shared.
func MarshalFrame(c Codec, envs ...*protowsv1.Envelope) ([]byte, error) {
	if len(envs) == 0 {
		return nil, errors.New("codec: a frame needs at least one envelope")
	}
	if len(envs) > MaxEnvelopesPerFrame {
		return nil, fmt.Errorf("%w: %d", ErrTooManyEnvelopes, len(envs))
	}
	elems := make([]Parts, len(envs))
	for i, e := range envs {
		b, err := c.AppendEnvelope(nil, e)
		if err != nil {
			return nil, err
		}
		elems[i].Body = b
	}
	return c.AppendFrameParts(nil, elems), nil
}
