package hub

// Marshals returns how many payload encodings the hub made, for tests of
// encode-once.
func (h *Hub[T]) Marshals() int64 { return h.marshals.Load() }
