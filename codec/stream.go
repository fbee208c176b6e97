package codec

import (
	"fmt"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// StreamMessageCodec is a Codec that writes the element of a STREAM_MESSAGE
// without an Envelope and without copying the payload: the fast path of
// AppendStreamMessage, which a room broadcast takes once per member. Both
// built-in codecs implement it.
//
// A codec that wraps another by embedding a Codec hides this method. One
// that wraps a StreamMessageCodec, and writes the same envelopes, keeps the
// fast path by embedding the StreamMessageCodec instead, or by forwarding
// the method to it.
type StreamMessageCodec interface {
	Codec
	// AppendStreamMessage appends to dst the encoding of
	// Envelope{Id: id, Kind: KIND_STREAM_MESSAGE, Payload: payload, Seq: seq},
	// as AppendEnvelope writes it, with the bytes of the payload itself left
	// out, and returns the grown buffer and the index in it where they
	// belong. payload must be in this codec's encoding, as AppendPayload
	// writes it; it is neither copied nor kept.
	//
	// It returns an index, not Parts, because it runs once per member of a
	// broadcast, through an interface, where a small result is cheaper to
	// return; and so that AppendStreamMessage cuts the Parts, capacities
	// included, in one place for every codec.
	AppendStreamMessage(dst []byte, id uint32, payload []byte, seq uint64) ([]byte, int, error)
}

// AppendStreamMessage returns the frame element of a STREAM_MESSAGE with
// the given call id, payload (in c's encoding, from c.AppendPayload) and
// sequence number, in codec c, as Parts for AppendFrameParts.
//
// When c is a StreamMessageCodec, the element's bytes other than the payload
// are appended to dst, which is returned grown, and the payload is shared,
// not copied: a broadcast appends the heads and tails of all its members to
// one buffer, with one allocation between them, and each connection's writer
// copies the payload straight into its frame. The Head and Tail returned are
// slices of that buffer whose capacity ends where they end, so that nothing
// appended to one runs into the other, or into another element. Otherwise
// the element is c.AppendEnvelope's, in a buffer of its own, and dst is
// returned as it is. On an error, too, dst is returned as it was.
func AppendStreamMessage(c Codec, dst []byte, id uint32, payload []byte, seq uint64) (Parts, []byte, error) {
	sc, ok := c.(StreamMessageCodec)
	if !ok {
		elem, err := c.AppendEnvelope(nil, &protowsv1.Envelope{
			Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload, Seq: seq,
		})
		return Parts{Body: elem}, dst, err
	}
	start := len(dst)
	out, at, err := sc.AppendStreamMessage(dst, id, payload, seq)
	if err != nil {
		return Parts{}, dst, err
	}
	if at < start || at > len(out) {
		return Parts{}, dst, fmt.Errorf("codec %s: stream message payload at %d, outside the element's %d to %d", c.Name(), at, start, len(out))
	}
	p := Parts{Head: out[start:at:at], Tail: out[at:len(out):len(out)]}
	if len(payload) > 0 {
		p.Body = payload
	}
	return p, out, nil
}
