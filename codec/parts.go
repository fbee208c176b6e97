package codec

// Parts is one encoded envelope held in three pieces: its encoding is Head,
// then Body, then Tail, any of which may be empty. A broadcast gives each
// receiver its own Head and Tail (the call id and sequence number) around
// one shared Body, the payload (AppendStreamMessage), so that the payload is
// copied once per receiver, into the frame being written, and never into a
// per-receiver envelope first. An envelope encoded whole is its Body alone.
type Parts struct {
	Head, Body, Tail []byte
}

// Len returns the length of the encoded envelope.
func (p Parts) Len() int { return len(p.Head) + len(p.Body) + len(p.Tail) }

// AppendTo appends the encoded envelope to dst.
func (p Parts) AppendTo(dst []byte) []byte {
	dst = append(dst, p.Head...)
	dst = append(dst, p.Body...)
	return append(dst, p.Tail...)
}
