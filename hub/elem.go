package hub

import (
	"strconv"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// streamMessage returns the frame element of a STREAM_MESSAGE with the
// given call id, already-encoded payload and room sequence number, in codec
// c, as parts around the payload: joined, they are the bytes
// c.AppendEnvelope would produce (TestStreamMessageParts checks it). The
// head and tail are appended to arena, which is returned grown, so that one
// broadcast makes one allocation for all its members rather than one each;
// the payload itself is shared, never copied, and the writer of each
// connection copies it straight into its frame.
func streamMessage(arena []byte, c codec.Codec, id uint32, payload []byte, seq uint64) (codec.Parts, []byte, error) {
	start := len(arena)
	var mid int
	switch c.Name() {
	case codec.ProtoName:
		arena, mid = appendProtoStreamMessage(arena, id, len(payload), seq)
	case codec.JSONName:
		arena, mid = appendJSONStreamMessage(arena, id, len(payload) > 0, seq)
	default:
		elem, err := c.AppendEnvelope(nil, &protowsv1.Envelope{
			Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload, Seq: seq,
		})
		return codec.Parts{Body: elem}, arena, err
	}
	// Full slice expressions: nothing appended to one part may run into
	// the next, or into another member's.
	p := codec.Parts{Head: arena[start:mid:mid], Tail: arena[mid:len(arena):len(arena)]}
	if len(payload) > 0 {
		p.Body = payload
	}
	return p, arena, nil
}

// Field numbers of protows.v1.Envelope and Frame.
const (
	fFrameEnvelopes = 1
	fEnvID          = 1
	fEnvKind        = 2
	fEnvPayload     = 5
	fEnvSeq         = 8
)

// appendProtoStreamMessage appends the envelope's bytes before the payload
// and after it, and returns where the payload goes.
func appendProtoStreamMessage(dst []byte, id uint32, payloadLen int, seq uint64) ([]byte, int) {
	// Deterministic Protobuf writes fields in number order and omits
	// zero values; so does this.
	size := 2 // kind
	if id != 0 {
		size += 1 + protowire.SizeVarint(uint64(id))
	}
	if payloadLen > 0 {
		size += 1 + protowire.SizeBytes(payloadLen)
	}
	if seq != 0 {
		size += 1 + protowire.SizeVarint(seq)
	}
	dst = protowire.AppendTag(dst, fFrameEnvelopes, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	if id != 0 {
		dst = protowire.AppendTag(dst, fEnvID, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(id))
	}
	dst = protowire.AppendTag(dst, fEnvKind, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(protowsv1.Kind_KIND_STREAM_MESSAGE))
	if payloadLen > 0 {
		dst = protowire.AppendTag(dst, fEnvPayload, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(payloadLen))
	}
	mid := len(dst)
	if seq != 0 {
		dst = protowire.AppendTag(dst, fEnvSeq, protowire.VarintType)
		dst = protowire.AppendVarint(dst, seq)
	}
	return dst, mid
}

// appendJSONStreamMessage is appendProtoStreamMessage for the JSON codec,
// whose payload is compact protojson from the codec's AppendPayload: what
// its envelope encoder would inline.
func appendJSONStreamMessage(dst []byte, id uint32, hasPayload bool, seq uint64) ([]byte, int) {
	dst = append(dst, '{')
	if id != 0 {
		dst = append(dst, `"id":`...)
		dst = strconv.AppendUint(dst, uint64(id), 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"kind":"stream_message"`...)
	if hasPayload {
		dst = append(dst, `,"payload":`...)
	}
	mid := len(dst)
	if seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	return append(dst, '}'), mid
}
