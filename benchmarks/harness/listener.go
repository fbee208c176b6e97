package harness

import (
	"net"
	"sync/atomic"
)

// wireCounter counts the bytes that cross a server's accepted connections.
type wireCounter struct {
	in, out atomic.Int64
	writes  atomic.Int64 // Write calls: write system calls, but for writev
}

// countingListener wraps a listener so that every accepted connection adds
// its reads and writes to a wireCounter: the bytes on the wire, measured at
// the same point for every implementation.
type countingListener struct {
	net.Listener
	c *wireCounter
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, c: l.c}, nil
}

type countingConn struct {
	net.Conn
	c *wireCounter
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.c.out.Add(int64(n))
	c.c.writes.Add(1)
	return n, err
}
