package transport

import "sync"

// bufferPool holds read and frame buffers, so that an idle connection
// holds none. Each Server has its own.
type bufferPool struct {
	pool sync.Pool
}

// maxPooledBuf keeps the occasional huge message from pinning its buffer
// in the pool.
const maxPooledBuf = 256 << 10

func (p *bufferPool) get(n int) *[]byte {
	bp, _ := p.pool.Get().(*[]byte)
	if bp == nil || cap(*bp) < n {
		b := make([]byte, 0, max(n, 4096))
		return &b
	}
	*bp = (*bp)[:0]
	return bp
}

func (p *bufferPool) put(bp *[]byte) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	*bp = (*bp)[:0]
	p.pool.Put(bp)
}

// putMaybe is put for a buffer that may be nil (none taken).
func (p *bufferPool) putMaybe(bp *[]byte) {
	if bp != nil {
		p.put(bp)
	}
}
