package codec

import (
	"errors"
	"fmt"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Proto returns the Protobuf codec ("protows.v1.proto", binary frames).
//
// A frame is a protows.v1.Frame: each envelope is field 1, length-delimited,
// so frames are joined by concatenation. Envelopes are deterministic
// Protobuf (their metadata in key order), so equal envelopes always encode
// to equal bytes.
//
// Payloads are Protobuf; the order of the entries of map fields in them is
// unspecified, as Protobuf leaves it (WithDeterministicPayloads fixes it).
// Message types with the fast marshalers of protoc-gen-go-vtproto
// (github.com/planetscale/vtprotobuf; its marshal, unmarshal and size
// features) are encoded and decoded with them, detected by their methods
// (SizeVT, MarshalToSizedBufferVT, UnmarshalVT), when they produce what
// the general path produces, but for the order of map entries, and accept
// the same input: proto3 types without oneofs or recursion, fields
// declared in number order. The codec still checks their strings for
// UTF-8, which vtprotobuf does not, and a message to encode for -0 in its
// floats, which vtprotobuf drops (such a message goes to proto.Marshal);
// input vtprotobuf refuses is decoded again by proto.Unmarshal, so that
// what is accepted and the errors are the same either way
// (docs/CODEGEN.md). Other types take proto.Marshal (deterministic: map
// entries in key order) and proto.Unmarshal. WithoutVTProto turns the
// vtprotobuf path off.
func Proto(opts ...ProtoOption) Codec {
	var o protoOptions
	for _, opt := range opts {
		opt.applyProto(&o)
	}
	return protoCodecs[o]
}

// protoCodecs are the Protobuf codecs, one for each set of options. Every
// Proto call returns one of them, so that what a codec learns of a message
// type (vtTypes: whether it may take vtprotobuf's methods) is learned once
// per process, not once per codec value: the hub, for one, calls Proto
// where it needs the Protobuf encoding of a broadcast. What they hold is
// facts about Go types, the same whoever asks first.
var protoCodecs = func() map[protoOptions]*protoCodec {
	cs := make(map[protoOptions]*protoCodec)
	for _, noVT := range []bool{false, true} {
		for _, det := range []bool{false, true} {
			o := protoOptions{noVT: noVT, deterministic: det}
			cs[o] = &protoCodec{protoOptions: o}
		}
	}
	return cs
}()

// ProtoOption is an option of the Protobuf codec (Proto).
type ProtoOption interface {
	applyProto(*protoOptions)
}

// protoOptions are the settings of a Protobuf codec.
type protoOptions struct {
	noVT          bool // WithoutVTProto
	deterministic bool // WithDeterministicPayloads
}

type protoOptionFunc func(*protoOptions)

func (f protoOptionFunc) applyProto(o *protoOptions) { f(o) }

// WithDeterministicPayloads makes the Protobuf codec write every payload
// as deterministic Protobuf, map entries in key order, so that equal
// messages always encode to equal bytes: what a process that hashes or
// compares encodings needs (protows's idempotency fingerprints use it).
// vtprotobuf's methods then encode only the types without a map field at
// any depth, since they write map entries in random order; they still
// decode every type they may.
func WithDeterministicPayloads() ProtoOption {
	return protoOptionFunc(func(o *protoOptions) { o.deterministic = true })
}

// WithoutVTProto makes the Protobuf codec ignore vtprotobuf's methods:
// every payload is encoded by proto.Marshal (map entries in key order) and
// decoded by proto.Unmarshal, as for types without the methods. The bytes
// on the wire are valid either way; it is there to measure the fast path
// against the general one in one binary, or to rule it out.
func WithoutVTProto() ProtoOption {
	return protoOptionFunc(func(o *protoOptions) { o.noVT = true })
}

var (
	_ StreamMessageCodec   = (*protoCodec)(nil)
	_ MessageEnvelopeCodec = (*protoCodec)(nil)
)

// protoCodec has pointer receivers, as jsonCodec has: a value of a
// zero-size type in an interface has its methods called through generated
// wrappers that copy arguments and results, which cost a broadcast, calling
// AppendStreamMessage once per member, about 5% of its encoding work.
type protoCodec struct {
	protoOptions
	vt vtTypes // the message types that take vtprotobuf's methods
}

var (
	protoMarshal   = proto.MarshalOptions{Deterministic: true}
	protoUnmarshal = proto.UnmarshalOptions{}
	protoMerge     = proto.UnmarshalOptions{Merge: true}
)

func (*protoCodec) Name() string { return ProtoName }

func (*protoCodec) Binary() bool { return true }

func (c *protoCodec) AppendPayload(dst []byte, m proto.Message) ([]byte, error) {
	if n, ok := c.vtSize(m); ok {
		return c.vt.vtAppend(dst, m, n)
	}
	return protoMarshal.MarshalAppend(dst, m)
}

// vtSize returns m's size and true when c encodes m on the vtprotobuf
// path, for vtAppend to follow.
func (c *protoCodec) vtSize(m proto.Message) (int, bool) {
	if c.noVT {
		return 0, false
	}
	return c.vt.vtSize(m, c.deterministic)
}

// payloadSize returns the size of m's encoding, and whether it takes the
// vtprotobuf path, for appendSizedPayload, which must follow it with m
// unchanged meanwhile.
func (c *protoCodec) payloadSize(m proto.Message) (int, bool) {
	if n, ok := c.vtSize(m); ok {
		return n, true
	}
	return protoMarshal.Size(m), false
}

// appendSizedPayload appends m's encoding, whose size n payloadSize just
// computed, to dst.
func (c *protoCodec) appendSizedPayload(dst []byte, m proto.Message, n int, vt bool) ([]byte, error) {
	if vt {
		return c.vt.vtAppend(dst, m, n)
	}
	opts := protoMarshal
	opts.UseCachedSize = true
	return opts.MarshalAppend(dst, m)
}

func (c *protoCodec) UnmarshalPayload(src []byte, m proto.Message) error {
	if c.noVT {
		return protoUnmarshal.Unmarshal(src, m)
	}
	if ok, err := c.vt.vtUnmarshal(src, m); ok {
		return err
	}
	return protoUnmarshal.Unmarshal(src, m)
}

func (*protoCodec) AppendEnvelope(dst []byte, e *protowsv1.Envelope) ([]byte, error) {
	opts := protoMarshal
	size := opts.Size(e)
	dst = protowire.AppendTag(dst, envelopesField, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	// The size was computed just above, by this goroutine.
	opts.UseCachedSize = true
	return opts.MarshalAppend(dst, e)
}

// AppendFrameParts joins the elements: a Frame is its envelope fields, one
// after the other.
func (*protoCodec) AppendFrameParts(dst []byte, elems []Parts) []byte {
	if len(elems) == 0 {
		panic("codec: AppendFrameParts with no envelope")
	}
	for _, p := range elems {
		dst = p.AppendTo(dst)
	}
	return dst
}

// Field numbers of protows.v1.Frame and protows.v1.Envelope.
const (
	envelopesField  protowire.Number = 1 // Frame.envelopes
	envIDField      protowire.Number = 1 // Envelope.id
	envKindField    protowire.Number = 2 // Envelope.kind
	envPayloadField protowire.Number = 5 // Envelope.payload
	envSeqField     protowire.Number = 8 // Envelope.seq
)

// AppendStreamMessage writes what AppendEnvelope would, but for the payload
// bytes, by hand: it runs once per member of a room broadcast, where a
// proto.Marshal of an Envelope each would cost an allocation and reflection.
func (*protoCodec) AppendStreamMessage(dst []byte, id uint32, payload []byte, seq uint64) ([]byte, int, error) {
	// Deterministic Protobuf writes fields in number order and omits zero
	// values; so does this. Every tag takes one byte: the field numbers
	// are below 16.
	size := 1 + protowire.SizeVarint(uint64(protowsv1.Kind_KIND_STREAM_MESSAGE))
	if id != 0 {
		size += 1 + protowire.SizeVarint(uint64(id))
	}
	if len(payload) > 0 {
		size += 1 + protowire.SizeBytes(len(payload))
	}
	if seq != 0 {
		size += 1 + protowire.SizeVarint(seq)
	}
	dst = protowire.AppendTag(dst, envelopesField, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	if id != 0 {
		dst = protowire.AppendTag(dst, envIDField, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(id))
	}
	dst = protowire.AppendTag(dst, envKindField, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(protowsv1.Kind_KIND_STREAM_MESSAGE))
	if len(payload) > 0 {
		dst = protowire.AppendTag(dst, envPayloadField, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(len(payload)))
	}
	at := len(dst)
	if seq != 0 {
		dst = protowire.AppendTag(dst, envSeqField, protowire.VarintType)
		dst = protowire.AppendVarint(dst, seq)
	}
	return dst, at, nil
}

func (*protoCodec) DecodeFrame(src []byte) ([]*protowsv1.Envelope, error) {
	// Walk the Frame by hand rather than proto.Unmarshal it, so that the
	// envelope limit holds before anything is allocated for the excess.
	var envs []*protowsv1.Envelope
	for len(src) > 0 {
		num, typ, n := protowire.ConsumeTag(src)
		if n < 0 {
			return nil, fmt.Errorf("codec: bad frame: %w", protowire.ParseError(n))
		}
		src = src[n:]
		if num != envelopesField {
			// An unknown Frame field, from a newer peer: skip it.
			n = protowire.ConsumeFieldValue(num, typ, src)
			if n < 0 {
				return nil, fmt.Errorf("codec: bad frame: %w", protowire.ParseError(n))
			}
			src = src[n:]
			continue
		}
		if typ != protowire.BytesType {
			return nil, fmt.Errorf("codec: bad frame: envelope of wire type %d", typ)
		}
		v, n := protowire.ConsumeBytes(src)
		if n < 0 {
			return nil, fmt.Errorf("codec: bad frame: %w", protowire.ParseError(n))
		}
		src = src[n:]
		if len(envs) == MaxEnvelopesPerFrame {
			return nil, fmt.Errorf("%w: more than %d", ErrTooManyEnvelopes, MaxEnvelopesPerFrame)
		}
		e, err := decodeEnvelope(v)
		if err != nil {
			return nil, fmt.Errorf("codec: bad envelope %d: %w", len(envs), err)
		}
		if envs == nil {
			// Most frames hold one envelope or a few.
			envs = make([]*protowsv1.Envelope, 0, min(4, MaxEnvelopesPerFrame))
		}
		envs = append(envs, e)
	}
	if len(envs) == 0 {
		return nil, errEmptyFrame
	}
	return envs, nil
}

var errEmptyFrame = errors.New("codec: frame holds no envelope")

// aliasMin is the payload size from which decodeEnvelope aliases the
// payload instead of letting proto.Unmarshal copy it: below it, the copy
// costs less than the second Unmarshal call that aliasing takes.
const aliasMin = 128

// decodeEnvelope decodes one envelope, its payload aliasing src (as the
// Codec contract allows) rather than copied: proto.Unmarshal copies bytes
// fields, which for a large request is an allocation and a copy of the
// whole payload, only for the payload to be decoded and dropped.
//
// The envelope's other fields are decoded by proto.Unmarshal, from the
// bytes before the payload field and then, merged, from those after it:
// the wire format defines a message's encoding followed by more fields as
// the merge of the two, so the result is what one Unmarshal of src gives,
// and so are the errors, since the cut falls between two well-formed
// fields. A src with no payload, a small one or more than one payload
// field (the last would win) is decoded by one Unmarshal.
func decodeEnvelope(src []byte) (*protowsv1.Envelope, error) {
	e := new(protowsv1.Envelope)
	start, end, payload := -1, -1, []byte(nil)
	for b := src; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		m := -1
		if n >= 0 {
			m = protowire.ConsumeFieldValue(num, typ, b[n:])
		}
		if m < 0 {
			start = -1 // malformed: Unmarshal reports it
			break
		}
		if num == envPayloadField {
			if start >= 0 || typ != protowire.BytesType {
				start = -1 // leave the unusual to Unmarshal
				break
			}
			v, _ := protowire.ConsumeBytes(b[n:])
			start = len(src) - len(b)
			end = start + n + m
			payload = v
		}
		b = b[n+m:]
	}
	if start < 0 || len(payload) < aliasMin {
		if err := protoUnmarshal.Unmarshal(src, e); err != nil {
			return nil, err
		}
		return e, nil
	}
	if err := protoUnmarshal.Unmarshal(src[:start], e); err != nil {
		return nil, err
	}
	if end < len(src) {
		if err := protoMerge.Unmarshal(src[end:], e); err != nil {
			return nil, err
		}
	}
	// The capacity ends with the payload: an append to it never writes
	// into the bytes that follow it in the frame.
	e.Payload = payload[:len(payload):len(payload)]
	return e, nil
}
