package hub

import (
	"strconv"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// appendStreamMessage appends the frame element of a STREAM_MESSAGE with
// the given call id, already-encoded payload and room sequence number, in
// codec c: the bytes c.AppendEnvelope would produce (TestStreamMessageElem
// checks it), built by copying the payload instead of going through the
// codec's generic envelope encoder. A broadcast encodes its payload once per
// codec and then calls this once per member, so the per-member cost is one
// allocation and one copy.
func appendStreamMessage(dst []byte, c codec.Codec, id uint32, payload []byte, seq uint64) ([]byte, error) {
	switch c.Name() {
	case codec.ProtoName:
		return appendProtoStreamMessage(dst, id, payload, seq), nil
	case codec.JSONName:
		return appendJSONStreamMessage(dst, id, payload, seq), nil
	}
	return c.AppendEnvelope(dst, &protowsv1.Envelope{
		Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload, Seq: seq,
	})
}

// Field numbers of protows.v1.Envelope and Frame.
const (
	fFrameEnvelopes = 1
	fEnvID          = 1
	fEnvKind        = 2
	fEnvPayload     = 5
	fEnvSeq         = 8
)

func appendProtoStreamMessage(dst []byte, id uint32, payload []byte, seq uint64) []byte {
	// Deterministic Protobuf writes fields in number order and omits
	// zero values; so does this.
	size := 2 // kind
	if id != 0 {
		size += 1 + protowire.SizeVarint(uint64(id))
	}
	if len(payload) > 0 {
		size += 1 + protowire.SizeBytes(len(payload))
	}
	if seq != 0 {
		size += 1 + protowire.SizeVarint(seq)
	}
	if dst == nil {
		dst = make([]byte, 0, 1+protowire.SizeBytes(size))
	}
	dst = protowire.AppendTag(dst, fFrameEnvelopes, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	if id != 0 {
		dst = protowire.AppendTag(dst, fEnvID, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(id))
	}
	dst = protowire.AppendTag(dst, fEnvKind, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(protowsv1.Kind_KIND_STREAM_MESSAGE))
	if len(payload) > 0 {
		dst = protowire.AppendTag(dst, fEnvPayload, protowire.BytesType)
		dst = protowire.AppendBytes(dst, payload)
	}
	if seq != 0 {
		dst = protowire.AppendTag(dst, fEnvSeq, protowire.VarintType)
		dst = protowire.AppendVarint(dst, seq)
	}
	return dst
}

func appendJSONStreamMessage(dst []byte, id uint32, payload []byte, seq uint64) []byte {
	if dst == nil {
		dst = make([]byte, 0, len(payload)+64)
	}
	dst = append(dst, '{')
	if id != 0 {
		dst = append(dst, `"id":`...)
		dst = strconv.AppendUint(dst, uint64(id), 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"kind":"stream_message"`...)
	if len(payload) > 0 {
		// The payload is compact protojson from the codec's
		// AppendPayload, which is what the envelope encoder would write.
		dst = append(dst, `,"payload":`...)
		dst = append(dst, payload...)
	}
	if seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	return append(dst, '}')
}
