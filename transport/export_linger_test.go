package transport

// WriterState reports whether c's send queue is empty with nothing being
// written, and whether a writer runs, for the tests of the writer's
// linger after room broadcasts.
func WriterState(c *Conn) (drained, running bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.w.queue) == 0 && c.w.inWrite == 0, c.w.running
}
