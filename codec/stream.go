package codec

import (
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// StreamMessageCodec is a Codec that writes the element of a STREAM_MESSAGE
// without an Envelope and without copying the payload: the fast path of
// AppendStreamMessage, which a room broadcast takes once per member. Both
// built-in codecs implement it.
//
// A codec that wraps another by embedding a Codec hides this method; it
// keeps the fast path by forwarding it through the package function, unless
// it changes what AppendEnvelope writes:
//
//	func (w wrapper) AppendStreamMessage(dst []byte, id uint32, payload []byte, seq uint64) (codec.Parts, []byte, error) {
//		return codec.AppendStreamMessage(w.Codec, dst, id, payload, seq)
//	}
type StreamMessageCodec interface {
	Codec
	// AppendStreamMessage appends to dst the bytes of the encoding of
	// Envelope{Id: id, Kind: KIND_STREAM_MESSAGE, Payload: payload, Seq: seq}
	// that come before and after the payload, and returns them as the Head
	// and Tail of Parts whose Body is payload itself, with dst grown. Joined,
	// the parts are byte for byte what AppendEnvelope writes. payload must
	// be in this codec's encoding, as AppendPayload writes it.
	//
	// Head and Tail are slices of the returned buffer whose capacity ends
	// where they end, so that what is appended to the buffer later, for
	// another element, never runs into them.
	AppendStreamMessage(dst []byte, id uint32, payload []byte, seq uint64) (Parts, []byte, error)
}

// AppendStreamMessage returns the frame element of a STREAM_MESSAGE with
// the given call id, payload (in c's encoding, from c.AppendPayload) and
// sequence number, in codec c, as Parts for AppendFrameParts.
//
// When c is a StreamMessageCodec, the element's bytes other than the payload
// are appended to dst, which is returned grown, and the payload is shared,
// not copied: a broadcast appends the heads and tails of all its members to
// one buffer, with one allocation between them, and each connection's writer
// copies the payload straight into its frame. Otherwise the element is
// c.AppendEnvelope's, in a buffer of its own, and dst is returned as it is.
func AppendStreamMessage(c Codec, dst []byte, id uint32, payload []byte, seq uint64) (Parts, []byte, error) {
	if sc, ok := c.(StreamMessageCodec); ok {
		return sc.AppendStreamMessage(dst, id, payload, seq)
	}
	elem, err := c.AppendEnvelope(nil, &protowsv1.Envelope{
		Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload, Seq: seq,
	})
	return Parts{Body: elem}, dst, err
}

// splitParts returns the parts of the element appended to dst from start
// on, around a payload that goes at mid. Full slice expressions keep what is
// appended to one part, or to dst, from running into another.
func splitParts(dst []byte, start, mid int, payload []byte) Parts {
	p := Parts{Head: dst[start:mid:mid], Tail: dst[mid:len(dst):len(dst)]}
	if len(payload) > 0 {
		p.Body = payload
	}
	return p
}
