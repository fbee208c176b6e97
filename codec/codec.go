// Package codec encodes the protows wire protocol: envelopes into WebSocket
// frames and application messages into envelope payloads.
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
//	frame := c.AppendFrame(nil, [][]byte{elem})
//	envs, err := c.DecodeFrame(frame)
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

// Codec is one encoding of the wire protocol.
type Codec interface {
	// Name returns the WebSocket subprotocol that selects the codec.
	Name() string
	// Binary reports whether the codec's frames are binary WebSocket
	// messages (true) or text messages (false).
	Binary() bool
	// AppendPayload appends the encoding of m, as it goes into an
	// envelope's payload, to dst.
	AppendPayload(dst []byte, m proto.Message) ([]byte, error)
	// UnmarshalPayload decodes an envelope's payload into m. An empty
	// payload is the empty message.
	UnmarshalPayload(src []byte, m proto.Message) error
	// AppendEnvelope appends the encoding of e as one element of a frame to
	// dst. e.Payload must already be in this codec's encoding.
	AppendEnvelope(dst []byte, e *protowsv1.Envelope) ([]byte, error)
	// AppendFrame appends a frame made of the given encoded envelopes (from
	// AppendEnvelope) to dst. It panics when given no envelope.
	AppendFrame(dst []byte, encoded [][]byte) []byte
	// AppendFrameParts appends the frame AppendFrame would make of the
	// given envelopes, each held in parts (see Parts). It panics when given
	// no envelope.
	AppendFrameParts(dst []byte, elems []Parts) []byte
	// DecodeFrame decodes a frame into its envelopes, in order. Envelope
	// payloads stay in this codec's encoding and may alias src. It returns
	// an error, never a panic, for malformed input.
	DecodeFrame(src []byte) ([]*protowsv1.Envelope, error)
}

// MarshalFrame encodes envs as one frame of c: AppendEnvelope for each, then
// AppendFrame. It is the simple way to write a frame when no encoding is
// shared.
func MarshalFrame(c Codec, envs ...*protowsv1.Envelope) ([]byte, error) {
	if len(envs) == 0 {
		return nil, errors.New("codec: a frame needs at least one envelope")
	}
	if len(envs) > MaxEnvelopesPerFrame {
		return nil, fmt.Errorf("%w: %d", ErrTooManyEnvelopes, len(envs))
	}
	encoded := make([][]byte, len(envs))
	for i, e := range envs {
		b, err := c.AppendEnvelope(nil, e)
		if err != nil {
			return nil, err
		}
		encoded[i] = b
	}
	return c.AppendFrame(nil, encoded), nil
}
